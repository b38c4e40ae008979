"""Cross-domain wiring: the two jobs, the sensor that follows an accepted snapshot
with everything downstream, and the quarter-close schedule.

`downstream_run_request` is the one place that turns a snapshot's quarters into a
partition range; the sensor and `synoforecast ingest` both use it.
"""

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from synoforecast.defs.freshness import quarter_close_freshness
from synoforecast.defs.partitions import LANDING_GROUP, existing_keys, label, quarterly_partitions
from synoforecast.defs.published import published_snapshot
from synoforecast.defs.resources import WarehouseResource
from synoforecast.defs.runs import PIPELINE_JOB, SNAPSHOT_JOB, SNAPSHOT_KEY, SNAPSHOT_TAG, platform_sensor
from synoforecast.lib.forecasting.cohort_forecast import missing_coverage
from synoforecast.lib.ingest.snapshots import accepted_snapshot
from synoforecast.lib.quarters import parse_key
from synoforecast.settings import get_settings

DOWNSTREAM_IN_PROCESS_TAG = "synoforecast/downstream"
PIPELINE_RUN_TAG = "synoforecast/pipeline"  # on every pipeline run: instance configs limit it to one at a time
CHANGED_TAG = "synoforecast/changed_quarters"  # "in-process": the CLI runs the follow-up itself

# Steps run in the run's own process: a step process per asset would re-import the code
# location (dagster-dbt, polars, statsforecast) ~30 times per run, minutes on a NAS CPU;
# the parallelism that matters is inside dbt (threads) and statsforecast.
snapshot_job = dg.define_asset_job(
    SNAPSHOT_JOB,
    selection=dg.AssetSelection.keys(SNAPSHOT_KEY),
    executor_def=dg.in_process_executor,
    description="Validate a workbook and keep its parsed snapshot.",
)

forecast_pipeline_job = dg.define_asset_job(
    PIPELINE_JOB,
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.keys(SNAPSHOT_KEY)
    - dg.AssetSelection.groups(LANDING_GROUP)
    # freshness_sensor evaluates these: mid-run, `published` is not switched yet
    - dg.AssetSelection.checks(quarter_close_freshness),
    executor_def=dg.in_process_executor,
    tags={PIPELINE_RUN_TAG: "true"},
    description="Sheets -> dbt marts -> cohort forecasts -> evaluation -> Metabase and notifications, "
    "for a range of quarters in one run.",
)


QUARTERS_TAG = "synoforecast/quarters"


def pipeline_tags(partition_keys: list[str], sha256: str | None) -> dict[str, str]:
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: partition_keys[0],
        ASSET_PARTITION_RANGE_END_TAG: partition_keys[-1],
        QUARTERS_TAG: f"{label(partition_keys[0])}..{label(partition_keys[-1])}",
    }  # keys are dates: the UI shows this
    if sha256:
        tags[SNAPSHOT_TAG] = sha256
    return tags


def snapshot_partition_keys(complete_quarter_keys: list[str]) -> list[str]:
    """Existing partitions from the snapshot's first to last complete quarter."""
    if not complete_quarter_keys:
        return []
    keys = quarterly_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange(*_clip(complete_quarter_keys[0], complete_quarter_keys[-1]))
    )
    return existing_keys([parse_key(k) for k in keys])


def _clip(first: str, last: str) -> tuple[str, str]:
    first_partition = quarterly_partitions.get_first_partition_key()
    last_partition = quarterly_partitions.get_last_partition_key()
    return max(first, first_partition), min(last, last_partition)


