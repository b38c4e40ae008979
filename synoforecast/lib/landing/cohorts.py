"""A cohort's landing for the quarter in progress, and its replay evaluation (pure: no Dagster, no I/O).

`forecast/landing` publishes :func:`land_cohort`'s rows and stores its evaluation; the
series are formed as the quarterly forecasts form them (top customers with the top set the
quarter's forecast used, `all_other`, the cohort `total`), and every hierarchy the quarterly
forecasts reconcile adds up here too (:func:`_reconcile`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from synoforecast.lib.forecasting.cohort_forecast import PUBLISHED_DECIMALS
from synoforecast.lib.forecasting.cohorts import ALL_OTHER, METRICS, TOTAL, Cohort
from synoforecast.lib.landing import model as L
from synoforecast.lib.quarters import add_quarters, quarter_label

BAND_COLUMNS = [f"yhat_{side}_{lv}" for lv in L.LEVELS for side in ("lo", "hi")]

EVALUATION_SCHEMA = {
    "cutoff_date": pl.Date,
    "cohort": pl.String,
    "metric": pl.String,
    "level": pl.String,
    "week_of_quarter": pl.Int32,
    "elapsed_share": pl.Float64,
    "replays": pl.Int32,
    "smape_landing": pl.Float64,
    "smape_start": pl.Float64,
    "smape_qtd_share": pl.Float64,
    "coverage_80": pl.Float64,
    "coverage_95": pl.Float64,
    "weight_extrapolated": pl.Float64,
    "weight_naive": pl.Float64,
}


@dataclass
class CohortLanding:
    rows: pl.DataFrame  # the landing at the cut-off, one row per series and metric (reconciled)
    replays: pl.DataFrame  # past quarters replayed week by week (reconciled, leave-one-quarter-out)
    evaluation: pl.DataFrame  # EVALUATION_SCHEMA rows


def daily_as_formed(cohort: Cohort, daily: pl.DataFrame, history: pl.DataFrame, quarter: dt.date) -> pl.DataFrame:
    """A quarter's daily values per series as the quarter's forecast formed its series: for
    top customers the customers flagged top at the previous quarter close (the set the
    quarter-start forecast used), everyone else as `all_other` (the `total` is their sum:
    :func:`parent_paths`)."""
    part = daily.filter((pl.col("day") >= quarter) & (pl.col("day") < add_quarters(quarter, 1)))
    if not cohort.by_customer or part.is_empty():
        return part
    flagged = add_quarters(quarter, -1)
    top = history.filter((pl.col("quarter_start") == flagged) & pl.col("is_top_customer"))["series_id"].to_list()
    # sums in a fixed order: float addition is not associative, and the replays are reused by
    # the exact content of these paths (replay_key)
    grouped = part.sort("series_id", "day", "units", "revenue").with_columns(
        series_id=pl.when(pl.col("series_id").is_in(top)).then(pl.col("series_id")).otherwise(pl.lit(ALL_OTHER))
    )
    return (
        grouped.group_by("series_id", "day", maintain_order=True)
        .agg(pl.col("units").sum(), pl.col("revenue").sum())
        .sort("series_id", "day")
    )


def cohort_inputs(
    cohort: Cohort,
    daily: pl.DataFrame,
    history: pl.DataFrame,
    forecasts: pl.DataFrame,
    complete: list[dt.date],
    running: dt.date,
) -> L.CohortInputs:
    """`daily`: the cohort's daily_sql rows over complete quarters and the running one (a
    `parent`'s own rows are not read: :func:`parent_paths`); `forecasts`: its published rows
    (series_id, metric, target_quarter, yhat)."""
    paths: dict = {}
    for quarter in [*complete, running]:
        formed = daily_as_formed(cohort, daily, history, quarter)
        paths.update(L.quarter_paths(formed, [quarter], cohort.stock_metrics))
    by_target = {
        (r["series_id"], r["metric"], r["target_quarter"]): float(r["yhat"]) for r in forecasts.iter_rows(named=True)
    }
    series = sorted({(s, m) for s, m, _ in by_target})
    parent = cohort.parent or TOTAL
    parts = sorted({s for s, _ in series if s != parent})
    if cohort.parent is not None:
        paths = {k: v for k, v in paths.items() if k[0] != parent} | parent_paths(
            paths, parent, parts, by_target, [*complete, running]
        )
    return L.CohortInputs(
        paths=paths,
        complete=list(complete),
        forecasts=by_target,
        series=series,
        parts=parts,
        stock_metrics=cohort.stock_metrics,
        alignment=cohort.profile_alignment,
        totals=(parent,),
    )


def parent_paths(paths: dict, parent: str, parts: list[str], forecasts: dict, quarters: list[dt.date]) -> dict:
    """A `parent` cohort's parent as the sum of its published parts' paths, per quarter and
    metric: the parts with a forecast for it (all of them in a quarter the parent has none
    for: only profiles read it). The quarterly forecasts publish the parent as the sum of
    its parts (T1+T2+T3; the forecast C2 services), so its F holds no Unknown tier nor a
    service without a forecast; a quarter-to-date that did would move known parts when
    they are scaled onto it. Stocks too: the sum of the services' latest seats."""
    out = {}
    for quarter in quarters:
        for metric in METRICS:
            members = (
                [s for s in parts if (s, metric, quarter) in forecasts]
                if (parent, metric, quarter) in forecasts
                else parts
            )
            held = [paths[(s, metric, quarter)] for s in members if (s, metric, quarter) in paths]
            if held:  # summed in the parts' sorted order: replay_key hashes these bits
                out[(parent, metric, quarter)] = np.sum(held, axis=0)
    return out


