"""Ingestion checks: a blocking contract check on every sheet asset (the loaded rows honour
the pandera schema), and warning checks on each accepted snapshot (row-count delta,
quarantine, unknown models/countries, duplicate and null shares, restated published quarters)."""

from collections.abc import Callable

import dagster as dg

from synoforecast.defs.checks import per_partition
from synoforecast.defs.ingestion.assets import workbook_snapshot
from synoforecast.defs.partitions import partition_quarters, quarterly_partitions
from synoforecast.defs.resources import WarehouseResource
from synoforecast.lib.ingest import quality, restatements, snapshots
from synoforecast.lib.ingest.contract import SHEETS, SheetSpec
from synoforecast.lib.quarters import to_key
from synoforecast.settings import Settings, get_settings


def build_contract_check(spec: SheetSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["raw", spec.table]),
        name=f"{spec.table}_contract",
        blocking=True,
        partitions_def=quarterly_partitions,
        description=f"Required columns of '{spec.name}' present, non-null and of the contract's types.",
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        from synoforecast.lib.ingest.validation import validate_quarters  # pandera: slow import, only where checks run

        results = {}
        quarters = partition_quarters(context)
        for quarter, checked in validate_quarters(warehouse.get_url(), spec, quarters).items():
            results[to_key(quarter)] = dg.AssetCheckResult(  # one evaluation per quarter: the UI shows it there
                passed=not checked.problems,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"rows_checked": checked.rows_checked, "problems": dg.MetadataValue.json(checked.problems)},
            )
        yield from per_partition(context, results)

    return _check


contract_checks = [build_contract_check(spec) for spec in SHEETS]


def _manifests(context: dg.AssetCheckExecutionContext, url: str) -> tuple[dict, dict | None]:
    """This snapshot's manifest and that of the published snapshot it was compared with."""
    event = context.instance.get_latest_materialization_event(workbook_snapshot.key)
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    sha = metadata["sha256"].value if "sha256" in metadata else None
    current = snapshots.accepted_snapshot(url, sha)
    if current is None:
        raise dg.Failure("no accepted snapshot to check: materialize workbook_snapshot first")
    baseline_sha = current.get("baseline_sha256")
    return current, snapshots.accepted_snapshot(url, baseline_sha) if baseline_sha else None


SNAPSHOT_RULES: dict[str, tuple[Callable[[dict, dict | None, Settings], quality.Finding], str]] = {
    "snapshot_row_count_delta": (
        lambda cur, base, s: quality.row_count_delta(cur, base, s.row_delta_warn_pct),
        "Rows per sheet against the last published snapshot (warns beyond "
        "SYNOFORECAST_ROW_DELTA_WARN_PCT, default 20%).",
    ),
    "snapshot_quarantine": (
        lambda cur, base, s: quality.quarantine(cur),
        "Rows that could not be parsed were kept out (ops.quarantine lists cell and reason).",
    ),
    "snapshot_unknown_references": (
        lambda cur, base, s: quality.unknown_references(cur),
        "Models not in Device Bays and countries not in the region map (kept, flagged).",
    ),
    "snapshot_duplicate_share": (
        lambda cur, base, s: quality.duplicate_share(cur, s.duplicate_share_warn),
        "Share of exact duplicate rows removed (warns beyond SYNOFORECAST_DUPLICATE_SHARE_WARN).",
    ),
    "snapshot_null_share": (
        lambda cur, base, s: quality.null_share(cur, s.null_share_warn),
        "Optional columns mostly blank (warns beyond SYNOFORECAST_NULL_SHARE_WARN).",
    ),
    "snapshot_restatements": (
        lambda cur, base, s: restatements.finding(cur.get("restatements"), s.restatement_warn_share),
        "Published complete quarters this export restates (units, revenue, lines; C2 seats, "
        "MRR, lines; ops.restatements): warns when one moves by more than "
        "SYNOFORECAST_RESTATEMENT_WARN_SHARE (default 5%).",
    ),
}


def build_snapshot_check(name: str) -> dg.AssetChecksDefinition:
    rule, description = SNAPSHOT_RULES[name]

    @dg.asset_check(asset=workbook_snapshot, name=name, description=description)
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        current, baseline = _manifests(context, warehouse.get_url())
        finding = rule(current, baseline, get_settings())
        return dg.AssetCheckResult(
            passed=finding.passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=finding.summary,
            metadata={
                "snapshot": current["sha256"],
                **{k: dg.MetadataValue.json(v) for k, v in finding.metadata.items()},
            },
        )

    return _check


snapshot_checks = [build_snapshot_check(name) for name in SNAPSHOT_RULES]


@dg.asset_check(
    asset=workbook_snapshot,
    name="snapshot_shrink",
    blocking=True,
    description="Rows and totals per sheet against the published snapshot: a drop beyond "
    "SYNOFORECAST_SHRINK_MAX_SHARE (default 50%) stops publication unless the run carries "
    "synoforecast/allow_shrink=true (`synoforecast ingest --allow-shrink`).",
)
def snapshot_shrink(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    current, _ = _manifests(context, warehouse.get_url())
    shrink = current.get("shrink", {"passed": True, "summary": "not measured (older snapshot)"})
    summary = shrink["summary"] + (
        " (allowed by the operator)" if shrink.get("allowed") and not shrink["passed"] else ""
    )
    return dg.AssetCheckResult(
        passed=not shrink.get("blocked", False),
        severity=dg.AssetCheckSeverity.ERROR,
        description=summary,
        metadata={
            "snapshot": current["sha256"],
            "drops": dg.MetadataValue.json(shrink.get("drops", {})),
            "allowed": bool(shrink.get("allowed")),
        },
    )


snapshot_checks.append(snapshot_shrink)
