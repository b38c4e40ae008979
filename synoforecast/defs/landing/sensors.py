"""The landing job, and the sensor that runs it once per snapshot with a quarter in progress."""

import dagster as dg

from synoforecast.defs.landing.assets import LANDING_CUTOFFS
from synoforecast.defs.partitions import LANDING_GROUP
from synoforecast.defs.resources import WarehouseResource
from synoforecast.defs.runs import SNAPSHOT_TAG, platform_sensor
from synoforecast.settings import get_settings

LANDING_JOB = "landing_job"

landing_job = dg.define_asset_job(
    LANDING_JOB,
    selection=dg.AssetSelection.groups(LANDING_GROUP),
    partitions_def=LANDING_CUTOFFS,
    executor_def=dg.in_process_executor,
    description="The snapshot's quarter in progress -> where it will land -> Metabase and the weekly summary "
    "(one cut-off per run).",
)


def landing_run_request(url: str, sha256: str | None = None) -> tuple[dg.RunRequest | dg.SkipReason, str | None]:
    """(the landing run for the snapshot, its cut-off key) once the snapshot's complete quarters
    are published (the landing starts from their forecasts), else why not."""
    from synoforecast.lib.ingest.reingest import stale_partitions
    from synoforecast.lib.ingest.snapshots import accepted_snapshot
    from synoforecast.lib.landing.running_quarter import NoQuarterInProgress, quarter_in_progress
    from synoforecast.lib.warehouse.published import publish_targets

    manifest = accepted_snapshot(url, sha256)
    if manifest is None:
        return dg.SkipReason("no accepted snapshot yet"), None
    try:
        _, cutoff = quarter_in_progress(manifest, get_settings().fiscal_year_start_month)
    except NoQuarterInProgress as exc:
        return dg.SkipReason(str(exc)), None
    stale = stale_partitions(url, publish_targets(manifest.get("expected_fingerprints", {})))
    if stale:
        return dg.SkipReason(
            f"snapshot {manifest['sha256'][:12]}: {len(stale)} quarter(s) not yet published from "
            "it; the landing follows once the pipeline has run"
        ), None
    key = cutoff.isoformat()
    return dg.RunRequest(
        run_key=f"landing:{manifest['sha256']}",
        partition_key=key,
        tags={SNAPSHOT_TAG: manifest["sha256"], "synoforecast/trigger": f"landing {key}"},
    ), key


def landed_already(instance: dg.DagsterInstance, sha256: str, cutoff_key: str) -> bool:
    """A landing run of this export at this cut-off succeeded, whoever launched it (this
    sensor's run key only knows its own runs, not the CLI's in-process landing)."""
    found = instance.get_run_records(
        dg.RunsFilter(
            job_name=LANDING_JOB,
            statuses=[dg.DagsterRunStatus.SUCCESS],
            tags={SNAPSHOT_TAG: sha256, "dagster/partition": cutoff_key},
        ),
        limit=1,
    )
    return bool(found)


@platform_sensor(
    "landing_sensor",
    2 * get_settings().sensor_interval_seconds,
    "Once the latest snapshot's quarters are published, lands its quarter in progress "
    "(once per snapshot: the run key is the snapshot's sha256, and a cut-off a CLI run already "
    "landed successfully is skipped).",
    job=landing_job,
)
def landing_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    request, key = landing_run_request(warehouse.get_url())
    if isinstance(request, dg.SkipReason):
        return request
    sha = request.tags[SNAPSHOT_TAG]
    if landed_already(context.instance, sha, key):  # e.g. `synoforecast ingest`/`demo` landed it in process
        return dg.SkipReason(f"snapshot {sha[:12]} already has a successful landing at its cut-off {key}")
    add = (
        []
        if context.instance.has_dynamic_partition(LANDING_CUTOFFS.name, key)
        else [LANDING_CUTOFFS.build_add_request([key])]
    )
    return dg.SensorResult(run_requests=[request], dynamic_partitions_requests=add)