def _reconcile(cohort: Cohort, frame: pl.DataFrame, keys: list[str], totals: pl.DataFrame | None) -> pl.DataFrame:
    """Points made to add up, `yhat_base` keeping the point before, rounded as published: the
    hierarchies of the quarterly forecasts, but top-down onto the total's own landing (the
    parts of a `parent` cohort scaled to it; a `top_down_to` cohort onto the other cohort's).
    A total's landing beats the sum of its parts' here: the parts' quarter-to-date is lumpy
    (one customer's order), the total's is not; and a total that is its own landing lands on
    its quarter-to-date exactly at quarter end."""
    from synoforecast.lib.forecasting.reconcile import top_down

    if frame.is_empty():
        return frame.with_columns(yhat_base=pl.lit(None, pl.Float64))
    if cohort.parent is not None:
        is_parent = pl.col("series_id") == cohort.parent
        parent = frame.filter(is_parent).with_columns(
            yhat_base=pl.col("yhat"), yhat=pl.col("yhat").round(PUBLISHED_DECIMALS)
        )
        own = parent.select(*keys, total="yhat")
        if cohort.top_down_to is not None and totals is not None:  # one total: the other cohort's landing
            own = totals
            parent = top_down(parent, totals, keys=keys, decimals=PUBLISHED_DECIMALS)
        return pl.concat(
            [parent, top_down(frame.filter(~is_parent), own, keys=keys, decimals=PUBLISHED_DECIMALS)],
            how="vertical_relaxed",
        ).sort(*keys, "series_id")
    if cohort.top_down_to is not None and totals is not None:
        return top_down(frame, totals, keys=keys, decimals=PUBLISHED_DECIMALS)
    return frame.with_columns(yhat_base=pl.col("yhat"), yhat=pl.col("yhat").round(PUBLISHED_DECIMALS))


