"""Ingestion domain: workbook snapshot, per-sheet raw assets, contract checks, inbox sensor."""

import dagster as dg

from synoforecast.defs.ingestion.assets import sheet_assets, workbook_snapshot
from synoforecast.defs.ingestion.checks import contract_checks, snapshot_checks
from synoforecast.defs.ingestion.sensors import inbox_sensor

defs = dg.Definitions(
    assets=[workbook_snapshot, *sheet_assets], asset_checks=[*contract_checks, *snapshot_checks], sensors=[inbox_sensor]
)
