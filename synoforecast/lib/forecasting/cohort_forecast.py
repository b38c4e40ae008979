"""A cohort's forecast as of one quarter, and its score one quarter later (pure: no Dagster, no I/O).

The forecast assets publish :func:`forecast_cohort`'s rows and `forecast_evaluation`
stores :func:`score_cohort`'s; the forecasting benchmark replays both over the demo
sample with the same code, so the figures in docs/forecasting.md are the ones analysts see.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from synoforecast.lib.forecasting.cohorts import TOTAL, Cohort, series_as_of, split_unique_id, to_long
from synoforecast.lib.quarters import add_quarters, quarter_label

LEVELS = (80, 95)
PUBLISHED_DECIMALS = 4  # far below a unit or a cent; keeps re-runs identical despite float noise
BACKTEST_WINDOWS = 6  # rolling origins (h=1) behind each forecast's weights and intervals, where history allows
TOTAL_LEVEL, PARTS_LEVEL = "total", "parts"


class TotalNotPublished(ValueError):
    """A top-down cohort's total (another cohort's published series) is missing."""


def forecast_cohort(
    cohort: Cohort,
    history: pl.DataFrame,
    as_of: dt.date,
    run_id: str,
    season_length: int,
    windows: int = BACKTEST_WINDOWS,
    totals: pl.DataFrame | None = None,
    fiscal_year_start_month: int = 1,
    one_step=None,
):
    """(rows to publish, per-series choices, long history) for one as-of quarter.

    The engine (:mod:`synoforecast.lib.forecasting.selection`) combines its candidates by
    pooled, shrunken backtest errors on the history up to `as_of` (h=1); intervals are
    split-conformal; a cohort with a `parent` series is reconciled bottom-up (parent = sum of
    the other series, `yhat_base` keeps the unreconciled point); a cohort with `top_down_to`
    is scaled onto `totals` (columns metric, total: the other cohort's published series for
    the same as-of quarter), which it then adds up to exactly.  ``one_step`` (see
    :func:`prefetch_cohort`) supplies the candidates' fits from the rolling pass."""
    from synoforecast.lib.forecasting import forecast_selected  # statsforecast: only where it runs
    from synoforecast.lib.forecasting.reconcile import bottom_up, top_down

    series = series_as_of(cohort, history, as_of)
    if series.is_empty():
        return pl.DataFrame(), pl.DataFrame(), pl.DataFrame()
    long = to_long(series)
    counts = long.group_by("unique_id").agg(history_quarters=pl.len())
    result = forecast_selected(
        long.to_pandas(),
        horizon=1,
        season_length=season_length,
        levels=LEVELS,
        freq="QS",
        windows=windows,
        one_step=one_step,
    )
    predicted = split_unique_id(pl.from_pandas(result.forecast).join(counts, on="unique_id"))
    target = add_quarters(as_of, 1)
    rows = predicted.select(
        cohort=pl.lit(cohort.name),
        as_of_quarter=pl.lit(as_of),
        as_of_label=pl.lit(quarter_label(as_of, fiscal_year_start_month)),
        target_quarter=pl.lit(target),
        target_label=pl.lit(quarter_label(target, fiscal_year_start_month)),
        series_id=pl.col("series_id"),
        metric=pl.col("metric"),
        model=pl.col("model"),
        history_quarters=pl.col("history_quarters").cast(pl.Int32),
        yhat=pl.col("yhat").round(PUBLISHED_DECIMALS),
        **{
            f"yhat_{side}_{lvl}": pl.col(f"yhat_{side}_{lvl}").round(PUBLISHED_DECIMALS)
            for lvl in LEVELS
            for side in ("lo", "hi")
        },
        run_id=pl.lit(run_id),
        yhat_base=pl.col("yhat").round(PUBLISHED_DECIMALS),
        band=pl.col("band"),
    )
    if cohort.top_down_to is not None:
        source, _ = cohort.top_down_to
        missing = sorted(set(rows["metric"]) - set(totals["metric"] if totals is not None else []))
        if missing:
            raise TotalNotPublished(
                f"{cohort.name} as of {quarter_label(as_of, fiscal_year_start_month)}: no published {source} "
                f"'{cohort.top_down_to[1]}' forecast for {', '.join(missing)}; "
                f"materialize forecast/{source} for this quarter first"
            )
        # the parts onto the other cohort's total; a `parent` is then their sum: that same total
        is_part = pl.col("series_id") != cohort.parent if cohort.parent is not None else pl.lit(True)
        rows = pl.concat(
            [top_down(rows.filter(is_part), totals, decimals=PUBLISHED_DECIMALS), rows.filter(~is_part)],
            how="diagonal_relaxed",
        ).select(rows.columns)
    if cohort.parent is not None:
        rows = bottom_up(rows, cohort.parent, decimals=PUBLISHED_DECIMALS)
        if cohort.top_down_to is not None:
            rows = same_total(rows, cohort.parent, totals)
    choices = pl.from_pandas(result.choices.drop(columns=["scale"], errors="ignore"))
    return rows, choices, long


