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

from synoforecast.defs.partitions import (
    QUARTERLY,
    label,
    partition_quarters,
    quarterly_partitions,
)
from synoforecast.defs.resources import WarehouseResource
from synoforecast.lib.cohorts import (
    COHORTS,
    COHORTS_BY_NAME,
    Cohort,
    series_as_of,
    split_unique_id,
    to_long,
)
from synoforecast.lib.quarters import add_quarters, to_key
from synoforecast.lib.warehouse import query_frame, replace_rows
from synoforecast.settings import get_settings

LEVELS = (80, 95)
FORECAST_TABLE = "forecast.forecasts"
PUBLISHED_DECIMALS = 4  # far below a unit or a cent; keeps re-runs identical despite float noise
BACKTEST_WINDOWS = 4  # rolling origins (h=1) used to choose each series' model


def mart_key(model: str) -> dg.AssetKey:
    return dg.AssetKey(["marts", model])


def forecast_key(cohort: Cohort) -> dg.AssetKey:
    return dg.AssetKey(["forecast", cohort.name])


class TotalNotPublished(ValueError):
    """A top-down cohort's total (another cohort's published series) is missing."""


def forecast_details(cohort: Cohort, history: pl.DataFrame, as_of: dt.date, run_id: str,
                     season_length: int, windows: int = BACKTEST_WINDOWS, totals: pl.DataFrame | None = None):
    """(rows to publish, per-series choices, long history) for one as-of quarter.

    Models are selected per series by a rolling-origin backtest on the history up to
    `as_of` (h=1); intervals are split-conformal; a cohort with a `parent` series is
    reconciled bottom-up (parent = sum of the other series, `yhat_base` keeps the
    unreconciled point); a cohort with `top_down_to` is scaled onto `totals` (columns
    metric, total: the other cohort's published series for the same as-of quarter, see
    :func:`published_totals`), which it then adds up to exactly."""
    from synoforecast.lib.forecasting import (
        forecast_selected,  # statsforecast: only where it runs
    )
    from synoforecast.lib.forecasting.reconcile import bottom_up, top_down

    series = series_as_of(cohort, history, as_of)
    if series.is_empty():
        return pl.DataFrame(), pl.DataFrame(), pl.DataFrame()
    long = to_long(series)
    counts = long.group_by("unique_id").agg(history_quarters=pl.len())
    result = forecast_selected(long.to_pandas(), horizon=1, season_length=season_length, levels=LEVELS,
                               freq="QS", windows=windows)
    predicted = pl.from_pandas(result.forecast)
    target = add_quarters(as_of, 1)
    predicted = split_unique_id(predicted.join(counts, on="unique_id"))
    rows = predicted.select(
        cohort=pl.lit(cohort.name),
        as_of_quarter=pl.lit(as_of),
        as_of_label=pl.lit(label(to_key(as_of))),
        target_quarter=pl.lit(target),
        target_label=pl.lit(label(to_key(target))),
        series_id=pl.col("series_id"),
        metric=pl.col("metric"),
        model=pl.col("model"),
        history_quarters=pl.col("history_quarters").cast(pl.Int32),
        yhat=pl.col("yhat").round(PUBLISHED_DECIMALS),
        **{f"yhat_{side}_{lvl}": pl.col(f"yhat_{side}_{lvl}").round(PUBLISHED_DECIMALS)
           for lvl in LEVELS for side in ("lo", "hi")},
        run_id=pl.lit(run_id),
        yhat_base=pl.col("yhat").round(PUBLISHED_DECIMALS),
        band=pl.col("band"),
    )
    if cohort.parent is not None:
        rows = bottom_up(rows, cohort.parent, decimals=PUBLISHED_DECIMALS)
    if cohort.top_down_to is not None:
        source, series_id = cohort.top_down_to
        missing = sorted(set(rows["metric"]) - set(totals["metric"] if totals is not None else []))
        if missing:
            raise TotalNotPublished(
                f"{cohort.name} as of {label(to_key(as_of))}: no published {source} '{series_id}' forecast for "
                f"{', '.join(missing)}; materialize forecast/{source} for this quarter first")
        rows = top_down(rows, totals, decimals=PUBLISHED_DECIMALS)
    choices = pl.from_pandas(result.choices.drop(columns=["scale"], errors="ignore"))
    return rows, choices, long


