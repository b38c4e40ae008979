"""What every domain's runs agree on: the job names, the run tags, and the export a run
works on. Domains meet through asset keys and these names, never through each other's
asset modules."""

import dagster as dg

from synoforecast.lib.ingest import snapshots

SNAPSHOT_KEY = dg.AssetKey("workbook_snapshot")  # the ingestion domain's snapshot asset, by key
SNAPSHOT_JOB = "ingest_snapshot_job"
PIPELINE_JOB = "forecast_pipeline_job"
SNAPSHOT_TAG = "synoforecast/snapshot"  # the sha256 of the export a run works on; set on every run ingestion starts
REFUSED_TAG = "synoforecast/refused"  # a snapshot run refused (or held by the shrink guard): never retried
ALLOW_SHRINK_TAG = "synoforecast/allow_shrink"  # "true": publish a snapshot that shrank beyond the limit
REPUBLISH_TAG = "synoforecast/republish"  # "true": publish an export older than the published one (a rollback)


def platform_sensor(name: str, every_s: int, description: str, **target):
    """The platform's sensors: running from the first start (a fresh install watches its inbox
    without a click), evaluated every ``every_s`` seconds; ``target`` is job= or job_name=."""
    return dg.sensor(
        name=name,
        minimum_interval_seconds=every_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
        **target,
    )


def snapshot_for_run(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, url: str) -> dict:
    """The snapshot this run was started for (run tag), else the latest accepted one."""
    sha = context.run.tags.get(SNAPSHOT_TAG)
    manifest = snapshots.accepted_snapshot(url, sha)
    if manifest is None:
        wanted = f"snapshot {sha}" if sha else "any accepted snapshot"
        raise dg.Failure(f"{wanted} not found: materialize workbook_snapshot first (or drop a workbook in the inbox)")
    return manifest
