"""The fault drills' shared ground (integration/test_fault_drills_*.py): exports A and B, their
clean fingerprints, a warehouse template holding A, and the ways a drill kills, edits and heals
a run.

Row fingerprints ignore run_id, created_at and snapshot_id (a raw row of a quarter
whose content did not change keeps the tag of the export that first brought it, and the
compact id is numbered per warehouse)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import psycopg
import pytest

from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast_tests.conftest import fetch, isolated_project, new_database
from synoforecast_tests.support.definitions import sensor_context
from synoforecast_tests.support.warehouse_prints import RUN_SPECIFIC, table_prints

SPEC = SampleSpec(rows=900, seed=5, start=dt.date(2024, 7, 1), quarters=8, as_of=dt.date(2026, 5, 20))


IGNORED = RUN_SPECIFIC


SCHEMAS = ("raw", "staging", "marts", "forecast", "published")  # staging: its tables (stg_svr_rm, ...)


# history kept per published export, as ops.* is: a drill that published two exports holds two
# exports' vintages and narratives, the clean build of the last one only its own
PER_EXPORT_HISTORY = ("forecast.vintages", "forecast.narratives")


def fingerprint(url: str, schemas=SCHEMAS) -> dict[str, tuple]:
    prints = table_prints(url, schemas, IGNORED)
    return {table: p for table, p in prints.items() if table not in PER_EXPORT_HISTORY}


def published_of(prints: dict[str, tuple]) -> dict[str, tuple]:
    return {k: v for k, v in prints.items() if k.startswith("published.")}


def working_of(prints: dict[str, tuple]) -> dict[str, tuple]:
    return {k: v for k, v in prints.items() if not k.startswith("published.")}


def _correct(source: Path, target: Path) -> None:
    """Export B: export A with corrections in its second quarter (units of a few lines)."""
    wb = openpyxl.load_workbook(source)
    ws = wb["SVR-RM"]
    for r in range(2, ws.max_row + 1):
        day = ws.cell(r, 1).value
        day = day.date() if isinstance(day, dt.datetime) else day
        if dt.date(2024, 10, 1) <= day < dt.date(2024, 10, 20):
            ws.cell(r, 8).value = ws.cell(r, 8).value + 7
    wb.save(target)


def clone(pg_server, template_url: str) -> str:
    """A new database copied from `template_url`'s (no connection may be open on it)."""
    from urllib.parse import urlparse

    url = new_database(pg_server)
    name, source = urlparse(url).path.lstrip("/"), urlparse(template_url).path.lstrip("/")
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f'drop database "{name}"')
        for _ in range(20):
            try:
                conn.execute(f'create database "{name}" template "{source}"')
                break
            except psycopg.errors.ObjectInUse:
                time.sleep(0.5)
    return url


def ingest(path: Path, **kwargs):
    from synoforecast.cli.runner import ingest_workbook

    return ingest_workbook(path, progress=lambda _m: None, quiet=True, **kwargs)


@pytest.fixture(scope="module")
def drills(pg_server, tmp_path_factory):
    """Exports A and B, the clean fingerprint of each (ingested alone into an empty
    warehouse), and a warehouse template holding a complete ingest of A."""
    with isolated_project(tmp_path_factory.mktemp("drills"), new_database(pg_server)) as env:
        a, b = env["inbox"] / "export-a.xlsx", env["inbox"] / "export-b.xlsx"
        write_sample_workbook(a, SPEC)
        _correct(a, b)
        clean = {}
        for name, path in (("a", a), ("b", b)):
            url = new_database(pg_server)
            env["monkeypatch"].setenv("SYNOFORECAST_WAREHOUSE_URL", url)
            outcome = ingest(path)
            assert outcome.ok, outcome.error
            clean[name] = fingerprint(url)
            clean[f"{name}_url"] = url
        yield {**env, "a": a, "b": b, "clean": clean, "pg_server": pg_server}


