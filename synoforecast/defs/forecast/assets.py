"""One forecast asset per cohort (partition = as-of quarter) and forecast_evaluation.

Partition Q of a cohort forecast is trained on marts up to and including Q and
predicts Q+1, so backfilling a range is a rolling-origin backtest (design §1).
Each partition is published in one transaction to `forecast.forecasts`.
"""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import polars as pl

from synoforecast.defs.checks import per_partition
from synoforecast.defs.partitions import QUARTERLY, label, partition_quarters, quarterly_partitions
from synoforecast.defs.resources import AccuracyThresholdsResource, WarehouseResource
from synoforecast.defs.runs import SNAPSHOT_TAG
from synoforecast.lib.forecasting.cohort_forecast import (
    BACKTEST_WINDOWS,
    EVALUATION_SCHEMA,
    TotalNotPublished,
    forecast_quarters,
    formed_actuals,
    missing_coverage,
    prefetch_cohort,
    score_cohort,
)
from synoforecast.lib.forecasting.cohorts import COHORTS, COHORTS_BY_NAME, Cohort
from synoforecast.lib.ingest.snapshots import accepted_snapshot
from synoforecast.lib.quarters import to_key
from synoforecast.lib.rendering import markdown_table, pyplot
from synoforecast.lib.warehouse.connection import query_frame, replace_rows
from synoforecast.settings import get_settings

FORECAST_TABLE = "forecast.forecasts"


def mart_key(model: str) -> dg.AssetKey:
    return dg.AssetKey(["marts", model])


def forecast_key(cohort: Cohort) -> dg.AssetKey:
    return dg.AssetKey(["forecast", cohort.name])


def published_totals(url: str, cohort: Cohort, quarters: list[dt.date]) -> dict[dt.date, pl.DataFrame]:
    """For a top-down cohort: the published series it must add up to, per as-of quarter
    (frames with columns metric, total)."""
    if cohort.top_down_to is None or not quarters:
        return {}
    source, series_id = cohort.top_down_to
    found = query_frame(
        url,
        f"select as_of_quarter, metric, yhat as total, yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95 from {FORECAST_TABLE} "
        "where cohort = %s and series_id = %s and as_of_quarter between %s and %s",
        (source, series_id, quarters[0], quarters[-1]),
    )
    if found.is_empty():
        return {q: pl.DataFrame(schema={"metric": pl.String, "total": pl.Float64}) for q in quarters}
    return {q: found.filter(pl.col("as_of_quarter") == q).drop("as_of_quarter") for q in quarters}


def _package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("statsforecast", "numpy", "pandas", "polars", "dagster", "synoforecast"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _input_hash(long: pl.DataFrame) -> str:
    import hashlib

    return hashlib.sha256(long.sort("unique_id", "ds").write_csv().encode()).hexdigest()


def _decimal_year(day: dt.date) -> float:
    return day.year + (day.month - 1) / 12


def _plot(path: Path, cohort: Cohort, long: pl.DataFrame, rows: pl.DataFrame, max_series: int = 12) -> Path | None:
    """History, forecast and 80/95% intervals of the latest as-of quarter, one panel per series (units).
    Quarters are plotted as decimal years on a fixed layout: matplotlib's date axes and
    tight_layout were ~0.3 s of the ~1.05 s each figure took, paid five times per run."""
    plt = pyplot()
    if plt is None:
        return None
    from matplotlib.ticker import FormatStrFormatter, MultipleLocator

    units = rows.filter(pl.col("metric") == "units").sort("series_id").head(max_series)
    if units.is_empty():
        return None
    n = units.height
    cols = min(3, n)
    nrows = (n + cols - 1) // cols
    height = 2.8 * nrows
    fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, height), squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.5 / height, top=1 - 0.75 / height, hspace=0.55, wspace=0.25)
    for ax, row in zip(axes.flat, units.iter_rows(named=True)):
        h = long.filter(pl.col("unique_id") == f"{row['series_id']}::units").sort("ds")
        ax.plot([_decimal_year(d) for d in h["ds"].to_list()], h["y"].to_list(), color="black", lw=1.2, label="history")
        t = _decimal_year(row["target_quarter"])
        for lvl, alpha in ((95, 0.2), (80, 0.35)):
            lo, hi = row[f"yhat_lo_{lvl}"], row[f"yhat_hi_{lvl}"]
            if lo is not None and hi is not None:
                ax.vlines([t], lo, hi, color="tab:blue", lw=8, alpha=alpha, label=f"{lvl}%")
        ax.plot([t], [row["yhat"]], "o", color="tab:blue", label="forecast")
        ax.set_title(f"{row['series_id']} ({row['model']})", fontsize=9)
        ax.xaxis.set_major_locator(MultipleLocator(1))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{cohort.name}: units, forecast for {units['target_label'][0]}", fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _reconciliation_note(cohort: Cohort) -> str | None:
    if cohort.parent is not None:
        return f"bottom-up: {cohort.parent} = sum of the other series"
    if cohort.top_down_to is not None:
        return (
            f"top-down: series scaled proportionally to add up to the published "
            f"{cohort.top_down_to[0]} {cohort.top_down_to[1]}"
        )
    return None


