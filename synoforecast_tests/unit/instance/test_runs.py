"""Stuck runs on a real (SQLite) Dagster instance: a run whose process is gone is marked
failed and its pool slot freed; a live one is left alone; doctor lists them."""

from __future__ import annotations

import socket
import subprocess
import time

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from synoforecast.instance.runs import (
    HOST_TAG,
    PID_TAG,
    _process_start,
    pool_holders,
    reap,
    stuck_runs,
    stuck_runs_report,
)

CONFIG = """
concurrency:
  pools:
    default_limit: 1
"""


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster.yaml").write_text(CONFIG)
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        yield inst


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def started_run(instance, pid: int, host: str | None = None) -> str:
    run = DagsterRun(
        job_name="forecast_pipeline_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={PID_TAG: str(pid), HOST_TAG: host or socket.gethostname()},
    )
    instance.add_run(run)
    return run.run_id


def test_a_killed_run_is_marked_failed_and_its_dbt_slot_freed(instance, tmp_path):
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default("dbt")
    run_id = started_run(instance, dead_pid())
    assert storage.claim_concurrency_slot("dbt", run_id, "synoforecast_dbt_assets").is_claimed
    assert [h.run_id for h in pool_holders(instance, ["dbt"])] == [run_id]
    status, detail, fix = stuck_runs_report(tmp_path)
    assert status == "fail" and run_id[:8] in detail and "--clear" in fix

    assert [s.run_id for s in reap(instance)] == [run_id]
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    assert pool_holders(instance, ["dbt"]) == []
    assert stuck_runs(instance) == []
    assert stuck_runs_report(tmp_path)[0] == "ok"


def test_a_pid_taken_by_a_process_started_after_the_run_is_not_the_runs_process(instance):
    """A restarted container counts pids from 1 again: a live process under the run's pid
    that started after the run did is someone else, and the run is reaped."""
    run_id = started_run(instance, dead_pid())
    instance.report_dagster_event(
        dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name="forecast_pipeline_job"), run_id
    )
    assert instance.get_run_record_by_id(run_id).start_time
    time.sleep(1.5)
    newer = subprocess.Popen(["sleep", "60"])
    try:
        instance.add_run_tags(run_id, {PID_TAG: str(newer.pid)})
        assert [s.run_id for s in reap(instance)] == [run_id]
    finally:
        newer.kill()
        newer.wait()


def test_live_runs_and_other_hosts_runs_are_left_alone(instance):
    live = started_run(instance, subprocess.os.getppid())
    elsewhere = started_run(instance, dead_pid(), host="another-host")
    assert reap(instance) == []
    assert {instance.get_run_by_id(r).status for r in (live, elsewhere)} == {dg.DagsterRunStatus.STARTED}


def test_a_limit_held_by_a_live_run_is_waited_for_then_given_up_with_the_holder_named(instance):
    from synoforecast.instance.runs import wait_for_limits

    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default("dbt")
    live = started_run(instance, subprocess.os.getppid())
    storage.claim_concurrency_slot("dbt", live, "synoforecast_dbt_assets")
    said = []
    blockers = wait_for_limits(instance, ["dbt"], None, timeout_s=0.3, progress=said.append, poll_s=0.1)
    assert blockers == [f"pool 'dbt' held by run {live}"]
    assert said == [f"waiting up to 0 s for a concurrency limit: pool 'dbt' held by run {live}"]
    assert wait_for_limits(instance, ["dbt"], "forecast_pipeline_job", 0, said.append) == [
        f"pool 'dbt' held by run {live}",
        f"forecast_pipeline_job run {live} in progress (one at a time)",
    ]
    storage.free_concurrency_slots_for_run(live)
    instance.report_run_failed(instance.get_run_by_id(live))
    assert wait_for_limits(instance, ["dbt"], "forecast_pipeline_job", 0.3, said.append, poll_s=0.1) == []


def test_a_process_start_time_is_read_to_a_fraction_of_a_second():
    """/proc/stat's btime is whole seconds (and drifts on VMs): a start read from it was up to
    a second early, enough to take a pid reused 1.5 s after a run for the run's process."""
    before = time.time()
    proc = subprocess.Popen(["sleep", "5"])
    try:
        assert abs(_process_start(proc.pid) - before) < 0.25
    finally:
        proc.kill()
        proc.wait()
