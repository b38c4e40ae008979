"""Inbox sensor: a new, stable workbook starts a snapshot run (sha256 as run_key).

A workbook refused for its content is never retried (it fails the same way every
time); a snapshot run that *failed* (I/O error, warehouse down, a bug) is retried on
later ticks, at most MAX_ATTEMPTS times. A re-dropped workbook whose content is not
what analysts see (e.g. its first run was killed) runs again.
"""

import dagster as dg

from synoforecast.defs.resources import WarehouseResource
from synoforecast.defs.runs import REFUSED_TAG, SNAPSHOT_JOB, SNAPSHOT_TAG, platform_sensor
from synoforecast.lib.ingest.inbox import InboxCursor, scan_inbox
from synoforecast.settings import get_settings

MAX_ATTEMPTS = 3


def snapshot_run_request(path: str, sha256: str, run_key: str | None = None) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key or sha256,
        job_name=SNAPSHOT_JOB,
        run_config={"ops": {"workbook_snapshot": {"config": {"path": path}}}},
        # a refused workbook fails the same way every time: the run itself is never retried;
        # a failure is retried by this sensor (retry_request)
        tags={SNAPSHOT_TAG: sha256, "synoforecast/file": path, "dagster/retry_on_asset_or_op_failure": "false"},
    )


def already_ingested(instance: dg.DagsterInstance, sha256: str) -> bool:
    """Content that a snapshot run (sensor- or CLI-started) already accepted."""
    done = instance.get_runs(
        dg.RunsFilter(job_name=SNAPSHOT_JOB, tags={SNAPSHOT_TAG: sha256}, statuses=[dg.DagsterRunStatus.SUCCESS]),
        limit=1,
    )
    return bool(done)


def retry_request(instance: dg.DagsterInstance, path: str, sha256: str) -> dg.RunRequest | None:
    """Another snapshot run for content whose last run failed for a reason that is not the
    workbook's (refusals carry REFUSED_TAG), until MAX_ATTEMPTS runs have failed."""
    runs = instance.get_runs(dg.RunsFilter(job_name=SNAPSHOT_JOB, tags={SNAPSHOT_TAG: sha256}), limit=MAX_ATTEMPTS + 1)
    if not runs or runs[0].status != dg.DagsterRunStatus.FAILURE or runs[0].tags.get(REFUSED_TAG) == "true":
        return None
    failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
    if len(failed) >= MAX_ATTEMPTS:
        return None
    return snapshot_run_request(path, sha256, run_key=f"{sha256}:retry{len(failed)}")


def _published_sha(warehouse: WarehouseResource) -> str | None:
    from synoforecast.lib.warehouse.published import published_snapshot

    current = published_snapshot(warehouse.get_url())
    return current[0] if current else None


@platform_sensor(
    "inbox_sensor",
    get_settings().sensor_interval_seconds,
    "Watches the inbox for new or changed workbooks (stable size and mtime over two ticks); "
    "retries snapshot runs that failed and marks runs whose process died as failed.",
    job_name=SNAPSHOT_JOB,
)
def inbox_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    from synoforecast.instance.runs import reap_stuck_runs

    reap_stuck_runs(context.instance, context.log.warning)
    inbox = get_settings().inbox_dir
    ready, cursor = scan_inbox(inbox, InboxCursor.load(context.cursor), include_known=True)
    requests = []
    published = (
        _published_sha(warehouse)
        if any(r.known and already_ingested(context.instance, r.sha256) for r in ready)
        else None
    )
    for r in ready:
        if r.known:  # a re-drop of accepted content: run again unless it is what analysts see
            if r.sha256 != published and already_ingested(context.instance, r.sha256):
                requests.append(snapshot_run_request(r.path, r.sha256, run_key=f"{r.sha256}:{r.mtime_ns}"))
        elif not already_ingested(context.instance, r.sha256):
            requests.append(snapshot_run_request(r.path, r.sha256))
    queued = {r.tags[SNAPSHOT_TAG] for r in requests}
    for name, entry in cursor.files.items():
        sha = entry[2] if len(entry) > 2 else None
        if sha and sha not in queued:
            retry = retry_request(context.instance, str(inbox / name), sha)
            if retry is not None:
                requests.append(retry)
                queued.add(sha)
    skip = None if requests else dg.SkipReason(f"no new stable workbook in {inbox}")
    return dg.SensorResult(run_requests=requests, cursor=cursor.dump(), skip_reason=skip)
