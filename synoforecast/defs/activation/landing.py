"""The weekly summary, led by where the quarter in progress will land, and its Metabase refresh.

Part of the landing job (one run per snapshot cut-off): after `forecast/landing` publishes,
the configured Metabase cards re-run (the landing cards with the others) and the summary
goes to the configured channels: the SVR-RM total and All C2 landings against the
quarter-start forecast first, then the quarter's forecasts as the quarter-close summary
shows them.
"""

import datetime as dt

import dagster as dg
import polars as pl

from synoforecast.defs.activation.assets import build_summary, post_summary, refresh_dashboards
from synoforecast.defs.partitions import LANDING_GROUP, landing_cutoffs
from synoforecast.defs.resources import MetabaseResource, WarehouseResource, WebhooksResource
from synoforecast.defs.runs import SNAPSHOT_TAG
from synoforecast.lib.activation.notify import NotifyError
from synoforecast.lib.landing.report import headline_rows, landing_at
from synoforecast.lib.quarters import add_quarters

LANDING_KEY = dg.AssetKey(["forecast", "landing"])  # the landing domain's asset, by key


@dg.asset(
    key=dg.AssetKey(["activation", "landing_metabase_refresh"]),
    deps=[LANDING_KEY],
    partitions_def=landing_cutoffs,
    group_name=LANDING_GROUP,
    kinds={"metabase"},
    description="Re-runs the configured Metabase cards (the landing cards with the others) once a landing "
    "is published.",
)
def landing_metabase_refresh(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    metabase: MetabaseResource,
    webhooks: WebhooksResource,
) -> dg.MaterializeResult:
    return refresh_dashboards(context, warehouse, metabase, webhooks, [context.partition_key])


def landing_summary_rows(url: str, cutoff: dt.date) -> tuple[dict, dt.date | None]:
    """The summary's landing block (the headline series, both metrics) and the quarter landed."""
    heads = headline_rows(landing_at(url, cutoff)).with_columns(pl.col("change_pct").round(1)).to_dicts()
    if not heads:
        return {}, None
    shown = (
        "cohort",
        "series_id",
        "series_name",
        "metric",
        "qtd_actual",
        "forecast_start",
        "yhat",
        "yhat_lo_80",
        "yhat_hi_80",
        "change_pct",
    )
    block = {
        "quarter": heads[0]["quarter_label"],
        "cutoff": cutoff.isoformat(),
        "elapsed_pct": round(heads[0]["elapsed_share"] * 100, 1),
        "rows": [{k: r[k] for k in shown} for r in heads],
    }
    return block, heads[0]["quarter_start"]


@dg.asset(
    key=dg.AssetKey(["activation", "landing_summary"]),
    deps=[landing_metabase_refresh],
    partitions_def=landing_cutoffs,
    group_name=LANDING_GROUP,
    kinds={"slack"},
    description="The weekly summary to Slack, Teams, n8n and/or email, led by the landing of the SVR-RM total and "
    "All C2 against the quarter-start forecast, then the quarter's forecasts.",
)
def landing_summary(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, webhooks: WebhooksResource
) -> dg.MaterializeResult:
    try:
        config = webhooks.config()
    except NotifyError as exc:
        raise dg.Failure(description=f"configuration is invalid: {exc}") from None
    url = warehouse.get_url()
    cutoff = dt.date.fromisoformat(context.partition_key)
    block, quarter = landing_summary_rows(url, cutoff)
    if quarter is None:
        raise dg.Failure(description=f"no landing published for {cutoff}: materialize forecast/landing first")
    summary = build_summary(
        url, add_quarters(quarter, -1).isoformat(), context.run_id, context.run.tags.get(SNAPSHOT_TAG)
    )
    lead = next((r for r in block["rows"] if r["metric"] == "revenue" and r["cohort"] == "svr_rm_overall"), None)
    tracking = (
        f" tracking {lead['change_pct']:+.1f}% vs forecast (SVR-RM revenue)"
        if lead and lead["change_pct"] is not None
        else ""
    )
    summary.update(
        title=f"synoforecast: {block['quarter']}{tracking}, week of {cutoff.isoformat()}",
        landing=block,
        run_url=webhooks.run_url(context.run_id),
    )
    return post_summary(summary, config, {"summary": dg.MetadataValue.json(summary)})
