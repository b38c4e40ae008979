"""Metabase refresh and summary notifications, after forecasts are published.

Both call the real HTTP APIs with httpx (and the summary an SMTP server) when configured
(MetabaseResource, WebhooksResource) and otherwise record "skipped: not configured". Half a configuration, a refresh that
failed or a channel that did not get the summary fails the asset and names what failed;
secrets never reach logs or metadata.
"""

import datetime as dt

import dagster as dg
import polars as pl

from synoforecast.defs.activation.state import (
    accuracy_drops,
    forecast_schema_columns,
    forecast_schema_fingerprint,
    get_state,
    set_state,
    sync_state_key,
)
from synoforecast.defs.partitions import QUARTERLY, label, partition_quarters
from synoforecast.defs.resources import (
    AccuracyThresholdsResource,
    MetabaseResource,
    WarehouseResource,
    WebhooksResource,
)
from synoforecast.defs.runs import SNAPSHOT_TAG
from synoforecast.lib.activation.metabase import MetabaseError, refresh_metabase
from synoforecast.lib.activation.metabase_catalog import catalog_docs
from synoforecast.lib.activation.metabase_provision import provision_metabase
from synoforecast.lib.activation.notify import NotifyError, request_refresh_via_n8n, send_summary
from synoforecast.lib.forecasting.cohorts import COHORTS, actuals_at
from synoforecast.lib.quarters import to_key
from synoforecast.lib.warehouse.connection import WarehouseError, query_frame
from synoforecast.settings import DBT_PROJECT_DIR, get_settings

# the forecast domain's assets, by key: domains meet through asset keys, not imports
FORECAST_KEYS = [
    dg.AssetKey(["forecast", "forecast_evaluation"]),
    *[dg.AssetKey(["forecast", c.name]) for c in COHORTS],
]

SKIPPED = "skipped: not configured"
MAX_RESTATED_LINES = 20


