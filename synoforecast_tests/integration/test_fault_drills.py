"""Fault drills (issue 11) against a real PostgreSQL and real Dagster runs: a run killed
with -9 during the raw COPY, during dbt and during the forecast publish never shows
analysts a mix (schema `published` keeps the previous export) and the next ingest of
either export converges to a clean ingest of it; two runs started together leave one
row set per grain; the warehouse stopped mid-run is a failure naming its cause.

Row fingerprints ignore run_id, created_at and snapshot_id (a raw row of a quarter
whose content did not change keeps the tag of the export that first brought it, and the
compact id is numbered per warehouse)."""

from __future__ import annotations

import contextlib
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

pytestmark = pytest.mark.integration

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


@pytest.mark.parametrize("phase, reingest", [("raw COPY", "b"), ("dbt build", "heal"), ("forecast publish", "a")])
def test_kill_9_mid_run_never_publishes_a_mix_and_the_next_ingest_converges(drills, phase, reingest):
    """reingest: the export ingested next ("a" or "b"), or "heal": no ingest, one tick of
    publish_heal_sensor converges to the export last accepted (b)."""
    import dagster as dg

    url = clone(drills["pg_server"], drills["clean"]["a_url"])
    use_warehouse(drills, url)
    kill_during(drills["b"], url, phase)

    # what analysts read is still export A, complete
    assert published_of(fingerprint(url)) == published_of(drills["clean"]["a"])
    sha_a = fetch(drills["clean"]["a_url"], "select snapshot_sha256 from ops.published_snapshot")[0][0]
    assert fetch(url, "select snapshot_sha256 from ops.published_snapshot")[0][0] == sha_a

    if phase == "raw COPY":
        redrop_is_requested_again(drills["b"])
    if reingest == "heal":
        request = heal_by_sensor_tick(drills["monkeypatch"])
        assert request.tags["dagster/asset_partition_range_start"] <= "2024-10-01"
        reingest = "b"
    else:
        outcome = ingest(drills[reingest])
        assert outcome.ok, outcome.error
        assert outcome.partitions, "the killed run's partitions must be re-run, not skipped"
    assert fingerprint(url) == drills["clean"][reingest]
    killed = [r for r in dg.DagsterInstance.get().get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))]
    assert killed == [], "the killed run must have been marked failed by the next ingest"


def test_a_header_only_sheet_is_refused_and_nothing_changes(drills, after_a, tmp_path):
    url = after_a
    before = fingerprint(url)
    emptied = edited(
        drills["a"], tmp_path / "emptied.xlsx", lambda wb: wb["SVR-RM"].delete_rows(2, wb["SVR-RM"].max_row)
    )
    outcome = ingest(emptied)
    assert not outcome.ok and outcome.refused
    assert "required sheet 'SVR-RM' has a header row (row 1) but no data rows" in outcome.error
    assert fingerprint(url) == before


def test_a_shrunken_sheet_stops_publication_unless_allowed(drills, after_a, tmp_path):
    url = after_a
    before = fingerprint(url)
    shrunk = edited(
        drills["a"],
        tmp_path / "consumer-cut.xlsx",
        lambda wb: wb["Consumer"].delete_rows(3, wb["Consumer"].max_row - 2),
    )  # two data rows left
    outcome = ingest(shrunk)
    assert not outcome.ok and outcome.refused
    assert "publication stopped by the snapshot_shrink check" in outcome.error
    assert "Consumer rows loaded" in outcome.error and "--allow-shrink" in outcome.error
    assert fingerprint(url) == before
    allowed = ingest(shrunk, allow_shrink=True)
    assert allowed.ok, allowed.error
    assert (
        fetch(url, "select count(*) from published.mart_consumer_quarterly")[0][0]
        < before["published.mart_consumer_quarterly"][0]
    )


def _huge_units(wb) -> None:
    for r in range(2, 60):  # above the 2% quarantine share
        wb["SVR-RM"].cell(r, 8).value = 3_000_000_000


