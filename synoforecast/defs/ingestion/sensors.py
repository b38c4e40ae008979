"""Inbox sensor: a new, stable workbook starts a snapshot run (sha256 as run_key)."""


import dagster as dg

from synoforecast.defs.ingestion.assets import PIPELINE_JOB, SNAPSHOT_TAG  # noqa: F401 (re-export)
from synoforecast.lib.inbox import InboxCursor, scan_inbox
from synoforecast.settings import get_settings

SNAPSHOT_JOB = "ingest_snapshot_job"


def snapshot_run_request(path: str, sha256: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=sha256,
        job_name=SNAPSHOT_JOB,
        run_config={"ops": {"workbook_snapshot": {"config": {"path": path}}}},
        # a refused workbook fails the same way every time: never retry it
        tags={SNAPSHOT_TAG: sha256, "synoforecast/file": path, "dagster/retry_on_asset_or_op_failure": "false"},
    )


def already_ingested(instance: dg.DagsterInstance, sha256: str) -> bool:
    """Content that a snapshot run (sensor- or CLI-started) already accepted."""
    done = instance.get_runs(dg.RunsFilter(tags={SNAPSHOT_TAG: sha256}, statuses=[dg.DagsterRunStatus.SUCCESS]),
                             limit=1)
    return bool(done)


@dg.sensor(name="inbox_sensor", job_name=SNAPSHOT_JOB, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches the inbox for new or changed workbooks (stable size and mtime over two ticks).")
def inbox_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    inbox = get_settings().inbox_dir
    ready, cursor = scan_inbox(inbox, InboxCursor.load(context.cursor))
    requests = [snapshot_run_request(r.path, r.sha256) for r in ready
                if not already_ingested(context.instance, r.sha256)]
    skip = None if requests else dg.SkipReason(f"no new stable workbook in {inbox}")
    return dg.SensorResult(run_requests=requests, cursor=cursor.dump(), skip_reason=skip)