@pytest.fixture
def after_a(drills):
    """A warehouse holding a complete ingest of export A (a copy of the template), in use."""
    url = clone(drills["pg_server"], drills["clean"]["a_url"])
    use_warehouse(drills, url)
    return url


def edited(source: Path, target: Path, edit) -> Path:
    """A copy of workbook `source` changed by `edit(workbook)`."""
    wb = openpyxl.load_workbook(source)
    edit(wb)
    wb.save(target)
    return target


def use_warehouse(env, url: str) -> None:
    from synoforecast.settings import get_settings

    env["monkeypatch"].setenv("SYNOFORECAST_WAREHOUSE_URL", url)
    get_settings.cache_clear()


def _children(pid: int) -> list[tuple[int, str]]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append((int(entry.name), cmdline))
    return out


def _dbt_running(pid: int) -> bool:
    return any("dbt" in cmd and " build" in cmd for _p, cmd in _children(pid))


def _published_to(url: str, target_like: str, since: dt.datetime) -> bool:
    return bool(
        fetch(
            url,
            "select 1 from ops.publish_log where target like %s and published_at > %s limit 1",
            (target_like, since),
        )
    )


PHASES = {
    "raw COPY": lambda url, pid, since: _published_to(url, "raw.%", since),
    "dbt build": lambda url, pid, since: _dbt_running(pid),
    "forecast publish": lambda url, pid, since: _published_to(url, "forecast.forecasts", since),
}


def kill_during(path: Path, url: str, phase: str, timeout: float = 300) -> None:
    """Start `synoforecast ingest path` in its own process group and kill -9 it in `phase`."""
    since = fetch(url, "select now()")[0][0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "synoforecast.cli.main", "ingest", str(path), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=dict(os.environ),
    )
    deadline = time.monotonic() + timeout
    try:
        while not PHASES[phase](url, proc.pid, since):
            assert proc.poll() is None, f"the ingest ended (exit {proc.returncode}) before reaching {phase}"
            assert time.monotonic() < deadline, f"{phase} not reached in {timeout} s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def heal_by_sensor_tick(monkeypatch):
    """One tick of publish_heal_sensor (grace period off), then the run it requests, as the
    daemon would launch it."""
    import dagster as dg

    from synoforecast.definitions import defs
    from synoforecast.defs import pipeline

    monkeypatch.setattr(pipeline, "HEAL_GRACE_S", 0)
    instance = dg.DagsterInstance.get()
    request = pipeline.publish_heal_sensor(sensor_context(instance))
    assert isinstance(request, dg.RunRequest), request
    result = defs.resolve_job_def(pipeline.PIPELINE_JOB).execute_in_process(
        instance=instance, tags=request.tags, raise_on_error=False
    )
    assert result.success
    again = pipeline.publish_heal_sensor(sensor_context(instance))
    assert isinstance(again, dg.SkipReason) and "nothing to heal" in again.skip_message
    return request


def redrop_is_requested_again(path: Path) -> None:
    """The inbox sensor used to skip a re-dropped workbook whose first run died: its
    content had a successful snapshot run. Now content that is not published runs again."""
    import dagster as dg

    from synoforecast.defs.ingestion.sensors import inbox_sensor

    instance = dg.DagsterInstance.get()
    cursor = None
    for _ in range(2):
        result = inbox_sensor(sensor_context(instance, cursor=cursor))
        cursor = result.cursor
        assert not result.run_requests  # both exports were accepted before: not new
    later = path.stat().st_mtime_ns + 60 * 10**9
    os.utime(path, ns=(later, later))  # copied onto the share again
    for _ in range(2):
        result = inbox_sensor(sensor_context(instance, cursor=cursor))
        cursor = result.cursor
    assert [r.run_config["ops"]["workbook_snapshot"]["config"]["path"] for r in result.run_requests] == [str(path)]
    assert result.run_requests[0].run_key.endswith(f":{later}")