def downstream_run_request(
    changed_quarter_keys: list[str],
    complete_quarter_keys: list[str],
    sha256: str,
    run_key: str | None = None,
    blocked: str | None = None,
) -> dg.RunRequest | dg.SkipReason:
    """One run from the first changed quarter to the last complete one: sheets and marts of
    unchanged quarters in between are rewritten identically, and every forecast as of a
    changed quarter or later must re-run anyway (its history includes the change).
    `blocked` (the shrink guard's finding) stops publication."""
    if blocked:
        return dg.SkipReason(f"snapshot {sha256[:12]}: publication stopped by the snapshot_shrink check: {blocked}")
    if not changed_quarter_keys:
        return dg.SkipReason(f"snapshot {sha256[:12]}: every complete quarter is already published from its content")
    keys = snapshot_partition_keys([changed_quarter_keys[0], complete_quarter_keys[-1]])
    if not keys:
        return dg.SkipReason(f"snapshot {sha256[:12]} has no changed quarter inside the partitions")
    tags = {**pipeline_tags(keys, sha256), CHANGED_TAG: ",".join(label(k) for k in changed_quarter_keys)[:4000]}
    return dg.RunRequest(run_key=run_key, job_name=PIPELINE_JOB, tags=tags)


def follow_snapshot(instance: dg.DagsterInstance, asset_event: dg.EventLogEntry) -> dg.RunRequest | dg.SkipReason:
    """The downstream run for an accepted snapshot, unless its run already did it in-process."""
    run = instance.get_run_by_id(asset_event.run_id) if asset_event.run_id else None
    if run is not None and run.tags.get(DOWNSTREAM_IN_PROCESS_TAG) == "in-process":
        return dg.SkipReason(f"run {asset_event.run_id} ran its downstream quarters itself (synoforecast ingest)")
    materialization = asset_event.asset_materialization
    metadata = materialization.metadata if materialization else {}
    keys = metadata.get("complete_quarter_keys")
    changed = metadata.get("changed_quarter_keys")
    sha = metadata.get("sha256")
    if keys is None or changed is None or sha is None:
        return dg.SkipReason("snapshot materialization without quarter metadata")
    blocked = metadata.get("shrink_blocked")
    reason = str(metadata["shrink_summary"].value) if blocked is not None and blocked.value else None
    return downstream_run_request(
        list(changed.value),
        list(keys.value),
        str(sha.value),
        run_key=f"{sha.value}:{asset_event.run_id}",
        blocked=reason,
    )


@dg.asset_sensor(
    asset_key=SNAPSHOT_KEY,
    job_name=PIPELINE_JOB,
    name="snapshot_downstream_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=get_settings().sensor_interval_seconds,
    description="After a snapshot is accepted, materialises its quarters downstream in one run.",
)
def snapshot_downstream_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    return follow_snapshot(context.instance, asset_event)