def forecast_as_of(cohort: Cohort, history: pl.DataFrame, as_of: dt.date, run_id: str,
                   season_length: int, totals: pl.DataFrame | None = None) -> pl.DataFrame:
    """Rows to publish for one as-of quarter (empty when the cohort has no history yet)."""
    return forecast_details(cohort, history, as_of, run_id, season_length, totals=totals)[0]


def published_totals(url: str, cohort: Cohort, quarters: list[dt.date]) -> dict[dt.date, pl.DataFrame]:
    """For a top-down cohort: the published series it must add up to, per as-of quarter
    (frames with columns metric, total)."""
    if cohort.top_down_to is None or not quarters:
        return {}
    source, series_id = cohort.top_down_to
    found = query_frame(url, f"select as_of_quarter, metric, yhat as total from {FORECAST_TABLE} "
                             "where cohort = %s and series_id = %s and as_of_quarter between %s and %s",
                        (source, series_id, quarters[0], quarters[-1]))
    if found.is_empty():
        return {q: pl.DataFrame(schema={"metric": pl.String, "total": pl.Float64}) for q in quarters}
    return {q: found.filter(pl.col("as_of_quarter") == q).select("metric", "total") for q in quarters}


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


def _plot(path: Path, cohort: Cohort, long: pl.DataFrame, rows: pl.DataFrame, max_series: int = 12) -> Path | None:
    """History, forecast and 80/95% intervals of the latest as-of quarter, one panel per series (units)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    units = rows.filter(pl.col("metric") == "units").sort("series_id").head(max_series)
    if units.is_empty():
        return None
    n = units.height
    cols = min(3, n)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 2.8 * nrows), squeeze=False)
    for ax, row in zip(axes.flat, units.iter_rows(named=True)):
        h = long.filter(pl.col("unique_id") == f"{row['series_id']}::units").sort("ds")
        ax.plot(h["ds"].to_list(), h["y"].to_list(), color="black", lw=1.2, label="history")
        t = row["target_quarter"]
        for lvl, alpha in ((95, 0.2), (80, 0.35)):
            lo, hi = row[f"yhat_lo_{lvl}"], row[f"yhat_hi_{lvl}"]
            if lo is not None and hi is not None:
                ax.vlines([t], lo, hi, color="tab:blue", lw=8, alpha=alpha, label=f"{lvl}%")
        ax.plot([t], [row["yhat"]], "o", color="tab:blue", label="forecast")
        ax.set_title(f"{row['series_id']} ({row['model']})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{cohort.name}: units, forecast for {units['target_label'][0]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _reconciliation_note(cohort: Cohort) -> str | None:
    if cohort.parent is not None:
        return f"bottom-up: {cohort.parent} = sum of the other series"
    if cohort.top_down_to is not None:
        return (f"top-down: series scaled proportionally to add up to the published "
                f"{cohort.top_down_to[0]} {cohort.top_down_to[1]}")
    return None


def _write_artefact(run_id: str, cohort: Cohort, published: dict[str, int], models: dict[str, int],
                    choices: pl.DataFrame | None = None, long: pl.DataFrame | None = None,
                    latest: pl.DataFrame | None = None) -> tuple[Path, Path | None]:
    folder = get_settings().forecasts_dir / run_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cohort.name}.json"
    doc = {"cohort": cohort.name, "rows_per_as_of": published, "models": models,
           "package_versions": _package_versions(), "backtest_windows": BACKTEST_WINDOWS,
           "intervals": "split conformal on h=1 backtest errors scaled by the seasonal-naive MAE, the model "
                        "scoring each window chosen on the series' other windows (cross-fitted selection)",
           "reconciliation": _reconciliation_note(cohort)}
    if long is not None and long.height:
        doc["input_sha256"] = _input_hash(long)
        doc["input_rows"] = long.height
    if choices is not None and choices.height:
        doc["as_of"] = latest["as_of_label"][0] if latest is not None and latest.height else None
        doc["series"] = choices.to_dicts()
    path.write_text(json.dumps(doc, indent=2, default=str))
    png = _plot(folder / f"{cohort.name}.png", cohort, long, latest) \
        if long is not None and latest is not None and latest.height else None
    return path, png


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
        history = query_frame(url, cohort.history_sql).sort("series_id", "quarter_start")
        quarters = partition_quarters(context)
        published: dict[str, int] = {}
        models: dict[str, int] = {}
        latest = pl.DataFrame()
        choices, long = pl.DataFrame(), pl.DataFrame()
        totals = published_totals(url, cohort, quarters)
        for i, as_of in enumerate(quarters, start=1):
            try:
                rows, ch, lg = forecast_details(cohort, history, as_of, context.run_id, get_settings().season_length,
                                                totals=totals.get(as_of))
            except TotalNotPublished as exc:
                raise dg.Failure(description=str(exc)) from None
            if rows.height:
                choices, long = ch, lg
            replace_rows(url, FORECAST_TABLE, rows, "cohort = %s and as_of_quarter = %s", (cohort.name, as_of),
                         context.run_id, to_key(as_of))
            published[label(to_key(as_of))] = rows.height
            if rows.height:
                latest = rows
                for model, n in rows.group_by("model").len().iter_rows():
                    models[model] = models.get(model, 0) + n
            if len(quarters) > 4 and (i % 4 == 0 or i == len(quarters)):
                context.log.info(f"{cohort.name}: as of {label(to_key(as_of))} ({i}/{len(quarters)})")
        artefact, png = _write_artefact(context.run_id, cohort, published, models, choices, long, latest)
        preview = latest.select("series_id", "metric", "target_label", "model", "yhat", "yhat_lo_80", "yhat_hi_80") \
            if latest.height else latest
        return dg.MaterializeResult(metadata={
            "rows_published": sum(published.values()),
            "rows_per_as_of": dg.MetadataValue.json(published),
            "models": dg.MetadataValue.json(models),
            "latest_forecast": dg.MetadataValue.md(_markdown(preview)),
            "artefact": dg.MetadataValue.path(str(artefact)),
            **({"plot": dg.MetadataValue.path(str(png))} if png else {}),
            "dagster/row_count": sum(published.values()),
        })

    return _forecast


def build_forecast_check(cohort: Cohort) -> dg.AssetChecksDefinition:
    coherence = ""
    if cohort.parent is not None:
        coherence = " The parent series equals the sum of the others exactly."
    if cohort.top_down_to is not None:
        coherence = f" The series add up exactly to the published {cohort.top_down_to[0]} {cohort.top_down_to[1]}."

    @dg.asset_check(asset=forecast_key(cohort), name=f"{cohort.name}_published", blocking=True,
                    partitions_def=quarterly_partitions,
                    description="Every as-of quarter with history has finite forecasts for units and revenue."
                                + coherence)
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        quarters = partition_quarters(context)
        url = warehouse.get_url()
        stats = query_frame(
            url,
            """select count(*) as n_rows, count(distinct metric) as metrics,
                      count(*) filter (where yhat = 'NaN'::float8 or yhat is null) as bad
                 from forecast.forecasts where cohort = %s and as_of_quarter between %s and %s""",
            (cohort.name, quarters[0], quarters[-1]),
        ).row(0, named=True)
        stats["incoherent"] = len(incoherent_groups(url, cohort, quarters[0], quarters[-1]))
        passed = stats["bad"] == 0 and (stats["n_rows"] == 0 or stats["metrics"] == 2) and stats["incoherent"] == 0
        return dg.AssetCheckResult(passed=passed, metadata={k: int(v) for k, v in stats.items()})

    return _check


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
    fmt = lambda v: f"{v:,.1f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in head.iter_rows()]
    return "\n".join(lines)


EVALUATION_SCHEMA = {
    "cohort": pl.String, "quarter": pl.Date, "quarter_label": pl.String, "metric": pl.String,
    "series_scored": pl.Int32, "mape": pl.Float64, "smape": pl.Float64, "run_id": pl.String,
    "mase": pl.Float64, "bias": pl.Float64, "coverage_80": pl.Float64, "coverage_95": pl.Float64,
    "smape_base": pl.Float64, "smape_snaive": pl.Float64, "mase_snaive": pl.Float64,
}


def score_quarter(url: str, quarter: dt.date, run_id: str, histories: dict[str, pl.DataFrame],
                  season_length: int = 4) -> pl.DataFrame:
    """Accuracy per cohort and metric of the forecasts made at Q-1 for Q.

    Only complete quarters are partitions, so the partial latest quarter is never
    scored.  The seasonal-naive benchmark is the same quarter a year earlier."""
    from synoforecast.lib.forecasting.metrics import bias, coverage, mape, mase, smape
    from synoforecast.lib.forecasting.selection import series_scale

    forecasts = query_frame(url, "select cohort, series_id, metric, yhat, coalesce(yhat_base, yhat) as yhat_base, "
                                 "yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95 from forecast.forecasts "
                                 "where target_quarter = %s", (quarter,))
    rows = []
    season_ago = add_quarters(quarter, -season_length)
    for cohort in COHORTS:
        made = forecasts.filter(pl.col("cohort") == cohort.name)
        if made.is_empty():
            continue
        if cohort.name not in histories:
            histories[cohort.name] = query_frame(url, cohort.history_sql)
        known = split_unique_id(to_long(series_as_of(cohort, histories[cohort.name], quarter)))
        actual = known.filter(pl.col("ds") == quarter).select("series_id", "metric", pl.col("y").alias("actual"))
        past = known.filter(pl.col("ds") < quarter)
        scale = past.group_by("series_id", "metric").agg(
            scale=pl.col("y").sort_by("ds").map_batches(
                lambda v: pl.Series([series_scale(v.to_numpy(), season_length)]), returns_scalar=True))
        snaive = past.filter(pl.col("ds") == season_ago).select("series_id", "metric", pl.col("y").alias("snaive"))
        joined = made.join(actual, on=["series_id", "metric"], how="inner") \
            .join(scale, on=["series_id", "metric"], how="left") \
            .join(snaive, on=["series_id", "metric"], how="left")
        for metric in ("units", "revenue"):
            part = joined.filter(pl.col("metric") == metric)
            if part.is_empty():
                continue
            a, f = part["actual"].to_numpy(), part["yhat"].to_numpy()
            sc = part["scale"].cast(pl.Float64).to_numpy()
            sn = part["snaive"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
            rows.append({
                "cohort": cohort.name, "quarter": quarter, "quarter_label": label(to_key(quarter)),
                "metric": metric, "series_scored": part.height,
                "mape": mape(a, f), "smape": smape(a, f), "run_id": run_id,
                "mase": mase(a, f, sc), "bias": bias(a, f),
                "coverage_80": coverage(a, part["yhat_lo_80"].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
                                        part["yhat_hi_80"].cast(pl.Float64).fill_null(float("nan")).to_numpy()),
                "coverage_95": coverage(a, part["yhat_lo_95"].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
                                        part["yhat_hi_95"].cast(pl.Float64).fill_null(float("nan")).to_numpy()),
                "smape_base": smape(a, part["yhat_base"].to_numpy()),
                "smape_snaive": smape(a, sn), "mase_snaive": mase(a, sn, sc),
            })
    return pl.DataFrame(rows, schema=EVALUATION_SCHEMA)


@dg.asset(
    key=dg.AssetKey(["forecast", "forecast_evaluation"]),
    deps=[dg.AssetDep(forecast_key(c), partition_mapping=dg.TimeWindowPartitionMapping(
        start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True)) for c in COHORTS],
    **QUARTERLY,
    group_name="forecast",
    kinds={"postgres"},
    description="Scores, for each quarter Q, the forecasts made as of Q-1 against Q's actuals "
                "(MAPE, sMAPE, MASE, bias, 80/95% coverage, seasonal-naive benchmark, sMAPE before reconciliation).",
)
def forecast_evaluation(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    url = warehouse.get_url()
    scored: dict[str, int] = {}
    last = pl.DataFrame()
    histories: dict[str, pl.DataFrame] = {}
    for quarter in partition_quarters(context):
        rows = score_quarter(url, quarter, context.run_id, histories, get_settings().season_length)
        replace_rows(url, "forecast.evaluation", rows, "quarter = %s", (quarter,), context.run_id, to_key(quarter))
        scored[label(to_key(quarter))] = rows.height
        if rows.height:
            last = rows
    summary = last.select("cohort", "metric", "series_scored", "smape", "smape_snaive", "mase", "bias",
                          "coverage_80") if last.height else last
    return dg.MaterializeResult(metadata={
        "rows_per_quarter": dg.MetadataValue.json(scored),
        "latest_scores": dg.MetadataValue.md(_markdown(summary)),
    })


forecast_assets = [build_forecast_asset(c) for c in COHORTS]
forecast_checks = [build_forecast_check(c) for c in COHORTS]


def accuracy_thresholds() -> dict[str, float]:
    """Configured accuracy gates (env): SYNOFORECAST_MAX_SMAPE (default 30, percent) and
    SYNOFORECAST_SNAIVE_TOLERANCE (default 0: the sMAPE may not exceed seasonal naive's)."""
    import os

    return {"max_smape": float(os.environ.get("SYNOFORECAST_MAX_SMAPE") or "30"),
            "snaive_tolerance": float(os.environ.get("SYNOFORECAST_SNAIVE_TOLERANCE") or "0")}


def accuracy_failures(scores: pl.DataFrame, max_smape: float, snaive_tolerance: float = 0.0) -> list[str]:
    """Human-readable reasons a quarter's scores fail the gates (empty = pass)."""
    reasons = []
    for r in scores.iter_rows(named=True):
        where = f"{r['cohort']}/{r['metric']} {r['quarter_label']}"
        if r["smape"] is not None and r["smape"] > max_smape:
            reasons.append(f"{where}: sMAPE {r['smape']:.1f} > threshold {max_smape:.1f}")
        if r["smape"] is not None and r.get("smape_snaive") is not None \
                and r["smape"] > r["smape_snaive"] * (1 + snaive_tolerance / 100.0):
            reasons.append(f"{where}: sMAPE {r['smape']:.1f} worse than seasonal naive {r['smape_snaive']:.1f}")
    return reasons


@dg.asset_check(asset=dg.AssetKey(["forecast", "forecast_evaluation"]), name="forecast_accuracy",
                partitions_def=quarterly_partitions,
                description="sMAPE per cohort and metric within the configured threshold and no worse than the "
                            "seasonal naive benchmark (SYNOFORECAST_MAX_SMAPE, SYNOFORECAST_SNAIVE_TOLERANCE).")
def forecast_accuracy_check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
                            ) -> dg.AssetCheckResult:
    quarters = partition_quarters(context)
    scores = query_frame(warehouse.get_url(),
                         "select cohort, quarter_label, metric, smape, smape_snaive, mase, coverage_80 "
                         "from forecast.evaluation where quarter between %s and %s order by quarter, cohort, metric",
                         (quarters[0], quarters[-1]))
    gates = accuracy_thresholds()
    reasons = accuracy_failures(scores, gates["max_smape"], gates["snaive_tolerance"]) if scores.height else []
    return dg.AssetCheckResult(
        passed=not reasons, severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(reasons[:10]) if reasons else "accuracy within thresholds and better than seasonal naive",
        metadata={"failures": dg.MetadataValue.json(reasons), "rows_checked": scores.height, **gates},
    )


forecast_checks.append(forecast_accuracy_check)