def _write_artefact(
    run_id: str,
    cohort: Cohort,
    published: dict[str, int],
    models: dict[str, int],
    choices: pl.DataFrame | None = None,
    long: pl.DataFrame | None = None,
    latest: pl.DataFrame | None = None,
) -> tuple[Path, Path | None]:
    folder = get_settings().forecasts_dir / run_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cohort.name}.json"
    doc = {
        "cohort": cohort.name,
        "rows_per_as_of": published,
        "models": models,
        "package_versions": _package_versions(),
        "backtest_windows": BACKTEST_WINDOWS,
        "point": "combination of the band's candidates within 1.5x the best pooled, shrunken backtest score, "
        "weighted by the inverse squared score (weights per series below)",
        "intervals": "split conformal on h=1 backtest errors relative to the forecast level, each window scored "
        "by the combination weighted without it; Student-t floor for small or correlated pools",
        "reconciliation": _reconciliation_note(cohort),
    }
    if long is not None and long.height:
        doc["input_sha256"] = _input_hash(long)
        doc["input_rows"] = long.height
    if choices is not None and choices.height:
        doc["as_of"] = latest["as_of_label"][0] if latest is not None and latest.height else None
        doc["series"] = choices.to_dicts()
    path.write_text(json.dumps(doc, indent=2, default=str))
    png = (
        _plot(folder / f"{cohort.name}.png", cohort, long, latest)
        if long is not None and latest is not None and latest.height
        else None
    )
    return path, png


def refuse_without_data(context: dg.AssetExecutionContext, url: str, cohort: Cohort, quarters: list[dt.date]) -> None:
    """Fail before anything is published when the run's snapshot (its tag, else the latest
    accepted one) does not hold every as-of quarter of the run completely."""
    sha = context.run.tags.get(SNAPSHOT_TAG)
    snapshot = accepted_snapshot(url, sha)
    fiscal = get_settings().fiscal_year_start_month
    for as_of in quarters:
        reason = missing_coverage(snapshot, as_of, fiscal)
        if reason:
            raise dg.Failure(description=f"forecast/{cohort.name}: {reason}", allow_retries=False)


