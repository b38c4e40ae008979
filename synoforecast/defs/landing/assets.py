"""The quarter in progress: its rows in `raw_running`, and where it will land (`forecast.landing`).

Partitioned by the snapshot's cut-off (a dynamic partition per export day, added when a
snapshot with a quarter in progress is followed), not by quarter: the running quarter is
never a quarter partition. Each materialisation is one snapshot, published in one
transaction; re-running it leaves identical rows.
"""

import datetime as dt

import dagster as dg
import polars as pl

from synoforecast.defs.partitions import LANDING_GROUP, label, landing_cutoffs
from synoforecast.defs.resources import WarehouseResource
from synoforecast.defs.runs import SNAPSHOT_TAG
from synoforecast.lib.forecasting.cohorts import COHORTS
from synoforecast.lib.ingest.snapshots import accepted_snapshot
from synoforecast.lib.landing.report import headline_rows, with_change_pct
from synoforecast.lib.landing.running_quarter import NoQuarterInProgress, quarter_in_progress
from synoforecast.lib.rendering import markdown_table, pyplot
from synoforecast.lib.warehouse.schema import RUNNING_SCHEMA, RUNNING_TABLES
from synoforecast.settings import get_settings

LANDING_CUTOFFS = landing_cutoffs
RUNNING_KEY = dg.AssetKey([RUNNING_SCHEMA, "quarter_in_progress"])
LANDING_KEY = dg.AssetKey(["forecast", "landing"])
STAGING = {"svr_rm": "staging.stg_svr_rm", "consumer": "staging.stg_consumer", "c2": "staging.stg_c2"}
STAGING_RUNNING = {t: f"staging.stg_running_{t}" for t in RUNNING_TABLES}


def landing_snapshot(context: dg.AssetExecutionContext, url: str) -> tuple[dict, dt.date, dt.date]:
    """(manifest, running quarter, cut-off) of the run's snapshot; fails when the snapshot has
    no quarter in progress or its cut-off is not this partition."""
    sha = context.run.tags.get(SNAPSHOT_TAG)
    manifest = accepted_snapshot(url, sha)
    if manifest is None:
        raise dg.Failure(
            description=f"snapshot {sha or '(latest)'} not found among the accepted snapshots", allow_retries=False
        )
    try:
        running, cutoff = quarter_in_progress(manifest, get_settings().fiscal_year_start_month)
    except NoQuarterInProgress as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    if cutoff.isoformat() != context.partition_key:
        raise dg.Failure(
            description=f"snapshot {manifest['sha256'][:12]} was exported on {cutoff}, not on "
            f"{context.partition_key}: run partition {cutoff} for it",
            allow_retries=False,
        )
    return manifest, running, cutoff