def test_an_out_of_range_value_fails_in_dry_run_exactly_where_the_real_run_does(drills, after_a, tmp_path):
    url = after_a
    before = fingerprint(url)
    wild = edited(drills["a"], tmp_path / "wild.xlsx", _huge_units)
    dry = subprocess.run(
        [sys.executable, "-m", "synoforecast.cli.main", "ingest", str(wild), "--dry-run"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    real = subprocess.run(
        [sys.executable, "-m", "synoforecast.cli.main", "ingest", str(wild)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert dry.returncode == real.returncode == 2
    refusal = [ln for ln in real.stderr.splitlines() if not ln.startswith("synoforecast: ")]
    assert len(refusal) == 1 and refusal[0].startswith("refused: wild.xlsx: sheet 'SVR-RM'"), real.stderr
    assert "SVR-RM!H2" in refusal[0] and "out of range for the warehouse column (integer" in refusal[0]
    assert "SVR-RM!H2" in dry.stderr and "Traceback" not in real.stderr + dry.stderr
    assert fingerprint(url) == before


def test_two_runs_started_together_take_turns_and_leave_one_row_set_per_grain(drills, after_a):
    """Two `synoforecast ingest` of overlapping quarters started at once: the second waits
    for the first (one pipeline run at a time), both succeed, one row set per grain."""
    url = after_a
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "synoforecast.cli.main", "ingest", str(drills[name]), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for name in ("b", "b")
    ]
    results = [p.communicate(timeout=600) for p in procs]
    failed = [(p.returncode, out, err) for p, (out, err) in zip(procs, results) if p.returncode != 0]
    assert not failed, "\n\n".join(f"exit {code}:\n{out[-3000:]}\n{err[-6000:]}" for code, out, err in failed)
    for table, grain in (
        ("forecast.forecasts", "cohort, as_of_quarter, series_id, metric"),
        ("forecast.evaluation", "cohort, quarter, metric, level"),
        ("raw.svr_rm", "quarter_start, source_row"),
    ):
        assert (
            fetch(url, f"select count(*) from (select {grain} from {table} group by {grain} having count(*) > 1) d")[0][
                0
            ]
            == 0
        ), table
    assert fingerprint(url) == drills["clean"]["b"]


def test_the_warehouse_stopped_mid_run_is_a_failure_naming_its_cause_and_then_heals(drills):
    """A cluster of its own, stopped (immediate shutdown) while dbt runs, then started again.
    Its folder is in /tmp itself, as conftest's: pytest re-chmods its own basetemp 0700."""
    import shutil
    import tempfile

    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="synoforecast-test-stopped-pg-"))
    server = pgserver.get_server(str(folder), cleanup_mode=None)
    try:
        url = server.get_uri()
        use_warehouse(drills, url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "synoforecast.cli.main", "ingest", str(drills["b"])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        deadline = time.monotonic() + 300
        while not _dbt_running(proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        postmaster = int((folder / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGQUIT)  # immediate shutdown: connections drop mid-transaction
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, err[-3000:]
        failure = [ln for ln in err.splitlines() if ln.startswith("failed: ")]
        assert len(failure) == 1, err[-3000:]
        assert "(step " in failure[0] and ", run " in failure[0]
        assert "DagsterExecutionStepExecutionError" not in failure[0]
        assert any(cause in failure[0].lower() for cause in ("connect", "connection", "terminat", "shut")), failure[0]

        for _ in range(100):  # wait for the postmaster to be gone
            try:
                os.kill(postmaster, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        server.ensure_postgres_running()  # the database is back
        outcome = ingest(drills["b"])
        assert outcome.ok, outcome.error
        assert fingerprint(url) == drills["clean"]["b"]
    finally:  # stop the cluster this test started (by its postmaster's pid)
        pid_file = folder / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
            time.sleep(1)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_cli_run_blocked_by_a_limit_says_so_and_gives_up(drills, after_a):
    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun

    from synoforecast.instance.runs import HOST_TAG, PID_TAG

    drills["monkeypatch"].setenv("SYNOFORECAST_LIMIT_WAIT_SECONDS", "1")
    instance = dg.DagsterInstance.get()
    holder = DagsterRun(
        job_name="forecast_pipeline_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={PID_TAG: str(os.getppid()), HOST_TAG: __import__("socket").gethostname()},
    )
    instance.add_run(holder)
    instance.event_log_storage.initialize_concurrency_limit_to_default("dbt")
    assert instance.event_log_storage.claim_concurrency_slot("dbt", holder.run_id, "dbt_step").is_claimed
    said: list[str] = []
    try:
        from synoforecast.cli.runner import ingest_workbook

        outcome = ingest_workbook(drills["b"], progress=said.append, quiet=True)
    finally:
        instance.event_log_storage.free_concurrency_slots_for_run(holder.run_id)
        instance.report_run_failed(instance.get_run_by_id(holder.run_id), message="test holder released")
    assert not outcome.ok and not outcome.refused
    assert f"gave up after waiting 1 s for a concurrency limit: pool 'dbt' held by run {holder.run_id}" in outcome.error
    assert f"forecast_pipeline_job run {holder.run_id} in progress" in outcome.error
    assert any(m.startswith("waiting up to 1 s for a concurrency limit: pool 'dbt'") for m in said), said


def test_a_new_top_customers_sheet_reaches_every_quarter_of_the_marts(drills, after_a, tmp_path):
    """Reference data changes staging for every quarter; the marts must follow in
    every quarter too (they used to be rebuilt only over the run's range, or not at all)."""
    url = after_a

    def swap_top_customer(wb) -> None:
        listed = {row[0].value for row in wb["Top Customers"].iter_rows(min_row=2)}
        other = next(r[3] for r in wb["SVR-RM"].iter_rows(min_row=2, values_only=True) if r[3] not in listed)
        wb["Top Customers"].cell(2, 1).value = other

    outcome = ingest(edited(drills["a"], tmp_path / "top-customers.xlsx", swap_top_customer))
    assert outcome.ok, outcome.error
    complete = fetch(url, "select complete_quarters from ops.snapshots where sha256 = %s", (outcome.sha256,))[0][0]
    assert outcome.partitions == [q for q in complete if q >= "2020-01-01"]
    for schema in ("marts", "published"):
        mixed = fetch(
            url,
            f"""select count(*) from {schema}.mart_svr_rm_customer_quarterly m
                               where m.is_top_customer <> exists (select 1 from staging.int_top_customers t
                                                                  where t.customer_id = m.customer_id)""",
        )[0][0]
        assert mixed == 0, schema


def test_an_export_changing_one_sheet_rebuilds_only_its_models_and_equals_a_clean_build(drills, after_a):
    """Export B changes SVR-RM lines only: dbt builds the models downstream of raw.svr_rm, reports
    the consumer and C2 models unchanged (their tests' results with them, so the blocking checks
    still gate the forecasts), and the warehouse equals B ingested into an empty one."""
    import dagster as dg

    outcome = ingest(drills["b"])
    assert outcome.ok, outcome.error
    assert fingerprint(after_a) == drills["clean"]["b"]
    pipeline_run = outcome.run_ids[1]
    instance = dg.DagsterInstance.get()
    status = {}
    for event in instance.all_logs(pipeline_run, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = event.asset_materialization
        if "status" in materialization.metadata:  # dbt's nodes
            status["/".join(materialization.asset_key.path)] = materialization.metadata["status"].value
    assert status["staging/stg_svr_rm"] == status["marts/mart_svr_rm_quarterly"] == "success"
    assert status["marts/mart_commercial_activation"] == "success"  # reads SVR-RM too
    for unchanged in (
        "staging/stg_consumer",
        "marts/mart_consumer_quarterly",
        "staging/stg_region_map",
        "reference/region_map",
    ):
        assert status[unchanged] == "unchanged", unchanged
    checks = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(pipeline_run, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    ]
    consumer = [c for c in checks if c.asset_key == dg.AssetKey(["marts", "mart_consumer_quarterly"])]
    assert consumer and all(c.passed and c.metadata["rerun"].value is False for c in consumer)
    assert all(c.passed for c in checks if c.asset_key.path[0] in ("staging", "intermediate", "marts"))
    with psycopg.connect(after_a) as conn:  # what dbt built from is recorded: the same export again builds nothing
        recorded = conn.execute("select count(*) from ops.dbt_inputs where scope like 'svr_rm|%%'").fetchone()[0]
    assert recorded >= len(outcome.partitions)


def test_a_consumer_only_change_leaves_the_svr_rm_marts_and_claims_no_warn_test_it_did_not_run(
    drills, after_a, tmp_path
):
    """Only Consumer changes: the SVR-RM marts are reported unchanged with their error-severity
    tests passed (rerun false), but their `warn` tests (sums_match) are not claimed: a warning
    does not fail a build, so the last build's success says nothing about them."""
    import dagster as dg

    def bump_consumer(wb) -> None:
        ws = wb["Consumer"]
        ws.cell(2, 8).value = ws.cell(2, 8).value + 3

    outcome = ingest(edited(drills["a"], tmp_path / "consumer.xlsx", bump_consumer))
    assert outcome.ok, outcome.error
    run = outcome.run_ids[1]
    instance = dg.DagsterInstance.get()
    status = {
        "/".join(e.asset_materialization.asset_key.path): e.asset_materialization.metadata["status"].value
        for e in instance.all_logs(run, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if "status" in e.asset_materialization.metadata
    }
    assert status["marts/mart_consumer_quarterly"] == "success"
    assert status["marts/mart_svr_rm_tier_quarterly"] == status["staging/stg_svr_rm"] == "unchanged"
    tier = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(run, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        if e.dagster_event.event_specific_data.asset_key == dg.AssetKey(["marts", "mart_svr_rm_tier_quarterly"])
    ]
    names = {c.check_name for c in tier}
    assert tier and all(c.passed and c.metadata["rerun"].value is False for c in tier)
    assert not any(n.startswith("sums_match") for n in names), names


def test_a_failed_dbt_build_keeps_its_debug_log_and_the_full_build_tag_repairs_it(drills, after_a):
    """A view dropped outside dbt, which this run does not rebuild (its inputs did not change):
    dbt fails, its debug log is kept under data/logs and named in the run, nothing is published;
    the run tag synoforecast/dbt_full_build=true rebuilds every model and converges to B."""
    import dagster as dg

    from synoforecast.definitions import defs
    from synoforecast.defs.runs import PIPELINE_JOB
    from synoforecast.defs.transform.assets import FULL_BUILD_TAG

    with psycopg.connect(after_a, autocommit=True) as conn:
        conn.execute("drop view staging.stg_region_map cascade")
    outcome = ingest(drills["b"])
    assert not outcome.ok and "stg_region_map" in outcome.error
    run_id = outcome.run_ids[1]
    kept = drills["data"] / "logs" / f"dbt-{run_id}.log"
    assert kept.exists() and "stg_region_map" in kept.read_text()
    instance = dg.DagsterInstance.get()
    messages = [e.user_message for e in instance.all_logs(run_id)]
    assert any(str(kept) in m for m in messages)
    assert published_of(fingerprint(after_a)) == published_of(drills["clean"]["a"])

    tags = {
        k: v
        for k, v in instance.get_run_by_id(run_id).tags.items()
        if not k.startswith("dagster/") or k.startswith("dagster/asset_partition_range")
    }
    result = defs.resolve_job_def(PIPELINE_JOB).execute_in_process(
        instance=instance, tags={**tags, FULL_BUILD_TAG: "true"}
    )
    assert result.success
    assert fingerprint(after_a) == drills["clean"]["b"]


def test_staging_tables_cleaned_for_one_quarter_match_a_clean_build_even_replacing_an_older_view(drills, after_a):
    """Export B changes one quarter of A: the run cleans only that quarter into staging.stg_*,
    and the result must equal B ingested into an empty warehouse. Here the staging tables
    were views (as releases before the tables left them), so this first build of the tables
    runs over one quarter's range and still has to clean every quarter."""
    url = after_a
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("stg_svr_rm", "stg_consumer", "stg_c2"):
            conn.execute(f"drop table staging.{table} cascade")
            conn.execute(f"create view staging.{table} as select * from raw.{table.removeprefix('stg_')}")
        # built by that older release: another project digest, so this run builds every model
        conn.execute("update ops.dbt_inputs set fingerprint = 'an older release' where scope = 'project'")
    outcome = ingest(drills["b"])
    assert outcome.ok, outcome.error
    assert outcome.partitions[0] == "2024-10-01"  # from the changed quarter on: 2024-Q3 lies outside the range
    assert fetch(url, "select count(*) from raw.svr_rm where quarter_start = '2024-07-01'")[0][0] > 0
    assert fingerprint(url) == drills["clean"]["b"]
    kinds = fetch(
        url,
        "select table_name, table_type from information_schema.tables where table_schema = 'staging' "
        "and table_name in ('stg_svr_rm', 'stg_consumer', 'stg_c2') order by 1",
    )
    assert kinds == [("stg_c2", "BASE TABLE"), ("stg_consumer", "BASE TABLE"), ("stg_svr_rm", "BASE TABLE")]


def test_an_artefact_folder_that_cannot_be_written_fails_the_run_and_the_next_ingest_heals(drills, after_a):
    """The run-artefact folder is unusable (a file where the folder should be: root ignores
    permissions, not that): the run fails naming the path, analysts keep export A, and once
    the folder is back the next ingest of B converges to a clean ingest of B."""
    from synoforecast.settings import get_settings

    url = after_a
    folder = get_settings().forecasts_dir
    aside = folder.with_name("forecasts.aside")
    if folder.exists():
        folder.rename(aside)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder")
    try:
        outcome = ingest(drills["b"])
        assert not outcome.ok and not outcome.refused  # a failure (exit 1), not the workbook's fault
        assert str(folder) in outcome.error, outcome.error
        assert published_of(fingerprint(url)) == published_of(drills["clean"]["a"])
    finally:
        folder.unlink()
        if aside.exists():
            aside.rename(folder)
    outcome = ingest(drills["b"])
    assert outcome.ok, outcome.error
    assert fingerprint(url) == drills["clean"]["b"]


def _export_taken(path: Path, day: dt.date) -> Path:
    stamp = dt.datetime(day.year, day.month, day.day, 7, tzinfo=dt.UTC).timestamp()
    os.utime(path, (stamp, stamp))  # the export date is the file's date
    return path


def test_a_quarter_partial_in_one_export_is_published_when_the_next_export_completes_it(drills, tmp_path):
    """Export taken 29 Dec (Q4 still partial), then one taken 5 Jan: the same December rows
    plus a few January ones. Q4 completes, and must be materialised (the first release
    compared per-quarter hashes that included the partial quarter and found nothing changed)."""
    url = new_database(drills["pg_server"])
    use_warehouse(drills, url)
    december = tmp_path / "export-2025-12-29.xlsx"
    write_sample_workbook(
        december, SampleSpec(rows=900, seed=7, start=dt.date(2024, 1, 1), quarters=8, as_of=dt.date(2025, 12, 29))
    )
    _export_taken(december, dt.date(2025, 12, 29))
    first = ingest(december)
    assert first.ok, first.error
    assert "2025-10-01" not in first.partitions  # partial: not a training target yet

    def january_rows(wb) -> None:
        sheet = wb["SVR-RM"]
        last = [c.value for c in sheet[sheet.max_row]]
        for day in (2, 3):
            sheet.append([dt.datetime(2026, 1, day), *last[1:]])

    january = _export_taken(edited(december, tmp_path / "export-2026-01-05.xlsx", january_rows), dt.date(2026, 1, 5))
    second = ingest(january)
    assert second.ok, second.error
    assert "2025-10-01" in second.partitions, second.partitions
    assert fetch(url, "select count(*) from forecast.forecasts where as_of_quarter = '2025-10-01'")[0][0] > 0
    assert fetch(url, "select count(*) from published.forecasts where as_of_quarter = '2025-10-01'")[0][0] > 0