def rolling_pass(
    context: dg.AssetExecutionContext,
    url: str,
    cohort: Cohort,
    history: pl.DataFrame,
    quarters: list[dt.date],
    settings,
):
    """The run's one pass of candidate fits over all its as-of quarters, backed by
    `ops.forecast_fits` (None when SYNOFORECAST_FORECAST_PASS=per_partition). The fits run on
    the Dask cluster of SYNOFORECAST_DASK_SCHEDULER when it is set, else on local workers."""
    if settings.forecast_pass != "rolling":
        return None
    from synoforecast.lib.forecasting.fit_store import load_fits, save_fits
    from synoforecast.lib.forecasting.rolling import DaskUnreachable, OneStepPredictions

    try:
        one_step = OneStepPredictions(
            n_jobs=settings.forecast_workers,
            load=lambda keys: load_fits(url, keys),
            save=lambda fits: save_fits(url, fits),
            dask_scheduler=settings.dask_scheduler,
        )
    except DaskUnreachable as exc:
        raise dg.Failure(description=f"forecast/{cohort.name}: {exc}") from None
    prefetch_cohort(cohort, history, quarters, one_step, settings.season_length, BACKTEST_WINDOWS)
    where = (
        f"the Dask cluster at {settings.dask_scheduler}"
        if settings.dask_scheduler
        else f"{settings.forecast_workers} process(es)"
    )
    context.log.info(
        f"{cohort.name}: rolling pass over {len(quarters)} as-of quarter(s): {one_step.fits} fit(s) made "
        f"on {where}, "
        f"{one_step.loaded} from ops.forecast_fits, {one_step.reused} shared between quarters"
    )
    return one_step


