"""The last step of a pipeline run: switch what analysts read to this run's export.

Runs only when every upstream step succeeded (the in-process executor skips it after a
failure), and refuses to switch when any partition still holds another export's content
(lib/warehouse/published.py), so `published.*` always shows one complete export.
"""

import dagster as dg

from synoforecast.defs.partitions import QUARTERLY
from synoforecast.defs.resources import WarehouseResource
from synoforecast.defs.runs import snapshot_for_run
from synoforecast.lib.forecasting.cohorts import COHORTS
from synoforecast.lib.ingest.export_order import from_manifest
from synoforecast.lib.ingest.reingest import required_scopes
from synoforecast.lib.warehouse.published import NotPublishable, publish_targets, switch

PUBLISHED_KEY = dg.AssetKey(["published", "snapshot"])


@dg.asset(
    key=PUBLISHED_KEY,
    deps=[dg.AssetKey(["forecast", "forecast_evaluation"]), *[dg.AssetKey(["forecast", c.name]) for c in COHORTS]],
    **QUARTERLY,
    group_name="publishing",
    kinds={"postgres"},
    description="Switches schema `published` (what analysts and Metabase read) to this run's export, in one "
    "transaction, once every partition holds its content.",
)
def published_snapshot(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    url = warehouse.get_url()
    manifest = snapshot_for_run(context, url)
    expected = manifest.get("expected_fingerprints")
    if not expected:
        raise dg.Failure(
            f"snapshot {manifest['sha256'][:12]} has no fingerprints (ingested by an older release): "
            "ingest the workbook again"
        )
    try:
        result = switch(
            url,
            manifest["sha256"],
            context.run_id,
            publish_targets(expected),
            required_scopes(),
            [c.name for c in COHORTS],
            from_manifest(manifest).export_date,
        )
    except NotPublishable as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(f"published snapshot {result.snapshot_sha256[:12]}: {len(result.tables)} tables")
    told = tell(url, result.snapshot_sha256)
    return dg.MaterializeResult(
        metadata={
            "snapshot": result.snapshot_sha256,
            "tables": dg.MetadataValue.json(result.tables),
            "dagster/row_count": sum(result.tables.values()),
            "narratives": dg.MetadataValue.md(told),
        }
    )


def tell(url: str, snapshot_sha256: str) -> str:
    """The published export's narratives, written (lib/activation/cohort_narratives.py), as Markdown."""
    from synoforecast.lib.activation.cohort_narratives import tell_published
    from synoforecast.settings import get_settings

    settings = get_settings()
    frame = tell_published(url, snapshot_sha256, settings.restatement_material_share, settings.fiscal_year_start_month)
    return "\n\n".join(f"**{r['cohort']} · {r['metric']}**: {r['narrative']}" for r in frame.iter_rows(named=True))