@dg.asset(
    key=dg.AssetKey(["activation", "metabase_provisioning"]),
    deps=[*FORECAST_KEYS, dg.AssetKey(["published", "snapshot"])],  # the questions read the published views
    **QUARTERLY,
    group_name="activation",
    kinds={"metabase"},
    description="Creates or updates the Metabase collection `synoforecast`, its questions over the published "
    "views and their dashboard (lib/activation/metabase_provision.py), and writes the dbt project's model and "
    "column descriptions, and the warehouse's comments on the platform's own tables and views, into Metabase's "
    "data model; writes nothing when they already match.",
)
def metabase_provisioning(
    context: dg.AssetExecutionContext, metabase: MetabaseResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    try:
        config = metabase.config()
    except MetabaseError as exc:
        raise dg.Failure(description=f"configuration is invalid: {exc}") from None
    if not config.configured:
        return dg.MaterializeResult(metadata={"status": SKIPPED})
    if config.database_id is None:
        context.log.info("METABASE_DATABASE_ID is not set: the questions have no database to query; skipped")
        return dg.MaterializeResult(metadata={"status": "skipped: METABASE_DATABASE_ID not set"})
    try:
        report = provision_metabase(config, docs=catalog_docs(DBT_PROJECT_DIR, warehouse.get_url()))
    except (MetabaseError, WarehouseError) as exc:
        raise dg.Failure(
            description=f"Metabase provisioning failed: {exc}. Published forecasts are unchanged; "
            "the next run picks up where this one stopped."
        ) from None
    return dg.MaterializeResult(
        metadata={
            "status": "provisioned",
            **{k: v for k, v in report.to_metadata().items() if k not in ("objects", "card_ids", "catalog")},
            "objects": dg.MetadataValue.json(report.objects),
            "card_ids": dg.MetadataValue.json(report.card_ids),
            "catalog": dg.MetadataValue.json(report.catalog.to_metadata() if report.catalog else {}),
            "catalog_changed": report.catalog_writes,
        }
    )


@dg.asset(
    key=dg.AssetKey(["activation", "metabase_refresh"]),
    deps=[*FORECAST_KEYS, dg.AssetKey(["published", "snapshot"]), metabase_provisioning],  # after the switch
    **QUARTERLY,
    group_name="activation",
    kinds={"metabase"},
    description="Re-runs the provisioned Metabase questions and the configured cards (ignore_cache) once new "
    "forecasts are published.",
)
def metabase_refresh(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    metabase: MetabaseResource,
    webhooks: WebhooksResource,
) -> dg.MaterializeResult:
    return refresh_dashboards(context, warehouse, metabase, webhooks, [to_key(q) for q in partition_quarters(context)])


def refresh_dashboards(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    metabase: MetabaseResource,
    webhooks: WebhooksResource,
    partitions: list[str],
) -> dg.MaterializeResult:
    """The provisioned questions (found by their keys) and the configured Metabase cards re-run
    (schema synced first when the forecast tables changed), or the n8n route, or skipped when
    neither is configured."""
    try:
        config = metabase.config()
        notify = webhooks.config()
    except (MetabaseError, NotifyError) as exc:
        raise dg.Failure(description=f"configuration is invalid: {exc}") from None
    quarters = partitions
    if not config.configured:
        if notify.n8n_webhook_url:  # the alternative route: an n8n workflow refreshes dashboards
            try:
                request_refresh_via_n8n(
                    {"partitions": quarters, "run_id": context.run_id, "run_url": webhooks.run_url(context.run_id)},
                    notify,
                )
            except NotifyError as exc:
                raise dg.Failure(
                    description=f"n8n refresh request failed: {exc}. Published forecasts are unchanged."
                ) from None
            return dg.MaterializeResult(metadata={"status": "requested via n8n", "route": "n8n"})
        context.log.info(
            "Metabase not configured (METABASE_URL + METABASE_API_KEY or METABASE_USER/"
            "METABASE_PASSWORD) and no N8N_WEBHOOK_URL: skipped"
        )
        return dg.MaterializeResult(metadata={"status": SKIPPED})
    url = warehouse.get_url()
    fingerprint = forecast_schema_fingerprint(url)
    state_key = sync_state_key(config.url, config.database_id)
    changed = get_state(url, state_key) != fingerprint
    try:
        report = refresh_metabase(
            config, sync_schema=changed, expect_tables=forecast_schema_columns(url), provisioned=True
        )
    except MetabaseError as exc:
        raise dg.Failure(description=f"Metabase refresh failed: {exc}. Published forecasts are unchanged.") from None
    if report.schema_synced or config.database_id is None:
        set_state(url, state_key, fingerprint)
    return dg.MaterializeResult(
        metadata={
            "status": "refreshed",
            "route": "metabase",
            "forecast_schema_changed": changed,
            **report.to_metadata(),
        }
    )


def _dbt_health(context: dg.AssetExecutionContext) -> dict[str, int]:
    """Asset-check outcomes recorded in this run (dbt tests and the platform's own checks)."""
    records = context.instance.get_records_for_run(
        context.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    passed = sum(1 for r in records if r.event_log_entry.dagster_event.event_specific_data.passed)
    return {"passed": passed, "failed": len(records) - passed}


def build_summary(url: str, as_of: str, run_id: str, snapshot_sha256: str | None = None) -> dict:
    """What changed: next-quarter forecasts per cohort with the change against the last actual, and
    the published quarters the run's export (`snapshot_sha256`, else the latest accepted) restated."""
    rows = query_frame(
        url,
        """select f.cohort, f.series_id, f.metric, f.target_label, f.yhat, e.smape
             from forecast.forecasts f
             left join forecast.evaluation e on e.cohort = f.cohort and e.metric = f.metric
                  and e.quarter = f.as_of_quarter
                  and e.level = case when f.series_id in ('total', 'All C2') then 'total' else 'parts' end
            where f.as_of_quarter = %s and f.series_id in ('total', 'T1', 'T2', 'T3', 'All C2')
            order by f.cohort, f.series_id, f.metric""",
        (as_of,),
    )
    actuals = {}
    for cohort in COHORTS:  # derived series too (top customers' `total`), as the forecasts were made
        found = actuals_at(cohort, query_frame(url, cohort.history_sql), dt.date.fromisoformat(as_of))
        actuals.update({(cohort.name, *key): value for key, value in found.items()})
    from synoforecast.lib.activation.cohort_narratives import published_narratives
    from synoforecast.lib.warehouse.analyst_views import series_names

    names = series_names(url)
    forecasts = []
    for r in rows.iter_rows(named=True):
        last = actuals.get((r["cohort"], r["series_id"], r["metric"]))
        change = round((r["yhat"] - last) / abs(last) * 100, 1) if last else None
        forecasts.append(
            {
                "cohort": r["cohort"],
                "series_id": r["series_id"],
                "series_name": names.get((r["cohort"], r["series_id"]), r["series_id"]),
                "metric": r["metric"],
                "target": r["target_label"],
                "yhat": round(r["yhat"], 1),
                "last_actual": last,
                "change_pct": change,
                "smape": None if r["smape"] is None else round(r["smape"], 1),
            }
        )
    c2 = query_frame(
        url,
        "select service, subscribers, adoption_rate from marts.mart_c2_adoption_quarterly "
        "where quarter_start = %s and service = 'All C2'",
        (as_of,),
    )
    snapshot = query_frame(
        url,
        "select file, sha256, sheets from ops.snapshots where status = 'accepted' order by last_seen_at desc limit 1",
    )
    snap = snapshot.row(0, named=True) if snapshot.height else {}
    restated = restated_section(url, snapshot_sha256 or snap.get("sha256"), get_settings().restatement_material_share)
    return {
        "title": f"synoforecast: forecasts for {forecasts[0]['target'] if forecasts else 'next quarter'}",
        "as_of": label(as_of),
        "snapshot": {
            "file": snap.get("file"),
            "sha256": snap.get("sha256"),
            "rows_loaded": (snap.get("sheets") or {}).get("SVR-RM", {}).get("rows_loaded"),
        },
        "forecasts": forecasts,
        "c2": {
            r["service"]: {"subscribers": r["subscribers"], "adoption_rate": float(r["adoption_rate"] or 0)}
            for r in c2.iter_rows(named=True)
        },
        "run_id": run_id,
        # the published export's texts, revenue first (units and seats follow in published.narratives)
        "narratives": [
            {"cohort": r["cohort"], "metric": r["metric"], "text": r["narrative"]}
            for r in published_narratives(url).filter(pl.col("metric") == "revenue").iter_rows(named=True)
        ],
        **({"restated": restated} if restated else {}),
    }


def restated_section(url: str, sha256: str | None, threshold: float) -> dict | None:
    """The published quarters the run's export restated by more than `threshold`, largest first
    (ops.restatements, measured when the export was accepted), for the summary's "restated" block."""
    from synoforecast.lib.ingest.restatements import material
    from synoforecast.lib.ingest.snapshots import load_restatements

    if not sha256:
        return None
    picked = material(load_restatements(url, sha256)[1], threshold)
    if not picked:
        return None
    return {
        "threshold": threshold,
        "more": max(0, len(picked) - MAX_RESTATED_LINES),
        "rows": [
            {
                "sheet": r.sheet,
                "quarter": r.quarter_label,
                "metric": r.metric,
                "before": r.before,
                "after": r.after,
                "change": r.change,
                "share": r.share,
            }
            for r in picked[:MAX_RESTATED_LINES]
        ],
    }


@dg.asset(
    key=dg.AssetKey(["activation", "summary_notification"]),
    deps=[metabase_refresh],
    **QUARTERLY,
    group_name="activation",
    kinds={"slack"},
    description="Posts what changed (volume, checks, forecasts, C2) to Slack, Teams, n8n and/or email.",
)
def summary_notification(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    webhooks: WebhooksResource,
    accuracy: AccuracyThresholdsResource,
) -> dg.MaterializeResult:
    try:
        config = webhooks.config()
    except NotifyError as exc:
        raise dg.Failure(description=f"configuration is invalid: {exc}") from None
    as_of = to_key(partition_quarters(context)[-1])
    url = warehouse.get_url()
    summary = build_summary(url, as_of, context.run_id, context.run.tags.get(SNAPSHOT_TAG))
    summary["dbt"] = _dbt_health(context)
    summary["run_url"] = webhooks.run_url(context.run_id)
    drops = accuracy_drops(url, as_of, accuracy.drop_points)
    drop_meta = [d.describe() for d in drops]
    if drops:  # the alert rides in the run's one message: a heading line plus one line per cohort
        summary["title"] = f"⚠ accuracy dropped · {summary['title']}"
        summary["details"] = [
            (f"Accuracy dropped by more than {accuracy.drop_points:g} sMAPE points in {label(as_of)}:"),
            *drop_meta,
        ]
        summary["accuracy_drops"] = drop_meta
    metadata = {"summary": dg.MetadataValue.json(summary), "accuracy_drops": dg.MetadataValue.json(drop_meta)}
    return post_summary(summary, config, metadata)


def post_summary(summary: dict, config, metadata: dict) -> dg.MaterializeResult:
    """Send `summary` to every configured channel; a channel that did not get it fails the asset."""
    if not config.channels():
        return dg.MaterializeResult(metadata={"status": SKIPPED, **metadata})
    outcome = send_summary(summary, config)
    failed = {k: v for k, v in outcome.items() if v != "sent"}
    if failed:  # a summary that did not reach a configured channel is not "sent"
        sent = [k for k in outcome if k not in failed]
        raise dg.Failure(
            description=f"summary not delivered to {', '.join(failed)} ({'; '.join(f'{k}: {v}' for k, v in failed.items())})"
            + (f"; delivered to {', '.join(sent)}" if sent else ""),
            metadata={"channels": dg.MetadataValue.json(outcome), **metadata},
        )
    return dg.MaterializeResult(metadata={"status": "sent", "channels": dg.MetadataValue.json(outcome), **metadata})
