"""Wiring between the snapshot and the downstream run: partition ranges and the asset sensor."""

import dagster as dg

from synoforecast.definitions import defs
from synoforecast.defs.pipeline import downstream_run_request, snapshot_downstream_sensor
from synoforecast.defs.runs import PIPELINE_JOB

SHA = "ab" * 32


def test_downstream_request_covers_the_snapshot_complete_quarters_in_one_run():
    complete = ["2021-01-01", "2021-04-01", "2024-10-01"]
    request = downstream_run_request(complete, complete, SHA)
    assert isinstance(request, dg.RunRequest)
    assert request.job_name == PIPELINE_JOB
    assert request.tags["dagster/asset_partition_range_start"] == "2021-01-01"
    assert request.tags["dagster/asset_partition_range_end"] == "2024-10-01"
    assert request.tags["synoforecast/snapshot"] == SHA


def test_quarters_outside_the_partitions_are_clipped_and_none_left_is_a_skip():
    request = downstream_run_request(["2015-01-01", "2020-04-01"], ["2015-01-01", "2020-04-01"], SHA)
    assert request.tags["dagster/asset_partition_range_start"] == "2020-01-01"  # partitions start
    assert request.tags["dagster/asset_partition_range_end"] == "2020-04-01"
    assert isinstance(downstream_run_request([], ["2021-01-01"], SHA), dg.SkipReason)
    assert isinstance(downstream_run_request(["2016-01-01"], ["2016-01-01", "2016-04-01"], SHA), dg.SkipReason)


def test_only_changed_quarters_onwards_are_rematerialised_and_named():
    complete = ["2021-01-01", "2021-04-01", "2021-07-01", "2021-10-01"]
    request = downstream_run_request(["2021-04-01", "2021-07-01"], complete, SHA)
    assert request.tags["dagster/asset_partition_range_start"] == "2021-04-01"
    assert request.tags["dagster/asset_partition_range_end"] == "2021-10-01"
    assert request.tags["synoforecast/changed_quarters"] == "2021-Q2,2021-Q3"


def test_asset_sensor_follows_a_snapshot_materialization_with_the_pipeline_run():
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        first = list(snapshot_downstream_sensor(context))  # nothing materialised yet
        assert all(isinstance(r, dg.SkipReason) for r in first)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="workbook_snapshot",
                metadata={
                    "sha256": SHA,
                    "complete_quarter_keys": dg.MetadataValue.json(["2022-01-01", "2023-07-01"]),
                    "changed_quarter_keys": dg.MetadataValue.json(["2022-01-01", "2023-07-01"]),
                },
            )
        )
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        requests = list(snapshot_downstream_sensor(context))
        assert len(requests) == 1
        request = requests[0]
        assert request.tags["dagster/asset_partition_range_start"] == "2022-01-01"
        assert request.tags["dagster/asset_partition_range_end"] == "2023-07-01"
        assert request.run_key.startswith(SHA)


def test_a_snapshot_ingested_by_the_cli_is_not_followed_twice():
    from types import SimpleNamespace

    from synoforecast.defs.pipeline import DOWNSTREAM_IN_PROCESS_TAG, follow_snapshot

    materialization = dg.AssetMaterialization(
        asset_key="workbook_snapshot",
        metadata={
            "sha256": SHA,
            "complete_quarter_keys": dg.MetadataValue.json(["2022-01-01"]),
            "changed_quarter_keys": dg.MetadataValue.json(["2022-01-01"]),
        },
    )
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("ingest_snapshot_job")
        by_cli = instance.create_run_for_job(job, tags={DOWNSTREAM_IN_PROCESS_TAG: "in-process"})
        by_sensor = instance.create_run_for_job(job, tags={})
        skipped = follow_snapshot(
            instance, SimpleNamespace(run_id=by_cli.run_id, asset_materialization=materialization)
        )
        followed = follow_snapshot(
            instance, SimpleNamespace(run_id=by_sensor.run_id, asset_materialization=materialization)
        )
    assert isinstance(skipped, dg.SkipReason) and "itself" in skipped.skip_message
    assert isinstance(followed, dg.RunRequest)


def _mart_requested_after_check(passed: bool) -> bool:
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    from synoforecast.defs.partitions import quarterly_partitions

    key = quarterly_partitions.get_last_partition_key()  # eager() follows the latest quarter
    raw = dg.AssetKey(["raw", "svr_rm"])
    mart = dg.AssetKey(["staging", "stg_svr_rm"])
    graph = defs.resolve_asset_graph()
    selection = dg.AssetSelection.assets(mart)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="workbook_snapshot"))
        for asset in [*graph.get(mart).parent_keys, mart]:  # everything in place, up to date
            if asset.path != ["workbook_snapshot"]:
                instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=key))
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=raw, partition=key))  # new raw rows
        for check in graph.asset_check_keys:  # every upstream check passes, except the one under test
            if check.asset_key in graph.get(mart).parent_keys:
                ok = passed if check.asset_key == raw and check.name == "svr_rm_contract" else True
                latest = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=check.asset_key, asset_partitions=[key]), limit=1
                ).records[0]
                target = AssetCheckEvaluationTargetMaterializationData(
                    storage_id=latest.storage_id, run_id=latest.run_id, timestamp=latest.timestamp
                )
                instance.report_runless_asset_event(
                    dg.AssetCheckEvaluation(
                        asset_key=check.asset_key,
                        check_name=check.name,
                        passed=ok,
                        partition=key,
                        severity=dg.AssetCheckSeverity.ERROR,
                        target_materialization_data=target,
                    )
                )
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=first.cursor
        )
        return key in result.get_requested_partitions(mart)


def test_automation_never_follows_a_failed_blocking_check_from_an_earlier_run():
    """With the automation sensor on, dbt models follow new raw data, unless raw's blocking
    contract check failed: Dagster's own evaluator decides, on a real instance."""
    assert _mart_requested_after_check(passed=True)
    assert not _mart_requested_after_check(passed=False)


def test_a_snapshot_held_by_the_shrink_guard_gets_no_downstream_run():
    complete = ["2021-01-01", "2021-04-01"]
    skip = downstream_run_request(complete, complete, SHA, blocked="SVR-RM rows loaded 18,979 -> 0 (-100%)")
    assert isinstance(skip, dg.SkipReason)
    assert "snapshot_shrink" in skip.skip_message and "18,979 -> 0" in skip.skip_message


def test_pipeline_runs_carry_the_tag_both_instance_configs_limit_to_one():
    import yaml

    from synoforecast.defs.pipeline import PIPELINE_RUN_TAG
    from synoforecast.settings import CHECKOUT_DIR

    assert defs.resolve_job_def(PIPELINE_JOB).tags[PIPELINE_RUN_TAG] == "true"
    for config in (CHECKOUT_DIR / "dagster.yaml", CHECKOUT_DIR / "deploy" / "dagster.yaml"):
        limits = yaml.safe_load(config.read_text())["concurrency"]["runs"]["tag_concurrency_limits"]
        assert {"key": PIPELINE_RUN_TAG, "value": "true", "limit": 1} in limits, config
