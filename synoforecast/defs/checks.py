"""Per-partition asset-check evaluations (design §1: "each evaluation must name its partition").

Dagster 1.13 names the partition of an `AssetCheckResult` only when the step runs ONE
partition. The platform runs a range of quarters in one run (single-run backfill policy),
and then every result is stored without a partition: the UI shows the partitioned check
as "Skipped" on every quarter while its panel says "Passed". A check built with this
helper yields one `AssetCheckEvaluation` per partition key instead, each carrying its
partition, the quarter label and the materialisation of that partition it judged.

Usage inside a partitioned `@dg.asset_check` (a generator)::

    @dg.asset_check(asset=key, name="x", partitions_def=quarterly_partitions, blocking=True)
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        results = {k: dg.AssetCheckResult(passed=..., metadata=...) for k in context.partition_keys}
        yield from per_partition(context, results)

Blocking still works: a failed ERROR-severity evaluation of a blocking check fails the
step (Dagster collects the failed blocking evaluations of the step, whatever their partition).
"""

from collections.abc import Iterable, Iterator, Mapping

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (  # not re-exported at top level
    AssetCheckEvaluationTargetMaterializationData,
)

from synoforecast.defs.partitions import label


def _target_materialization(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The latest materialisation of this partition: what the evaluation judged."""
    found = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
    ).records
    if not found:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        run_id=found[0].event_log_entry.run_id, storage_id=found[0].storage_id, timestamp=found[0].timestamp
    )


def materializations_judged(instance: dg.DagsterInstance):
    """`lookup(asset_key, partition)`: the materialisation an evaluation judged, fetched once per
    (asset, partition) in a step. A dbt build asks for each test of a model, per quarter: 1,280
    lookups of one table for 8 quarters, of 152 distinct answers. The model is not written
    again within the step, so its answer holds for all its tests."""
    seen: dict[tuple[dg.AssetKey, str], AssetCheckEvaluationTargetMaterializationData | None] = {}

    def lookup(asset_key: dg.AssetKey, partition: str) -> AssetCheckEvaluationTargetMaterializationData | None:
        if (asset_key, partition) not in seen:
            seen[(asset_key, partition)] = _target_materialization(instance, asset_key, partition)
        return seen[(asset_key, partition)]

    return lookup


def per_partition(
    context: dg.AssetCheckExecutionContext, results: Mapping[str, dg.AssetCheckResult]
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """One evaluation per partition key of this run, then the check's (empty) output.

    ``results`` must hold exactly the run's partition keys: a quarter the check forgot
    would silently stay "Skipped" again, so that is an error.
    """
    (spec,) = context.check_specs
    keys = list(context.partition_keys)
    if set(results) != set(keys):
        raise dg.DagsterInvariantViolationError(
            f"check {spec.name}: results for {sorted(results)} but the run covers {keys}"
        )
    lookup = materializations_judged(context.instance)
    for key in keys:
        yield _evaluation(lookup, spec, results[key], key)
    output_name = context.job_def.asset_layer.get_op_output_name(spec.key)
    yield dg.Output(None, output_name=output_name)


def _evaluation(lookup, spec: dg.AssetCheckSpec, result: dg.AssetCheckResult, key: str) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=spec.asset_key,
        check_name=spec.name,
        passed=result.passed,
        metadata={"quarter": label(key), **result.metadata},
        severity=result.severity,
        description=result.description,
        blocking=spec.blocking,
        partition=key,
        target_materialization_data=lookup(spec.asset_key, key),
    )


def per_quarter_events(context: dg.AssetExecutionContext, events: Iterable) -> Iterator:
    """`events` of a multi-asset over a range of quarters (dbt's stream), each check result
    recorded once per quarter of the run: a dbt test runs over the whole range, so its result
    holds for every quarter of it, and a failing quarter then shows Failed on that quarter
    (and on its neighbours in the range) instead of "Partition —". A run of one quarter too:
    Dagster records a check result yielded in a partitioned run without its partition.
    Other events pass through."""
    keys = list(context.partition_keys) if context.has_partition_key or context.has_partition_key_range else []
    specs = {spec.key: (name, spec) for name, spec in context.assets_def.check_specs_by_output_name.items()}
    lookup = materializations_judged(context.instance)
    for event in events:
        if not isinstance(event, dg.AssetCheckResult) or not keys:
            yield event
            continue
        output_name, spec = specs[dg.AssetCheckKey(event.asset_key, event.check_name)]
        for key in keys:
            yield _evaluation(lookup, spec, event, key)
        yield dg.Output(None, output_name=output_name)