HEAL_GRACE_S = 300  # a snapshot accepted this recently is still being followed by its own run
HEAL_MAX_ATTEMPTS = 3
HEAL_TAG = "synoforecast/heal"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def heal_request(instance: dg.DagsterInstance, url: str, grace_s: float | None = None) -> dg.RunRequest | dg.SkipReason:
    """The run that makes the warehouse hold the newest accepted export again, if it does not:
    after a run that died, every partition not holding its content (and the final switch)."""
    from synoforecast.lib.ingest import snapshots
    from synoforecast.lib.ingest.reingest import stale_partitions
    from synoforecast.lib.warehouse.connection import connect
    from synoforecast.lib.warehouse.published import publish_targets
    from synoforecast.lib.warehouse.published import published_snapshot as published_pointer

    if instance.get_runs(dg.RunsFilter(job_name=PIPELINE_JOB, statuses=ACTIVE), limit=1):
        return dg.SkipReason("a pipeline run is in progress")
    with connect(url) as conn:
        row = conn.execute(
            "select sha256, extract(epoch from now() - last_seen_at) from ops.snapshots "
            "where status = 'accepted' order by last_seen_at desc limit 1"
        ).fetchone()
    if row is None:
        return dg.SkipReason("no accepted snapshot yet")
    manifest = snapshots.accepted_snapshot(url, row[0])
    if manifest is None or not manifest.get("expected_fingerprints"):
        return dg.SkipReason(f"snapshot {row[0][:12]}: no manifest with fingerprints on disk")
    if manifest.get("shrink", {}).get("blocked"):
        return dg.SkipReason(f"snapshot {row[0][:12]} is held by the snapshot_shrink check")
    if float(row[1]) < (HEAL_GRACE_S if grace_s is None else grace_s):
        return dg.SkipReason(f"snapshot {row[0][:12]} accepted {float(row[1]):.0f} s ago: its own run follows it")
    stale = stale_partitions(url, publish_targets(manifest["expected_fingerprints"]))
    published = published_pointer(url)
    complete = manifest["complete_quarter_keys"]
    if not stale and (published is None or published[0] == manifest["sha256"] or not complete):
        return dg.SkipReason(f"the warehouse holds snapshot {manifest['sha256'][:12]}: nothing to heal")
    failed = instance.get_runs(
        dg.RunsFilter(
            job_name=PIPELINE_JOB,
            statuses=[dg.DagsterRunStatus.FAILURE],
            tags={SNAPSHOT_TAG: manifest["sha256"], HEAL_TAG: "true"},
        ),
        limit=HEAL_MAX_ATTEMPTS,
    )
    if len(failed) >= HEAL_MAX_ATTEMPTS:
        return dg.SkipReason(
            f"snapshot {manifest['sha256'][:12]}: {len(failed)} healing runs failed; see run "
            f"{failed[0].run_id} and ingest again once the cause is fixed"
        )
    keys = snapshot_partition_keys([stale[0] if stale else complete[-1], complete[-1]])
    if not keys:
        return dg.SkipReason("nothing to heal inside the partitions")
    return dg.RunRequest(
        run_key=f"heal:{manifest['sha256']}:{keys[0]}:{len(failed)}",
        job_name=PIPELINE_JOB,
        tags={
            **pipeline_tags(keys, manifest["sha256"]),
            HEAL_TAG: "true",
            "synoforecast/trigger": f"heal {label(keys[0])}..{label(keys[-1])}",
        },
    )


@platform_sensor(
    "publish_heal_sensor",
    2 * get_settings().sensor_interval_seconds,
    "Marks runs whose process died as failed, and re-runs the partitions a failed or killed "
    "run left holding another export (then switches `published`).",
    job_name=PIPELINE_JOB,
)
def publish_heal_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    from synoforecast.instance.runs import reap_stuck_runs

    reap_stuck_runs(context.instance, context.log.warning)
    return heal_request(context.instance, warehouse.get_url())


@dg.schedule(
    job_name=PIPELINE_JOB,
    cron_schedule="0 6 * * *",
    name="quarter_close_schedule",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily at 06:00 once a quarter has closed: materialises that quarter as soon as an accepted "
    "export holds it completely (and says which export it waits for until then); once per quarter.",
)
def quarter_close_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    with dg.partition_loading_context(effective_dt=context.scheduled_execution_time):
        key = quarterly_partitions.get_last_partition_key()
    if key is None:
        return dg.SkipReason("no closed quarter yet")
    snapshot = accepted_snapshot(warehouse.get_url())
    waiting = missing_coverage(snapshot, parse_key(key), get_settings().fiscal_year_start_month)
    if waiting:
        return dg.SkipReason(f"quarter close {label(key)}: waiting for the export: {waiting}")
    return dg.RunRequest(
        run_key=f"quarter-close-{key}",
        partition_key=key,
        tags={"synoforecast/trigger": f"quarter close {label(key)}", SNAPSHOT_TAG: snapshot["sha256"]},
    )


defs = dg.Definitions(
    assets=[published_snapshot],
    jobs=[snapshot_job, forecast_pipeline_job],
    sensors=[snapshot_downstream_sensor, publish_heal_sensor],
    schedules=[quarter_close_schedule],
)