def same_total(rows: pl.DataFrame, parent: str, totals: pl.DataFrame, keys: tuple[str, ...] = ("metric",)):
    """`parent`'s rows given the bands of the total they equal (`totals`: keys, total and the
    band columns it has): one total is one number and one range, whichever cohort shows it."""
    bands = [c for c in totals.columns if c.startswith(("yhat_lo_", "yhat_hi_")) and c in rows.columns]
    if not bands:
        return rows
    theirs = totals.select(*keys, *[pl.col(c).alias(f"_{c}") for c in bands])
    is_parent = pl.col("series_id") == parent
    return (
        rows.join(theirs, on=list(keys), how="left")
        .with_columns([pl.when(is_parent).then(pl.col(f"_{c}")).otherwise(pl.col(c)).alias(c) for c in bands])
        .select(rows.columns)
    )


Made = tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]  # forecast_cohort's rows, choices, long history


def forecast_quarters(
    cohort: Cohort,
    history: pl.DataFrame,
    quarters: list[dt.date],
    run_id: str,
    season_length: int,
    totals: dict[dt.date, pl.DataFrame] | None = None,
    fiscal_year_start_month: int = 1,
    one_step=None,
    n_jobs: int = 1,
) -> dict[dt.date, Made]:
    """:func:`forecast_cohort` for every as-of quarter, in `n_jobs` processes (lib/workers.py):
    with the rolling pass's fits made, the quarters are independent, and each one's
    combination, intervals and reconciliation is ~0.1 s of pandas and polars on one core.
    The same function runs on each part, so the rows are those of one process."""
    totals = totals or {}
    parts = [quarters[i::n_jobs] for i in range(n_jobs)] if n_jobs > 1 and len(quarters) >= 2 * n_jobs else [quarters]
    fits = one_step.lookup_only() if one_step is not None and len(parts) > 1 else one_step
    jobs = [
        (cohort, history, part, run_id, season_length, {q: totals.get(q) for q in part}, fiscal_year_start_month, fits)
        for part in parts
    ]
    from synoforecast.lib.forecasting.rolling import WORKER_PRELOAD
    from synoforecast.lib.workers import run_split

    made: dict[dt.date, Made] = {}
    for outcome in run_split(_forecast_part, jobs, preload=WORKER_PRELOAD):
        if isinstance(outcome, TotalNotPublished):
            raise outcome
        made.update(outcome)
    return {q: made[q] for q in quarters}


def _forecast_part(
    cohort: Cohort,
    history: pl.DataFrame,
    quarters: list[dt.date],
    run_id: str,
    season_length: int,
    totals: dict,
    fiscal_year_start_month: int,
    one_step,
) -> dict[dt.date, Made] | TotalNotPublished:
    try:
        return {
            as_of: forecast_cohort(
                cohort,
                history,
                as_of,
                run_id,
                season_length,
                totals=totals.get(as_of),
                fiscal_year_start_month=fiscal_year_start_month,
                one_step=one_step,
            )
            for as_of in quarters
        }
    except TotalNotPublished as exc:  # a value, so a worker hands it back as the error it is
        return exc


