"""Runs whose process is gone: find them, mark them failed, free what they held.

A run killed with -9 (or whose container died) stays STARTED for ever: it counts
against the run-concurrency limit and keeps its pool slots (the `dbt` pool), so every
later run waits. Dagster's run monitoring does not catch it: `DefaultRunLauncher`
(the CLI's, and the Docker deployment's, where runs are subprocesses of the user-code
container) cannot check a run worker's health, so monitoring only fails runs stuck
STARTING or past `max_runtime_seconds`. Such runs are found here instead: at every CLI
start and sensor tick (sensors run in the code server, where the Docker deployment's
run workers run too), and listed by `synoforecast doctor`. Marked failed, a run is
retried by the instance's `run_retries` (the Docker kill drill in
synoforecast_tests/deploy/test_stack_docker.py shows it end to end).

A run's process is known from its tags (`synoforecast/pid` + `synoforecast/host`, set by
the CLI) or from the "Executing steps in process (pid: N)" engine event every run
worker writes; a run is only judged on the host that started it. A live process with
that pid which started after the run did is another process (a restarted container
counts its pids from 1 again), so the run's own process is gone.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from dataclasses import dataclass

import dagster as dg

PID_TAG = "synoforecast/pid"
HOST_TAG = "synoforecast/host"
IN_FLIGHT = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


@dataclass(frozen=True)
class StuckRun:
    run_id: str
    job_name: str
    status: str
    pid: int
    since: str

    def describe(self) -> str:
        return f"run {self.run_id[:8]} ({self.job_name}, {self.status} since {self.since}, process {self.pid} gone)"


def process_tags() -> dict[str, str]:
    """Tags that let another process tell whether this run's process still lives."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _process_start(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), from /proc; None where unknown. Measured back
    from now by the system's uptime, not forward from /proc/stat's `btime`: btime is whole
    seconds and drifts from the wall clock on VMs, which put a process started 1.5 s after a
    run at 0.9 s after it and made a reused pid look like the run's own."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime:
            since_boot = float(uptime.read().split()[0])
        return time.time() - (since_boot - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _same_process(pid: int, run_start: float | None) -> bool:
    """`pid` is alive and may be the run's process: it did not start after the run did."""
    if not _alive(pid):
        return False
    started = _process_start(pid) if run_start else None
    return started is None or started <= run_start + 1.0


def _engine_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=20).records
    for record in records:
        event = record.event_log_entry.dagster_event
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        pid = metadata.get("pid")
        if pid is not None:
            return int(pid.value if hasattr(pid, "value") else pid)
    return None


def _run_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    host = run.tags.get(HOST_TAG)
    if host is not None and host != socket.gethostname():
        return None  # another machine's run: its own host (or run monitoring) judges it
    if PID_TAG in run.tags:
        return int(run.tags[PID_TAG])
    return _engine_pid(instance, run.run_id)


