"""Blocking contract checks on every sheet asset: the loaded rows honour the pandera schema."""


import dagster as dg

from synoforecast.defs.partitions import partition_quarters, quarterly_partitions
from synoforecast.defs.resources import WarehouseResource
from synoforecast.lib.contract import SHEETS, SheetSpec
from synoforecast.lib.warehouse import query_frame


def build_contract_check(spec: SheetSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["raw", spec.table]),
        name=f"{spec.table}_contract",
        blocking=True,
        partitions_def=quarterly_partitions,
        description=f"Required columns of '{spec.name}' present, non-null and of the contract's types.",
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        from synoforecast.lib.validation import validate_sheet  # pandera: slow import, only where checks run

        quarters = partition_quarters(context)
        rows = query_frame(warehouse.get_url(),
                           f"select * from raw.{spec.table} where quarter_start between %s and %s",
                           (quarters[0], quarters[-1]))
        problems = validate_sheet(spec, rows) if rows.height else []
        return dg.AssetCheckResult(
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows_checked": rows.height, "problems": dg.MetadataValue.json(problems[:20])},
        )

    return _check


contract_checks = [build_contract_check(spec) for spec in SHEETS]