def prefetch_cohort(
    cohort: Cohort,
    history: pl.DataFrame,
    quarters: list[dt.date],
    one_step,
    season_length: int,
    windows: int = BACKTEST_WINDOWS,
) -> None:
    """The rolling pass: every candidate fit that :func:`forecast_cohort` will need for any of
    `quarters`, made in one batch per model (each series and origin once, however many as-of
    quarters share it), so the per-quarter forecasts that follow only look fits up."""
    from synoforecast.lib.forecasting.engine import prepare_history
    from synoforecast.lib.forecasting.selection import band_jobs

    jobs = []
    for as_of in quarters:
        series = series_as_of(cohort, history, as_of)
        if not series.is_empty():
            jobs += band_jobs(prepare_history(to_long(series).to_pandas()), season_length, windows)
    one_step.prefetch(jobs)


def level_of(cohort: Cohort, series_id: str) -> str:
    """'total' for a cohort's total series (its `parent`, or the single `total` of a cohort
    without parts), 'parts' otherwise: averaging over both would count every unit twice."""
    return TOTAL_LEVEL if series_id in (cohort.parent, TOTAL) else PARTS_LEVEL


EVALUATION_SCHEMA = {
    "cohort": pl.String,
    "quarter": pl.Date,
    "quarter_label": pl.String,
    "metric": pl.String,
    "level": pl.String,
    "series_scored": pl.Int32,
    "mape": pl.Float64,
    "smape": pl.Float64,
    "run_id": pl.String,
    "mase": pl.Float64,
    "mase_series": pl.Int32,
    "mase_note": pl.String,
    "bias": pl.Float64,
    "coverage_80": pl.Float64,
    "coverage_95": pl.Float64,
    "smape_base": pl.Float64,
    "smape_snaive": pl.Float64,
    "smape_naive": pl.Float64,
    "mase_snaive": pl.Float64,
    "smape_matched": pl.Float64,
}


def _floats(frame: pl.DataFrame, column: str) -> np.ndarray:
    return frame[column].cast(pl.Float64).fill_null(float("nan")).to_numpy()


def scored_series(
    cohort: Cohort, made: pl.DataFrame, history: pl.DataFrame, quarter: dt.date, season_length: int = 4
) -> pl.DataFrame:
    """One row per series the forecasts `made` as of Q-1 cover, with its actual in Q, its level,
    MASE scale and both benchmarks (seasonal naive: the quarter a year earlier; naive: Q-1).

    Actuals are formed as the forecast formed its series: a top-customer forecast made at Q-1
    is scored against the Q-1 top set, not Q's."""
    from synoforecast.lib.forecasting.metrics import MASE_MIN_DIFFERENCES, mase_scale

    previous = add_quarters(quarter, -1)
    known = split_unique_id(to_long(series_as_of(cohort, history, quarter, top_as_of=previous)))
    actual = known.filter(pl.col("ds") == quarter).select("series_id", "metric", pl.col("y").alias("actual"))
    past = known.filter(pl.col("ds") < quarter)
    scale = past.group_by("series_id", "metric").agg(
        scale=pl.col("y")
        .sort_by("ds")
        .map_batches(
            lambda v: pl.Series([mase_scale(v.to_numpy(), season_length, MASE_MIN_DIFFERENCES)], dtype=pl.Float64),
            returns_scalar=True,
        )
    )
    snaive = past.filter(pl.col("ds") == add_quarters(quarter, -season_length)).select(
        "series_id", "metric", pl.col("y").alias("snaive")
    )
    naive = past.filter(pl.col("ds") == previous).select("series_id", "metric", pl.col("y").alias("naive"))
    return (
        made.join(actual, on=["series_id", "metric"], how="inner")
        .join(scale, on=["series_id", "metric"], how="left")
        .join(snaive, on=["series_id", "metric"], how="left")
        .join(naive, on=["series_id", "metric"], how="left")
        .with_columns(level=pl.col("series_id").map_elements(lambda s: level_of(cohort, s), return_dtype=pl.String))
    )


def formed_actuals(
    cohort: Cohort, history: pl.DataFrame, quarter: dt.date, fiscal_year_start_month: int = 1
) -> pl.DataFrame:
    """Every series' actual in complete quarter Q as the forecast made at Q-1 formed its series
    (top customers: the set flagged at Q-1, everyone else in all_other), for forecast.actuals:
    what a chart and a vintage compare that forecast with."""
    previous = add_quarters(quarter, -1)
    known = split_unique_id(to_long(series_as_of(cohort, history, quarter, top_as_of=previous)))
    return known.filter(pl.col("ds") == quarter).select(
        cohort=pl.lit(cohort.name),
        series_id="series_id",
        metric="metric",
        quarter_start="ds",
        quarter_label=pl.lit(quarter_label(quarter, fiscal_year_start_month)),
        actual=pl.col("y").cast(pl.Float64),
    )


