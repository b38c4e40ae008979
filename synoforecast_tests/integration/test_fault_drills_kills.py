"""Fault drills (issue 11), processes and infrastructure, against a real PostgreSQL and real
Dagster runs: a run killed with -9 during the raw COPY, during dbt and during the forecast
publish never shows analysts a mix (schema `published` keeps the previous export) and the next
ingest of either export converges to a clean ingest of it; two runs started together leave
one row set per grain; the warehouse stopped mid-run, a failed dbt build and an unwritable
artefact folder are failures naming their cause that the next run heals. The shared exports
and helpers: synoforecast_tests/support/fault_drills.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from synoforecast_tests.conftest import fetch
from synoforecast_tests.support.fault_drills import (
    _dbt_running,
    clone,
    fingerprint,
    heal_by_sensor_tick,
    ingest,
    kill_during,
    published_of,
    redrop_is_requested_again,
    use_warehouse,
)

pytestmark = pytest.mark.integration


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