def build_forecast_asset(cohort: Cohort) -> dg.AssetsDefinition:
    deps = [mart_key(m) for m in cohort.marts]
    if cohort.top_down_to is not None:  # reconciled onto that cohort's published total: runs after it
        deps.append(forecast_key(COHORTS_BY_NAME[cohort.top_down_to[0]]))

    @dg.asset(
        key=forecast_key(cohort),
        deps=deps,
        **QUARTERLY,
        group_name="forecast",
        kinds={"statsforecast", "postgres"},
        description=f"{cohort.title}: next-quarter units and revenue with 80/95% intervals, as of each quarter.",
    )
    def _forecast(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        url = warehouse.get_url()
        settings = get_settings()
        quarters = partition_quarters(context)
        refuse_without_data(context, url, cohort, quarters)
        history = query_frame(url, cohort.history_sql).sort("series_id", "quarter_start")
        published: dict[str, int] = {}
        models: dict[str, int] = {}
        latest = pl.DataFrame()
        choices, long = pl.DataFrame(), pl.DataFrame()
        totals = published_totals(url, cohort, quarters)
        one_step = rolling_pass(context, url, cohort, history, quarters, settings)
        try:
            made = forecast_quarters(
                cohort,
                history,
                quarters,
                context.run_id,
                settings.season_length,
                totals,
                settings.fiscal_year_start_month,
                one_step,
                n_jobs=settings.forecast_workers,
            )
        except TotalNotPublished as exc:
            raise dg.Failure(description=str(exc)) from None
        for i, as_of in enumerate(quarters, start=1):
            rows, ch, lg = made[as_of]
            if rows.height:
                choices, long = ch, lg
            replace_rows(
                url,
                FORECAST_TABLE,
                rows,
                "cohort = %s and as_of_quarter = %s",
                (cohort.name, as_of),
                context.run_id,
                to_key(as_of),
            )
            published[label(to_key(as_of))] = rows.height
            if rows.height:
                latest = rows
                for model, n in rows.group_by("model").len().iter_rows():
                    models[model] = models.get(model, 0) + n
            if len(quarters) > 4 and (i % 4 == 0 or i == len(quarters)):
                context.log.info(f"{cohort.name}: published as of {label(to_key(as_of))} ({i}/{len(quarters)})")
        artefact, png = _write_artefact(context.run_id, cohort, published, models, choices, long, latest)
        preview = (
            latest.select("series_id", "metric", "target_label", "model", "yhat", "yhat_lo_80", "yhat_hi_80")
            if latest.height
            else latest
        )
        return dg.MaterializeResult(
            metadata={
                "rows_published": sum(published.values()),
                "rows_per_as_of": dg.MetadataValue.json(published),
                "models": dg.MetadataValue.json(models),
                "latest_forecast": dg.MetadataValue.md(_markdown(preview)),
                "artefact": dg.MetadataValue.path(str(artefact)),
                **({"plot": dg.MetadataValue.path(str(png))} if png else {}),
                "dagster/row_count": sum(published.values()),
                "forecast_pass": settings.forecast_pass,
                **({"dask_scheduler": settings.dask_scheduler} if settings.dask_scheduler and one_step else {}),
                **(
                    {"fits_made": one_step.fits, "fits_from_store": one_step.loaded, "fits_shared": one_step.reused}
                    if one_step is not None
                    else {}
                ),
            }
        )

    return _forecast


def build_forecast_check(cohort: Cohort) -> dg.AssetChecksDefinition:
    coherence = ""
    if cohort.parent is not None:
        coherence = " The parent series equals the sum of the others exactly."
    if cohort.top_down_to is not None:
        coherence = f" The series add up exactly to the published {cohort.top_down_to[0]} {cohort.top_down_to[1]}."

    @dg.asset_check(
        asset=forecast_key(cohort),
        name=f"{cohort.name}_published",
        blocking=True,
        partitions_def=quarterly_partitions,
        description="Every as-of quarter with history has finite forecasts for units and revenue." + coherence,
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        quarters = partition_quarters(context)
        failures = published_failures(warehouse.get_url(), cohort, quarters)
        fine = f"finite forecasts for both metrics{', hierarchies exact' if coherence else ''}"
        yield from per_partition(
            context,
            {
                to_key(q): dg.AssetCheckResult(passed=q not in failures, description=failures.get(q, fine)[:2000])
                for q in quarters
            },
        )

    return _check


def published_failures(url: str, cohort: Cohort, quarters: list[dt.date]) -> dict[dt.date, str]:
    """Per as-of quarter, what is wrong with the published rows (quarters not listed are fine):
    a NaN or NULL point, one metric only, or a hierarchy that does not add up exactly."""
    stats = query_frame(
        url,
        """select as_of_quarter, count(*) as n_rows, count(distinct metric) as metrics,
                  count(*) filter (where yhat = 'NaN'::float8 or yhat is null) as bad
             from forecast.forecasts where cohort = %s and as_of_quarter between %s and %s group by 1""",
        (cohort.name, quarters[0], quarters[-1]),
    )
    problems: dict[dt.date, list[str]] = {}
    for row in stats.iter_rows(named=True):
        if row["bad"]:
            problems.setdefault(row["as_of_quarter"], []).append(f"{row['bad']} NaN/NULL point(s)")
        if row["metrics"] != 2:
            problems.setdefault(row["as_of_quarter"], []).append("units or revenue missing")
    for as_of, metric, total, parts in incoherent_groups(url, cohort, quarters[0], quarters[-1]):
        problems.setdefault(as_of, []).append(f"{metric}: total {total} <> sum of parts {parts}")
    return {q: ", ".join(why) for q, why in sorted(problems.items())}


def incoherent_groups(url: str, cohort: Cohort, first: dt.date, last: dt.date) -> list[tuple]:
    """(as_of_quarter, metric, published total, sum of the parts) wherever a published hierarchy
    does not add up exactly (compared as numeric in PostgreSQL): the `parent` against the
    cohort's other series, and a `top_down_to` cohort's series against that total."""
    if cohort.parent is not None:
        sql = f"""select p.as_of_quarter, p.metric, p.yhat::numeric, s.parts
                    from {FORECAST_TABLE} p
                    join (select as_of_quarter, metric, sum(yhat::numeric) parts from {FORECAST_TABLE}
                           where cohort = %s and series_id <> %s and as_of_quarter between %s and %s
                           group by 1, 2) s using (as_of_quarter, metric)
                   where p.cohort = %s and p.series_id = %s and p.yhat::numeric <> s.parts"""
        params = (cohort.name, cohort.parent, first, last, cohort.name, cohort.parent)
    elif cohort.top_down_to is not None:
        source, series_id = cohort.top_down_to
        sql = f"""select s.as_of_quarter, s.metric, p.yhat::numeric, s.parts
                    from (select as_of_quarter, metric, sum(yhat::numeric) parts from {FORECAST_TABLE}
                           where cohort = %s and as_of_quarter between %s and %s group by 1, 2) s
                    left join {FORECAST_TABLE} p on p.cohort = %s and p.series_id = %s
                         and p.as_of_quarter = s.as_of_quarter and p.metric = s.metric
                   where p.yhat is null or p.yhat::numeric <> s.parts"""
        params = (cohort.name, first, last, source, series_id)
    else:
        return []
    return list(query_frame(url, sql, params).iter_rows())


def _markdown(frame: pl.DataFrame, rows: int = 12) -> str:
    if frame.is_empty():
        return "_no forecast rows_"
    head = frame.head(rows)
    return markdown_table(head.columns, head.iter_rows(), lambda v: f"{v:,.1f}" if isinstance(v, float) else str(v))


def score_quarter(
    url: str, quarter: dt.date, run_id: str, histories: dict[str, pl.DataFrame], season_length: int = 4
) -> pl.DataFrame:
    """Accuracy per cohort, metric and level of the forecasts made at Q-1 for Q (see
    :func:`synoforecast.lib.forecasting.cohort_forecast.score_cohort`). Only complete quarters are
    partitions, so the partial latest quarter is never scored."""
    forecasts = query_frame(
        url,
        "select cohort, series_id, metric, yhat, coalesce(yhat_base, yhat) as yhat_base, "
        "yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95 from forecast.forecasts "
        "where target_quarter = %s",
        (quarter,),
    )
    rows = []
    for cohort in COHORTS:
        made = forecasts.filter(pl.col("cohort") == cohort.name)
        if made.is_empty():
            continue
        if cohort.name not in histories:
            histories[cohort.name] = query_frame(url, cohort.history_sql)
        rows += score_cohort(
            cohort, made, histories[cohort.name], quarter, run_id, season_length, get_settings().fiscal_year_start_month
        )
    return pl.DataFrame(rows, schema=EVALUATION_SCHEMA)


def quarter_actuals(quarter: dt.date, run_id: str, histories: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """forecast.actuals rows of complete quarter Q for every cohort whose history
    :func:`score_quarter` read (the cohorts with a forecast for Q)."""
    fiscal = get_settings().fiscal_year_start_month
    frames = [formed_actuals(c, histories[c.name], quarter, fiscal) for c in COHORTS if c.name in histories]
    frames = [f for f in frames if f.height]
    if not frames:
        return pl.DataFrame(schema=ACTUALS_SCHEMA)
    return pl.concat(frames).with_columns(run_id=pl.lit(run_id)).select(list(ACTUALS_SCHEMA))


ACTUALS_SCHEMA = {
    "cohort": pl.String,
    "series_id": pl.String,
    "metric": pl.String,
    "quarter_start": pl.Date,
    "quarter_label": pl.String,
    "actual": pl.Float64,
    "run_id": pl.String,
}


@dg.asset(
    key=dg.AssetKey(["forecast", "forecast_evaluation"]),
    deps=[
        dg.AssetDep(
            forecast_key(c),
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True
            ),
        )
        for c in COHORTS
    ],
    **QUARTERLY,
    group_name="forecast",
    kinds={"postgres"},
    description="Scores, for each quarter Q, the forecasts made as of Q-1 against Q's actuals, totals and their "
    "parts apart (MAPE, sMAPE, MASE or NULL with a reason, bias, 80/95% coverage, seasonal-naive and naive "
    "benchmarks, sMAPE before reconciliation).",
)
def forecast_evaluation(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    url = warehouse.get_url()
    scored: dict[str, int] = {}
    last = pl.DataFrame()
    histories: dict[str, pl.DataFrame] = {}
    for quarter in partition_quarters(context):
        rows = score_quarter(url, quarter, context.run_id, histories, get_settings().season_length)
        replace_rows(url, "forecast.evaluation", rows, "quarter = %s", (quarter,), context.run_id, to_key(quarter))
        actuals = quarter_actuals(quarter, context.run_id, histories)
        replace_rows(
            url, "forecast.actuals", actuals, "quarter_start = %s", (quarter,), context.run_id, to_key(quarter)
        )
        scored[label(to_key(quarter))] = rows.height
        if rows.height:
            last = rows
    summary = (
        last.select(
            "cohort",
            "metric",
            "level",
            "series_scored",
            "smape",
            "smape_snaive",
            "smape_naive",
            "mase",
            "bias",
            "coverage_80",
        )
        if last.height
        else last
    )
    return dg.MaterializeResult(
        metadata={
            "rows_per_quarter": dg.MetadataValue.json(scored),
            "latest_scores": dg.MetadataValue.md(_markdown(summary)),
        }
    )


forecast_assets = [build_forecast_asset(c) for c in COHORTS]
forecast_checks = [build_forecast_check(c) for c in COHORTS]


def accuracy_failures(scores: pl.DataFrame, max_smape: float, snaive_tolerance: float = 0.0) -> list[str]:
    """Human-readable reasons a quarter's scores fail the gates (empty = pass)."""
    reasons = []
    for r in scores.iter_rows(named=True):
        where = f"{r['cohort']}/{r['metric']}{'/' + r['level'] if r.get('level') else ''} {r['quarter_label']}"
        if r["smape"] is not None and r["smape"] > max_smape:
            reasons.append(f"{where}: sMAPE {r['smape']:.1f} > threshold {max_smape:.1f}")
        matched = r.get("smape_matched", r["smape"])  # on the series the benchmark exists for
        if (
            matched is not None
            and r.get("smape_snaive") is not None
            and matched > r["smape_snaive"] * (1 + snaive_tolerance / 100.0)
        ):
            reasons.append(f"{where}: sMAPE {matched:.1f} worse than seasonal naive {r['smape_snaive']:.1f}")
    return reasons


@dg.asset_check(
    asset=dg.AssetKey(["forecast", "forecast_evaluation"]),
    name="forecast_accuracy",
    partitions_def=quarterly_partitions,
    description="sMAPE per cohort and metric within the configured threshold and no worse than the "
    "seasonal naive benchmark (SYNOFORECAST_MAX_SMAPE, SYNOFORECAST_SNAIVE_TOLERANCE).",
)
def forecast_accuracy_check(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, accuracy: AccuracyThresholdsResource
):
    quarters = partition_quarters(context)
    scores = query_frame(
        warehouse.get_url(),
        "select quarter, cohort, quarter_label, metric, level, smape, smape_matched, smape_snaive, "
        "mase, coverage_80 from forecast.evaluation where quarter between %s and %s "
        "order by quarter, cohort, metric, level",
        (quarters[0], quarters[-1]),
    )
    gates = {"max_smape": accuracy.max_smape, "snaive_tolerance": accuracy.snaive_tolerance}
    results = {}
    for q in quarters:
        rows = scores.filter(pl.col("quarter") == q)
        reasons = accuracy_failures(rows, **gates) if rows.height else []
        results[to_key(q)] = dg.AssetCheckResult(
            passed=not reasons,
            severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(reasons[:10])
            if reasons
            else "accuracy within thresholds and better than seasonal naive",
            metadata={"failures": dg.MetadataValue.json(reasons), "rows_checked": rows.height, **gates},
        )
    yield from per_partition(context, results)


forecast_checks.append(forecast_accuracy_check)