def score_cohort(
    cohort: Cohort,
    made: pl.DataFrame,
    history: pl.DataFrame,
    quarter: dt.date,
    run_id: str,
    season_length: int = 4,
    fiscal_year_start_month: int = 1,
) -> list[dict]:
    """Accuracy of the forecasts `made` as of Q-1 for `quarter` Q, per metric and level
    (`made`: the cohort's published rows for target Q). MASE is scaled by each series'
    in-sample seasonal-naive MAE up to Q-1 and is NULL, with `mase_note` saying why, where
    no series has such a scale; each benchmark is scored on the series where it exists."""
    from synoforecast.lib.forecasting.metrics import MASE_MIN_DIFFERENCES, bias, coverage, mape, mase, smape

    if made.is_empty():
        return []
    joined = scored_series(cohort, made, history, quarter, season_length)
    rows = []
    for (metric, level), part in sorted(joined.group_by("metric", "level"), key=lambda g: g[0]):
        a, f = _floats(part, "actual"), _floats(part, "yhat")
        sc, sn, nv = _floats(part, "scale"), _floats(part, "snaive"), _floats(part, "naive")
        with_scale = int(np.isfinite(sc).sum())
        note = None
        if with_scale < part.height:
            note = (
                f"{part.height - with_scale} of {part.height} series have no in-sample scale "
                f"(fewer than {MASE_MIN_DIFFERENCES} seasonal differences before the quarter, or no "
                "seasonal change): left out of MASE"
            )
        rows.append(
            {
                "cohort": cohort.name,
                "quarter": quarter,
                "quarter_label": quarter_label(quarter, fiscal_year_start_month),
                "metric": metric,
                "level": level,
                "series_scored": part.height,
                "mape": mape(a, f),
                "smape": smape(a, f),
                "run_id": run_id,
                "mase": mase(a, f, sc),
                "mase_series": with_scale,
                "mase_note": note,
                "bias": bias(a, f),
                "coverage_80": coverage(a, _floats(part, "yhat_lo_80"), _floats(part, "yhat_hi_80")),
                "coverage_95": coverage(a, _floats(part, "yhat_lo_95"), _floats(part, "yhat_hi_95")),
                "smape_base": smape(a, _floats(part, "yhat_base")),
                "smape_snaive": smape(a, sn),
                "smape_naive": smape(a, nv),
                "mase_snaive": mase(a, sn, sc),
                "smape_matched": smape(a[np.isfinite(sn)], f[np.isfinite(sn)]),
            }
        )
    return rows


def missing_coverage(snapshot: dict | None, as_of: dt.date, fiscal_year_start_month: int = 1) -> str | None:
    """Why a forecast as of `as_of` cannot be made from `snapshot` (a snapshot manifest with
    `complete_quarter_keys` and `file`), or None when the snapshot holds `as_of` in full.

    Partition Q is "trained on data up to and including Q": a snapshot whose last complete
    quarter is Q-1 (a quarter-close run on day 2, before any export covers the quarter; a
    backfill of the newest partition) would publish a forecast labelled Q+1 from a history
    that ends at Q-1."""
    from synoforecast.lib.quarters import quarter_end

    wanted = quarter_label(as_of, fiscal_year_start_month)
    needed = (
        f"an export taken after {quarter_end(as_of).isoformat()} that covers {wanted} completely; "
        f"drop it into the inbox and the sensor re-runs this quarter"
    )
    if snapshot is None:
        return f"no accepted snapshot: a forecast as of {wanted} needs {needed}"
    complete = snapshot.get("complete_quarter_keys") or []
    if as_of.isoformat() in complete:
        return None
    last = quarter_label(dt.date.fromisoformat(complete[-1]), fiscal_year_start_month) if complete else "none"
    return (
        f"the snapshot {snapshot.get('file', '?')} holds complete quarters up to {last}, not {wanted}: "
        f"a forecast as of {wanted} needs {needed}"
    )