def _rounded_bands(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns([pl.col(c).round(PUBLISHED_DECIMALS) for c in BAND_COLUMNS])


def _score(cohort: Cohort, cutoff: dt.date, replays: pl.DataFrame) -> pl.DataFrame:
    """The evaluation rows. Coverage on the published grid: the bands are published rounded to
    PUBLISHED_DECIMALS, so the actual is rounded alike. A fully known quarter's band is
    [x, x], x the actual rounded, and covers it (unrounded, an actual a hair off x missed);
    a unit of slack instead would also count actuals a unit outside the published band."""
    from synoforecast.lib.forecasting.metrics import coverage, smape

    rows = []
    if replays.is_empty():
        return pl.DataFrame(schema=EVALUATION_SCHEMA)
    for (metric, level, week), g in sorted(replays.group_by("metric", "level", "week"), key=lambda x: x[0]):
        a = g["actual"].to_numpy()
        published = g["actual"].round(PUBLISHED_DECIMALS).to_numpy()
        rows.append(
            {
                "cutoff_date": cutoff,
                "cohort": cohort.name,
                "metric": metric,
                "level": level,
                "week_of_quarter": int(week),
                "elapsed_share": float(g["elapsed_share"].mean()),
                "replays": g.height,
                "smape_landing": smape(a, g["yhat"].to_numpy()),
                "smape_start": smape(a, g["forecast_start"].to_numpy()),
                "smape_qtd_share": smape(a, g["naive_extrapolated"].to_numpy()),
                "coverage_80": coverage(published, g["yhat_lo_80"].to_numpy(), g["yhat_hi_80"].to_numpy()),
                "coverage_95": coverage(published, g["yhat_lo_95"].to_numpy(), g["yhat_hi_95"].to_numpy()),
                "weight_extrapolated": float(g["weight"].mean()),
                "weight_naive": float(g["weight_naive"].mean()),
            }
        )
    return pl.DataFrame(rows, schema=EVALUATION_SCHEMA)


@dataclass
class Replayed:
    """A cohort's replays of its complete quarters, which do not depend on the cut-off: a
    weekly export whose complete quarters are unchanged replays them identically."""

    crossfitted: pl.DataFrame  # before reconciliation: what the cut-off's weights are learned on
    reconciled: pl.DataFrame  # reconciled and scored: the scores behind every interval
    honest: pl.DataFrame  # with leave-one-quarter-out bands: the published replays


def replay_cohort(cohort: Cohort, inputs: L.CohortInputs, replay_totals: pl.DataFrame | None = None) -> Replayed:
    """Every complete quarter replayed week by week (:func:`landing.replays`), cross-fitted,
    reconciled (a `top_down_to` cohort onto `replay_totals`) and given honest bands."""
    crossfitted = L.cross_fitted(L.replays(inputs), L.week_span(inputs.alignment))
    # intervals from the errors of the reconciled replays: a total that is the sum of its parts
    # errs like that sum, not like its own landing
    reconciled = (
        L.scored(_reconcile(cohort, crossfitted, ["quarter_start", "week", "metric"], replay_totals))
        if crossfitted.height
        else crossfitted.with_columns(score=pl.lit(None, pl.Float64))
    )
    honest = (
        _rounded_bands(L.with_intervals(reconciled, reconciled, leave_quarter_out=True))
        if reconciled.height
        else reconciled
    )
    return Replayed(crossfitted, reconciled, honest)


REPLAY_CODE = (
    "synoforecast.lib.landing.model",
    __name__,
    "synoforecast.lib.forecasting.reconcile",
    "synoforecast.lib.forecasting.intervals",
    "synoforecast.lib.forecasting.metrics",
    "synoforecast.lib.quarters",
)  # the modules replays are computed by


@lru_cache(maxsize=1)
def _code_digest() -> bytes:
    """The replay code's sources and the numpy/polars releases: read once per process."""
    import hashlib
    import importlib
    from importlib.metadata import version
    from pathlib import Path

    digest = hashlib.sha256()
    for name in REPLAY_CODE:
        digest.update(hashlib.sha256(Path(importlib.import_module(name).__file__).read_bytes()).digest())
    digest.update(f"numpy {version('numpy')} polars {version('polars')}".encode())
    return digest.digest()


def replay_key(cohort: Cohort, inputs: L.CohortInputs, replay_totals: pl.DataFrame | None = None) -> str:
    """Content hash of everything :func:`replay_cohort` reads: the cohort's definition, the
    complete quarters' daily paths (not the running quarter's), the published forecasts, the
    totals a top-down cohort is scaled onto, and the code and library releases that compute
    them. Equal keys give equal replays; nothing else (no date) invalidates them."""
    import hashlib

    digest = hashlib.blake2b(digest_size=20)

    def put(*parts) -> None:
        for part in parts:
            digest.update(part if isinstance(part, bytes) else repr(part).encode())
            digest.update(b"\0")

    put(_code_digest())
    put(
        cohort.name,
        cohort.by_customer,
        cohort.parent,
        cohort.top_down_to,
        cohort.stock_metrics,
        cohort.profile_alignment,
    )
    put(inputs.complete, inputs.series, inputs.parts, inputs.stock_metrics, inputs.alignment, inputs.totals)
    complete = set(inputs.complete)
    for key in sorted(k for k in inputs.paths if k[2] in complete):
        put(key, np.ascontiguousarray(inputs.paths[key], dtype="<f8").tobytes())
    put(sorted(inputs.forecasts.items()))
    if replay_totals is not None:
        put(replay_totals.sort(replay_totals.columns).rows())
    return digest.hexdigest()


def land_cohort(
    cohort: Cohort,
    inputs: L.CohortInputs,
    running: dt.date,
    cutoff: dt.date,
    totals: pl.DataFrame | None = None,
    replay_totals: pl.DataFrame | None = None,
    fiscal_year_start_month: int = 1,
    replayed: Replayed | None = None,
) -> CohortLanding:
    """The landing at `cutoff` of the quarter starting `running`, with its replays and their
    evaluation. A `top_down_to` cohort is scaled onto `totals` (metric, total) and its replays
    onto `replay_totals` (quarter_start, week, metric, total): the other cohort's landings.
    `replayed`: :func:`replay_cohort`'s result for these inputs, if kept from an earlier run."""
    if replayed is None:
        replayed = replay_cohort(cohort, inputs, replay_totals)
    rows = _reconcile(cohort, L.land(inputs, running, cutoff, replayed.crossfitted), ["metric"], totals)
    if rows.height:
        rows = _rounded_bands(L.with_intervals(rows, replayed.reconciled, leave_quarter_out=False)).with_columns(
            cohort=pl.lit(cohort.name),
            quarter_label=pl.lit(quarter_label(running, fiscal_year_start_month)),
            week_of_quarter=pl.col("week"),
            weight_extrapolated=pl.col("weight"),
        )
        if cohort.parent is not None and cohort.top_down_to is not None and totals is not None:
            from synoforecast.lib.forecasting.cohort_forecast import same_total

            rows = same_total(rows, cohort.parent, totals)
    return CohortLanding(rows=rows, replays=replayed.honest, evaluation=_score(cohort, cutoff, replayed.honest))


def landing_totals(landing: CohortLanding, series_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(metric, total) of `series_id` at the cut-off and (quarter_start, week, metric, total) in
    the replays: what a top-down cohort adds up to."""
    now = (
        landing.rows.filter(pl.col("series_id") == series_id).select("metric", *BAND_COLUMNS, total="yhat")
        if landing.rows.height
        else pl.DataFrame(schema={"metric": pl.String, "total": pl.Float64})
    )
    past = (
        landing.replays.filter(pl.col("series_id") == series_id).select("quarter_start", "week", "metric", total="yhat")
        if landing.replays.height
        else pl.DataFrame(schema={"quarter_start": pl.Date, "week": pl.Int32, "metric": pl.String, "total": pl.Float64})
    )
    return now, past