@dg.asset(
    key=RUNNING_KEY,
    partitions_def=LANDING_CUTOFFS,
    group_name=LANDING_GROUP,
    kinds={"postgres"},
    description="The quarter in progress of the snapshot (SVR-RM, Consumer, C2 rows up to its cut-off) in "
    "raw_running.*, cleaned by dbt's stg_running_* views like the complete quarters.",
)
def quarter_in_progress_rows(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from synoforecast.lib.ingest.contract import SHEETS
    from synoforecast.lib.ingest.snapshots import load_table, rows_for_quarter
    from synoforecast.lib.warehouse.connection import replace_many
    from synoforecast.lib.warehouse.schema import RAW_TABLES, column_names

    url = warehouse.get_url()
    manifest, running, cutoff = landing_snapshot(context, url)
    specs = {s.table: s for s in SHEETS}
    writes = []
    for table in RUNNING_TABLES:
        frame = load_table(manifest["parquet_dir"], table)
        rows = (
            pl.DataFrame()
            if frame is None
            else rows_for_quarter(
                specs[table], frame, running.isoformat(), manifest["snapshot_id"], label(running.isoformat())
            ).select(column_names(RAW_TABLES[table]))
        )
        writes.append((f"{RUNNING_SCHEMA}.{table}", rows, "true", ()))
    written = replace_many(url, writes, context.run_id, context.partition_key)
    return dg.MaterializeResult(
        metadata={
            "snapshot": manifest["sha256"],
            "quarter": running.isoformat(),
            "cutoff": cutoff.isoformat(),
            "rows": dg.MetadataValue.json({t.split(".")[1]: n for t, n in written.items()}),
            "dagster/row_count": sum(written.values()),
        }
    )


LANDING_TABLE, EVALUATION_TABLE = "forecast.landing", "forecast.landing_evaluation"


def daily_values(url: str, cohort, cutoff: dt.date) -> pl.DataFrame:
    """The cohort's daily values: complete quarters from the staging tables, the quarter in
    progress from their stg_running_* twins (same cleaning), nothing after the cut-off."""
    from synoforecast.lib.warehouse.connection import query_frame

    frames = [
        query_frame(url, f"select * from ({cohort.daily_sql.format(**views)}) d where day <= %s", (cutoff,))
        for views in (STAGING, STAGING_RUNNING)
    ]
    frames = [f for f in frames if f.height]
    schema = {"series_id": pl.String, "day": pl.Date, "units": pl.Float64, "revenue": pl.Float64}
    return pl.concat([f.cast(schema) for f in frames]) if frames else pl.DataFrame(schema=schema)


def _published_rows(result, cutoff: dt.date, sha: str, run_id: str) -> pl.DataFrame:
    from synoforecast.lib.warehouse.schema import LANDING_COLUMNS, column_names

    if result.rows.is_empty():
        return pl.DataFrame()
    cols = [c for c in column_names(LANDING_COLUMNS) if c != "created_at"]
    return result.rows.with_columns(
        snapshot_sha256=pl.lit(sha), run_id=pl.lit(run_id), cutoff_date=pl.lit(cutoff)
    ).select(cols)


@dg.asset(
    key=LANDING_KEY,
    partitions_def=LANDING_CUTOFFS,
    deps=[
        RUNNING_KEY,
        *(dg.AssetDep(dg.AssetKey(["forecast", c.name]), partition_mapping=dg.LastPartitionMapping()) for c in COHORTS),
    ],  # the forecast domain's assets, by key
    group_name=LANDING_GROUP,
    kinds={"postgres"},
    description="Where the quarter in progress will land, per cohort series and metric: the quarter-start forecast "
    "combined with the quarter-to-date actual extrapolated by the series' intra-quarter profile, "
    "weights and 80/95% intervals from week-by-week replays of past quarters; and those replays' "
    "evaluation (forecast.landing_evaluation).",
)
def landing(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from synoforecast.lib.landing.cohorts import cohort_inputs
    from synoforecast.lib.landing.run import LandingJob, land_cohorts, start_workers
    from synoforecast.lib.quarters import add_quarters, quarter_label
    from synoforecast.lib.warehouse.connection import query_frame, replace_many

    url = warehouse.get_url()
    settings = get_settings()
    manifest, running, cutoff = landing_snapshot(context, url)
    start_workers(settings.forecast_workers)
    complete = sorted(dt.date.fromisoformat(k) for k in manifest["complete_quarter_keys"] if k < running.isoformat())
    forecasts = query_frame(
        url,
        "select cohort, series_id, metric, target_quarter, yhat from forecast.forecasts where target_quarter <= %s",
        (running,),
    )
    wanted = quarter_label(running, settings.fiscal_year_start_month)
    start_forecasts = forecasts.filter(pl.col("target_quarter") == running)
    if start_forecasts.is_empty():
        last = quarter_label(add_quarters(running, -1), settings.fiscal_year_start_month)
        raise dg.Failure(
            description=f"no published forecast for {wanted} yet: the landing starts from the forecasts "
            f"as of {last} (materialize forecast/* for {last} first)",
            allow_retries=False,
        )
    inputs = {
        cohort.name: (
            cohort,
            cohort_inputs(
                cohort,
                daily_values(url, cohort, cutoff),
                query_frame(url, cohort.history_sql),
                forecasts.filter(pl.col("cohort") == cohort.name),
                complete,
                running,
            ),
        )
        for cohort in COHORTS
    }
    landed = land_cohorts(
        inputs,
        LandingJob(running, cutoff, settings.landing_replays_dir, settings.fiscal_year_start_month),
        n_jobs=settings.forecast_workers,
    )
    rows, evaluations, reused = [], [], {}
    for name, (result, reused[name]) in landed.items():
        rows.append(_published_rows(result, cutoff, manifest["sha256"], context.run_id))
        evaluations.append(result.evaluation.with_columns(run_id=pl.lit(context.run_id)))
        context.log.info(
            f"{name}: {result.rows.height} landing row(s), {result.replays.height} replays"
            + (" (kept from an earlier export with the same complete quarters)" if reused[name] else "")
        )
    published = pl.concat([r for r in rows if r.height], how="vertical_relaxed")
    evaluation = pl.concat([e for e in evaluations if e.height], how="vertical_relaxed")
    written = replace_many(
        url,
        [
            (LANDING_TABLE, published, "cutoff_date = %s", (cutoff,)),
            (EVALUATION_TABLE, evaluation, "cutoff_date = %s", (cutoff,)),
        ],
        context.run_id,
        context.partition_key,
    )
    from synoforecast.lib.warehouse.analyst_views import record_vintage_landing
    from synoforecast.lib.warehouse.connection import connect

    with connect(url) as conn, conn.transaction():  # the export's vintage keeps its first landing
        record_vintage_landing(conn, manifest["sha256"], cutoff)
    from synoforecast.lib.activation.cohort_narratives import tell_published

    # the published export's narratives now tell its landing
    tell_published(url, manifest["sha256"], settings.restatement_material_share, settings.fiscal_year_start_month)
    folder = settings.forecasts_dir / context.run_id
    folder.mkdir(parents=True, exist_ok=True)
    plot = error_by_week_plot(folder / "landing_error_by_week.png", evaluation)
    return dg.MaterializeResult(
        metadata={
            "snapshot": manifest["sha256"],
            "quarter": wanted,
            "cutoff": cutoff.isoformat(),
            "rows_published": written[LANDING_TABLE],
            "evaluation_rows": written[EVALUATION_TABLE],
            "replays_reused": dg.MetadataValue.json(reused),
            **({"error_by_week_plot": dg.MetadataValue.path(str(plot))} if plot else {}),
            "headline": dg.MetadataValue.md(headline_markdown(published)),
            "error_by_week": dg.MetadataValue.md(error_by_week_markdown(evaluation)),
            "dagster/row_count": written[LANDING_TABLE],
        }
    )


def headline_markdown(published: pl.DataFrame) -> str:
    """The SVR-RM total and All C2 landings against their quarter-start forecasts."""
    heads = headline_rows(with_change_pct(published)).sort("cohort", "metric")
    return markdown_table(
        ("cohort", "series", "metric", "QTD", "forecast", "landing", "vs forecast", "80%"),
        [
            (
                r["cohort"],
                r["series_id"],
                r["metric"],
                f"{r['qtd_actual']:,.0f}",
                f"{r['forecast_start']:,.0f}",
                f"{r['yhat']:,.0f}",
                "-" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%",
                f"{r['yhat_lo_80']:,.0f}..{r['yhat_hi_80']:,.0f}",
            )
            for r in heads.iter_rows(named=True)
        ],
    )


def error_by_week_markdown(evaluation: pl.DataFrame) -> str:
    """sMAPE by week of quarter pooled over cohorts and metrics: landing vs both baselines."""
    if evaluation.is_empty():
        return "_no replays (too few complete quarters)_"
    by_week = (
        evaluation.group_by("week_of_quarter")
        .agg(
            pl.col("elapsed_share").mean(),
            (pl.col("smape_landing") * pl.col("replays")).sum() / pl.col("replays").sum(),
            (pl.col("smape_start") * pl.col("replays")).sum() / pl.col("replays").sum(),
            (pl.col("smape_qtd_share") * pl.col("replays")).sum() / pl.col("replays").sum(),
            (pl.col("coverage_80") * pl.col("replays")).sum() / pl.col("replays").sum(),
        )
        .sort("week_of_quarter")
    )
    return markdown_table(
        ("week", "elapsed", "landing sMAPE", "quarter-start forecast", "QTD / elapsed share", "80% coverage"),
        [
            (w, f"{e:.0%}", f"{a:.2f}", f"{b:.2f}", f"{c:.2f}", f"{cov:.0f}%")
            for w, e, a, b, c, cov in by_week.iter_rows()
        ],
    )


def error_by_week_plot(path, evaluation: pl.DataFrame):
    """sMAPE by elapsed share of the quarter, one panel per cohort and level: the landing
    against the quarter-start forecast and QTD / elapsed share (None without matplotlib)."""
    plt = pyplot()
    if plt is None:
        return None
    if evaluation.is_empty():
        return None
    weighted = [
        (pl.col(c) * pl.col("replays")).sum() / pl.col("replays").sum()
        for c in ("smape_landing", "smape_start", "smape_qtd_share")
    ]
    groups = sorted(evaluation.group_by("cohort", "level"), key=lambda g: g[0])
    cols = 4
    rows = (len(groups) + cols - 1) // cols
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(3.6 * cols, 2.7 * rows),
        squeeze=False,
        gridspec_kw={"left": 0.05, "right": 0.99, "bottom": 0.08, "top": 0.95, "wspace": 0.25, "hspace": 0.45},
    )  # fixed: tight_layout costs ~0.4 s
    for ax, ((cohort, level), g) in zip(axes.flat, groups):
        w = (
            g.group_by("week_of_quarter")
            .agg(pl.col("elapsed_share").mean(), *[e.alias(n) for e, n in zip(weighted, ("landing", "start", "naive"))])
            .sort("week_of_quarter")
        )
        x = (w["elapsed_share"] * 100).to_list()
        ax.plot(x, w["start"].to_list(), color="grey", ls="--", lw=1, label="quarter-start forecast")
        ax.plot(
            x,
            w["naive"].clip(upper_bound=max(w["start"].max() * 2, 1)).to_list(),
            color="tab:orange",
            lw=1,
            label="QTD / elapsed share",
        )
        ax.plot(x, w["landing"].to_list(), color="tab:blue", lw=2, label="landing")
        ax.set_title(f"{cohort} ({level})", fontsize=9)
        ax.set_xlabel("% of quarter elapsed", fontsize=7)
        ax.set_ylabel("sMAPE", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