def stuck_runs(instance: dg.DagsterInstance) -> list[StuckRun]:
    """In-flight runs on this host whose process no longer exists."""
    out = []
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT), limit=200):
        pid = _run_pid(instance, run)
        if pid is None or pid == os.getpid():
            continue
        record = instance.get_run_record_by_id(run.run_id)
        if _same_process(pid, record.start_time if record else None):
            continue
        since = record.start_time or (record.create_timestamp.timestamp() if record else None)
        when = dt.datetime.fromtimestamp(since, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if since else "?"
        out.append(StuckRun(run.run_id, run.job_name, run.status.value, pid, when))
    return out


def free_slots(instance: dg.DagsterInstance, run_id: str) -> None:
    """Release the pool / op-concurrency slots a dead run still claims."""
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        storage.free_concurrency_slots_for_run(run_id)


def reap(instance: dg.DagsterInstance) -> list[StuckRun]:
    """Mark every stuck run failed (with the reason) and free its slots; return them."""
    stuck = stuck_runs(instance)
    for item in stuck:
        run = instance.get_run_by_id(item.run_id)
        if run is None or run.status not in IN_FLIGHT:
            continue
        instance.report_run_failed(
            run,
            message=f"synoforecast: the run's process {item.pid} is gone (killed or "
            "crashed); marked failed and its concurrency slots freed",
        )
        free_slots(instance, item.run_id)
    return stuck


def reap_stuck_runs(instance: dg.DagsterInstance, say) -> None:
    """reap, saying each run it marked through ``say`` (a sensor's log, the CLI's progress)."""
    for stuck in reap(instance):
        say(f"marked {stuck.describe()} as failed and freed its concurrency slots")


@dataclass(frozen=True)
class PoolHolder:
    pool: str
    run_id: str


def pool_holders(instance: dg.DagsterInstance, pools: list[str]) -> list[PoolHolder]:
    """Runs holding a slot of these pools right now (other than this process's runs)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holders = []
    for pool in pools:
        info = storage.get_concurrency_info(pool)
        if info.slot_count and len(info.claimed_slots) >= info.slot_count:
            holders += [PoolHolder(pool, slot.run_id) for slot in info.claimed_slots]
    return holders


def pipeline_runs_in_flight(instance: dg.DagsterInstance, job_name: str) -> list[str]:
    """Ids of live runs of `job_name` (queued or running; dead ones are reaped first)."""
    statuses = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, *IN_FLIGHT]
    return [r.run_id for r in instance.get_runs(dg.RunsFilter(job_name=job_name, statuses=statuses), limit=20)]


def limits_in_use(instance: dg.DagsterInstance, pools: list[str], job_name: str | None) -> list[str]:
    """What would make a run of `job_name` wait now, in words (nothing: [])."""
    reap(instance)
    blockers = [f"pool '{h.pool}' held by run {h.run_id}" for h in pool_holders(instance, pools)]
    if job_name:
        blockers += [
            f"{job_name} run {run_id} in progress (one at a time)"
            for run_id in pipeline_runs_in_flight(instance, job_name)
        ]
    return blockers


def wait_for_limits(
    instance: dg.DagsterInstance,
    pools: list[str],
    job_name: str | None,
    timeout_s: float,
    progress,
    poll_s: float = 2.0,
) -> list[str]:
    """Wait (saying so once) until no other run holds these pools or runs `job_name`;
    return what still blocks if `timeout_s` passed first."""
    deadline = time.monotonic() + timeout_s
    announced = False
    while True:
        blockers = limits_in_use(instance, pools, job_name)
        if not blockers or time.monotonic() >= deadline:
            return blockers
        if not announced:
            progress(f"waiting up to {timeout_s:.0f} s for a concurrency limit: {'; '.join(blockers)}")
            announced = True
        time.sleep(poll_s)


def stuck_runs_report(dagster_home) -> tuple[str, str, str]:
    """(status, detail, fix) for `synoforecast doctor`: lists stuck runs, changes nothing."""
    from pathlib import Path

    home = Path(dagster_home)
    if not (home / "dagster.yaml").exists() and not home.exists():
        return "skipped", f"{home} does not exist yet", ""
    from synoforecast.instance.sqlite_storage import open_instance

    with open_instance(home) as instance:
        stuck = stuck_runs(instance)
        holders = pool_holders(instance, ["dbt"])
    if stuck:
        return (
            "fail",
            f"{len(stuck)} run(s) whose process is gone still hold limits: "
            + "; ".join(s.describe() for s in stuck[:5]),
            "`python -m synoforecast.instance.runs --clear` (or any `synoforecast ingest`, or the next sensor tick) "
            "marks them failed and frees their slots",
        )
    if holders:
        return ("ok", f"no stuck run; pool 'dbt' is in use by live run {holders[0].run_id[:8]}", "")
    return "ok", "no stuck run", ""


if __name__ == "__main__":  # python -m synoforecast.instance.runs [--clear]
    import sys

    from synoforecast.settings import ensure_dagster_home, get_settings

    ensure_dagster_home(get_settings())
    with dg.DagsterInstance.get() as _instance:
        found = reap(_instance) if "--clear" in sys.argv else stuck_runs(_instance)
    for _item in found:
        print(("cleared " if "--clear" in sys.argv else "stuck ") + _item.describe())
    print(f"{len(found)} stuck run(s)")
