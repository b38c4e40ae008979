"""Shared fixtures: a throwaway real PostgreSQL and an isolated project environment.

The cluster is started from the PostgreSQL binaries the `pgserver` package ships
(it runs as root too, which Debian's initdb refuses), in a temp folder, once per
test session; each test that needs a clean warehouse gets its own database.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from synoforecast.settings import get_settings

_counter = itertools.count()
SMTP_VARIABLES = (
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_FROM",
    "SMTP_TO",
    "SMTP_STARTTLS",
    "SMTP_CA_FILE",
    "SMTP_TIMEOUT_S",
)


@pytest.fixture(scope="session")
def pg_server():
    """PostgreSQL runs as user 'pgserver' when started by root: its folder lives in /tmp
    itself, not under pytest's private basetemp (which every pytest session re-chmods 0700)."""
    import pgserver

    folder = tempfile.mkdtemp(prefix="synoforecast-test-pg-")
    server = pgserver.get_server(folder, cleanup_mode="stop")
    yield server
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


def new_database(pg_server) -> str:
    """A fresh, empty database on the throwaway cluster."""
    name = f"t{next(_counter)}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    return pg_server.get_uri(name)


@pytest.fixture
def pg_url(pg_server) -> str:
    return new_database(pg_server)


@contextlib.contextmanager
def isolated_project(tmp: Path, url: str):
    """Point settings, the warehouse and Dagster storage at folders under `tmp`."""
    data = tmp / "data"
    (data / "raw").mkdir(parents=True)
    (tmp / "dagster_home").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNOFORECAST_DATA_DIR", str(data))
        mp.setenv("SYNOFORECAST_WAREHOUSE_URL", url)
        mp.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
        for name in (
            "METABASE_URL",
            "METABASE_API_KEY",
            "METABASE_CARD_IDS",
            "METABASE_DATABASE_ID",
            "SLACK_WEBHOOK_URL",
            "TEAMS_WEBHOOK_URL",
            "N8N_WEBHOOK_URL",
            *SMTP_VARIABLES,
        ):
            mp.delenv(name, raising=False)
        get_settings.cache_clear()
        try:
            yield {"data": data, "inbox": data / "raw", "url": url, "tmp": tmp, "monkeypatch": mp}
        finally:
            get_settings.cache_clear()


@pytest.fixture
def project_env(tmp_path, pg_url):
    with isolated_project(tmp_path, pg_url) as env:
        yield env


def fetch(url: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# The checkout's own data/ (a `synoforecast demo` run there) must not reach the tests: it
# remembers where the partitions start. Tests that need a project point at their own folders.
os.environ.setdefault("SYNOFORECAST_DATA_DIR", tempfile.mkdtemp(prefix="synoforecast-test-data-"))


# the fault drills' exports and warehouse template (fixtures drills, after_a): support/fault_drills.py
pytest_plugins = ["synoforecast_tests.support.fault_drills"]

# a real SMTP server (aiosmtpd, STARTTLS + AUTH) for the email route: support/smtp_server.py
from synoforecast_tests.support.smtp_server import smtp_cert, smtp_server  # noqa: E402, F401


@pytest.fixture(scope="module")
def standin(request):
    """A module's Metabase / webhook stand-in (support/http_standin.py), answering the API key
    in the module's STANDIN_API_KEY (default the stand-in's own)."""
    from synoforecast_tests.support.http_standin import StandIn

    key = getattr(request.module, "STANDIN_API_KEY", None)
    with StandIn(**({"api_key": key} if key else {})) as server:
        yield server


# ---------------------------------------------------------------- running in parallel (pytest-xdist)
# The suite runs on two workers (`-n 2 --dist loadfile` in pyproject.toml): each test file stays on
# one worker, so a module's fixtures (a warehouse, a published sample) are built once.

# Files by how long they take, the longest first, so the last file to finish is a short one:
# the Docker stack test (images, the Compose stack, drills) first, then what materialises the
# whole graph, then the integration tests; unit tests fill the gaps.
_LONGEST_FIRST = (
    "deploy/test_stack_docker.py",
    "/e2e/",
    "integration/test_fault_drills_",  # two files (kills, exports), so two workers share the drills
    "integration/test_exports_in_time.py",
    "/integration/",
)


def _rank(path: str) -> int:
    return next((i for i, part in enumerate(_LONGEST_FIRST) if part in path), len(_LONGEST_FIRST))


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: _rank(item.nodeid))


def pytest_configure(config):
    """Parse the dbt manifest once, in the main process, before any worker loads the definitions:
    two workers parsing into the same target/ at once would read each other's half-written files."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller already did it
        return
    from synoforecast.defs.transform.project import ensure_manifest

    ensure_manifest()


# One forecasting process per test process: the suite's parallelism is its xdist workers (3
# on CI's 2 cores), and a forecast worker beside each (the default on 2 cores) only adds
# processes, and their imports, competing for the same cores; every CLI the tests start would
# start one too. unit/lib/test_workers.py and integration/test_landing.py run the worker path.
os.environ.setdefault("SYNOFORECAST_FORECAST_WORKERS", "1")
