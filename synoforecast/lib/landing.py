"""Where the quarter in progress will land (pure: numpy/polars, no Dagster, no I/O).

At a snapshot's cut-off, each series of a cohort has a quarter-to-date actual (QTD) and
the quarter's model forecast made at the last quarter close (F). The landing combines F
with the QTD extrapolated by the series' intra-quarter profile (E = QTD / p, p the share
of a quarter reached by the same point of past quarters, aligned by selling days so
weekends and quarter-end pushes line up):

    landing = w(week) * E + (1 - w(week)) * F

``w`` per week of quarter is learned by replaying past quarters at every week (only data
dated up to each replayed cut-off, profiles from the quarters before it, the forecast the
platform published for that quarter), and the 80/95% intervals are split-conformal on the
same replays by week, so they narrow as the quarter fills. Weights and interval quantiles
used to score a replayed quarter are learned without that quarter (leave-one-quarter-out).

Metrics are flows (units, revenue: summed to date) or stocks (C2 seats: the latest month's
value); a stock's naive extrapolation is its latest value, a flow's QTD / calendar share.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from synoforecast.lib.quarters import add_quarters, quarter_start

WEEKS = 13  # weeks of a quarter (the 13th runs to the quarter's last day)
PROFILE_QUARTERS = 8  # past quarters an intra-quarter profile is averaged over
MIN_PROFILE_QUARTERS = 4  # fewer than this with sales: the cohort's pooled profile instead
MIN_PROFILE_SHARE = 0.02  # below it an extrapolation explodes: the forecast alone
WEIGHT_GRID = np.linspace(0.0, 1.0, 21)
LEVELS = (80, 95)


@dataclass(frozen=True)
class QuarterCalendar:
    """Day index arithmetic of one (fiscal) quarter."""

    start: dt.date
    days: int  # calendar days in the quarter
    selling_cum: np.ndarray  # selling days (Mon-Fri) elapsed at the end of each day index

    @classmethod
    def of(cls, start: dt.date) -> "QuarterCalendar":
        days = (add_quarters(start, 1) - start).days
        weekday = (np.arange(days) + start.weekday()) % 7
        return cls(start, days, np.cumsum(weekday < 5))

    def index(self, day: dt.date) -> int:
        return min(max((day - self.start).days, 0), self.days - 1)

    def calendar_share(self, index: int) -> float:
        return (index + 1) / self.days

    def selling_share(self, index: int) -> float:
        return float(self.selling_cum[index]) / float(self.selling_cum[-1])

    def index_at_selling_share(self, share: float) -> int:
        """First day index whose selling-day share reaches `share` (how far another quarter
        had got at the same point of its selling days)."""
        return int(min(np.searchsorted(self.selling_cum / self.selling_cum[-1], share - 1e-12), self.days - 1))

    def alignment(self, index: int) -> tuple[float, int]:
        """(selling-day share, days past the last selling day): a Saturday cut-off lines up with
        the Saturday after the same share of another quarter's selling days."""
        first = int(np.searchsorted(self.selling_cum, self.selling_cum[index]))
        return self.selling_share(index), index - first if self.selling_cum[index] > 0 else index

    def aligned_index(self, alignment: tuple[float, int]) -> int:
        share, extra = alignment
        if share >= 1.0 - 1e-12:  # every selling day done: only a weekend is left, take the quarter's end
            return self.days - 1
        return min(self.index_at_selling_share(share) + extra, self.days - 1)

    def week(self, index: int) -> int:
        return min(WEEKS, index // 7 + 1)

    def replay_indexes(self) -> list[int]:
        """The last day of each week of the quarter (weekly exports), the 13th at quarter end."""
        return [min(7 * w - 1, self.days - 1) if w < WEEKS else self.days - 1 for w in range(1, WEEKS + 1)]


def weekday_count(start: dt.date, end: dt.date) -> int:
    """Mon-Fri days from `start` to `end` inclusive."""
    if end < start:
        return 0
    n = (end - start).days + 1
    return int(((np.arange(n) + start.weekday()) % 7 < 5).sum())


def quarter_paths(daily: pl.DataFrame, quarters: list[dt.date], stock_metrics: tuple[str, ...] = (),
                  metrics: tuple[str, ...] = ("units", "revenue")) -> dict[tuple[str, str, dt.date], np.ndarray]:
    """Per (series_id, metric, quarter start): the value to date at the end of each day of
    the quarter (flows: running sum; stocks: the latest value reported, 0 before the first).
    `daily`: series_id, day, and the metric columns (one row per series and day)."""
    calendars = {q: QuarterCalendar.of(q) for q in quarters}
    ends = {q: add_quarters(q, 1) for q in quarters}
    out: dict[tuple[str, str, dt.date], np.ndarray] = {}
    if daily.is_empty():
        return out
    for (series_id,), g in daily.sort("day").group_by(["series_id"], maintain_order=True):
        days = g["day"].to_list()
        for q in quarters:
            cal = calendars[q]
            mask = [(q <= d < ends[q]) for d in days]
            if not any(mask):
                continue
            idx = np.array([(d - q).days for d, m in zip(days, mask) if m])
            for metric in metrics:
                values = g[metric].cast(pl.Float64).fill_null(0.0).to_numpy()[np.array(mask)]
                per_day = np.zeros(cal.days)
                if metric in stock_metrics:
                    seen = np.zeros(cal.days, dtype=bool)
                    np.add.at(per_day, idx, values)
                    seen[idx] = True
                    filled = np.where(seen, per_day, np.nan)
                    last = np.maximum.accumulate(np.where(seen, np.arange(cal.days), -1))
                    path = np.where(last >= 0, filled[np.maximum(last, 0)], 0.0)
                else:
                    np.add.at(per_day, idx, values)
                    path = np.cumsum(per_day)
                out[(str(series_id), metric, q)] = path
    return out


def profile_share(paths: dict, series_id: str, metric: str, before: list[dt.date], share: tuple[float, int],
                  pooled: dict[tuple[str, dt.date], tuple[float, float]] | None = None) -> float:
    """The share of a quarter's value the series had reached at the same point of its selling
    days (`share`: :meth:`QuarterCalendar.alignment`) in its last :data:`PROFILE_QUARTERS`
    quarters before (ratio of sums); else the cohort's (`pooled`); else NaN."""
    done = final = 0.0
    used = 0
    for q in before[-PROFILE_QUARTERS:]:
        path = paths.get((series_id, metric, q))
        if path is None or path[-1] == 0:
            continue
        done += path[QuarterCalendar.of(q).aligned_index(share)]
        final += path[-1]
        used += 1
    if used >= MIN_PROFILE_QUARTERS and final > 0:
        return done / final
    if pooled is not None:
        done = sum(pooled.get((metric, q), (0.0, 0.0))[0] for q in before[-PROFILE_QUARTERS:])
        final = sum(pooled.get((metric, q), (0.0, 0.0))[1] for q in before[-PROFILE_QUARTERS:])
        return done / final if final > 0 else float("nan")
    return float("nan")


def pooled_profile(paths: dict, series_ids: list[str], metric: str, quarters: list[dt.date],
                   share: tuple[float, int]) -> dict[tuple[str, dt.date], tuple[float, float]]:
    """(value at the aligned day, final value) per quarter summed over `series_ids`: the
    cohort's profile, for series with too few quarters of their own."""
    out = {}
    for q in quarters:
        i = QuarterCalendar.of(q).aligned_index(share)
        done = final = 0.0
        for s in series_ids:
            path = paths.get((s, metric, q))
            if path is not None:
                done += path[i]
                final += path[-1]
        out[(metric, q)] = (done, final)
    return out


def extrapolations(qtd: float, profile: float, calendar_share: float, stock: bool) -> tuple[float, float]:
    """(profile extrapolation E, naive extrapolation) of a value to date."""
    e = qtd / profile if np.isfinite(profile) and profile >= MIN_PROFILE_SHARE else float("nan")
    naive = qtd if stock else qtd / calendar_share
    return e, naive


def combine(extrapolated: np.ndarray, forecast: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """w * E + (1 - w) * F, and F alone where E does not exist."""
    return np.where(np.isfinite(extrapolated), weight * extrapolated + (1 - weight) * forecast, forecast)


def smape_terms(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    denom = np.abs(actual) + np.abs(predicted)
    return np.where(denom > 0, 200.0 * np.abs(actual - predicted) / np.where(denom > 0, denom, 1.0), 0.0)


def best_weight(actual: np.ndarray, extrapolated: np.ndarray, forecast: np.ndarray) -> float:
    """The grid weight with the lowest mean sMAPE (ties: the smaller weight, i.e. the forecast)."""
    if len(actual) == 0:
        return 0.0
    losses = [float(np.mean(smape_terms(actual, combine(extrapolated, forecast, w)))) for w in WEIGHT_GRID]
    return float(WEIGHT_GRID[int(np.argmin(losses))])


def interval_norm(point: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(point), scale)


def half_widths(scores: np.ndarray, groups: np.ndarray, levels=LEVELS) -> dict[int, float]:
    from synoforecast.lib.forecasting.selection import conformal_halfwidths

    return conformal_halfwidths(scores, levels, groups)


def quarter_of(cutoff: dt.date, fiscal_year_start_month: int = 1) -> dt.date:
    return quarter_start(cutoff, fiscal_year_start_month)


def ceil_week(days_elapsed: int) -> int:
    return min(WEEKS, max(1, math.ceil(days_elapsed / 7)))


@dataclass
class CohortInputs:
    """What a cohort's landing is made from.

    paths: :func:`quarter_paths` over the complete quarters and the running one;
    complete: the snapshot's complete quarters (sorted); forecasts: the published quarterly
    forecast per (series_id, metric, target quarter start); series: the (series_id, metric)
    pairs to land; parts: the series whose sum is the cohort (its profile for series with
    too little history of their own); stock_metrics: metrics that are levels, not sums."""

    paths: dict
    complete: list[dt.date]
    forecasts: dict[tuple[str, str, dt.date], float]
    series: list[tuple[str, str]]
    parts: list[str]
    stock_metrics: tuple[str, ...] = ()


def _scale(inputs: CohortInputs, series_id: str, metric: str, before: list[dt.date]) -> float:
    from synoforecast.lib.forecasting.selection import series_scale

    finals = [inputs.paths[(series_id, metric, q)][-1] if (series_id, metric, q) in inputs.paths else 0.0
              for q in before]
    return series_scale(np.asarray(finals, dtype="float64"), 4) if finals else 1.0


def _point(inputs: CohortInputs, series_id: str, metric: str, quarter: dt.date, index: int,
           before: list[dt.date], pooled_cache: dict) -> dict | None:
    """One cut-off of one series: QTD, shares, profile, both extrapolations and F."""
    forecast = inputs.forecasts.get((series_id, metric, quarter))
    if forecast is None or not np.isfinite(forecast):
        return None
    cal = QuarterCalendar.of(quarter)
    path = inputs.paths.get((series_id, metric, quarter))
    qtd = float(path[index]) if path is not None else 0.0
    sell, calendar = cal.selling_share(index), cal.calendar_share(index)
    key = (metric, quarter, index)
    if index == cal.days - 1:  # the quarter's last day: what is there is the quarter
        p = 1.0
    else:
        if key not in pooled_cache:
            pooled_cache[key] = pooled_profile(inputs.paths, inputs.parts, metric, before[-PROFILE_QUARTERS:],
                                               cal.alignment(index))
        p = profile_share(inputs.paths, series_id, metric, before, cal.alignment(index), pooled_cache[key])
    stock = metric in inputs.stock_metrics
    e, naive = extrapolations(qtd, p, calendar, stock)
    return {"series_id": series_id, "metric": metric, "quarter_start": quarter, "week": cal.week(index),
            "cutoff_date": quarter + dt.timedelta(days=index), "elapsed_share": calendar,
            "elapsed_selling_share": sell, "qtd_actual": qtd, "profile_share": p, "extrapolated": e,
            "naive_extrapolated": naive, "forecast_start": float(forecast),
            "scale": _scale(inputs, series_id, metric, before)}


REPLAY_SCHEMA = {
    "series_id": pl.String, "metric": pl.String, "quarter_start": pl.Date, "week": pl.Int32,
    "cutoff_date": pl.Date, "elapsed_share": pl.Float64, "elapsed_selling_share": pl.Float64,
    "qtd_actual": pl.Float64, "profile_share": pl.Float64, "extrapolated": pl.Float64,
    "naive_extrapolated": pl.Float64, "forecast_start": pl.Float64, "scale": pl.Float64, "actual": pl.Float64,
}


def replays(inputs: CohortInputs) -> pl.DataFrame:
    """Every complete quarter with enough quarters before it, replayed at the end of each of
    its weeks: only rows dated up to that day, profiles from the quarters before, the
    forecast published for it at the previous quarter close; `actual` is how it landed."""
    rows = []
    cache: dict = {}
    for k, quarter in enumerate(inputs.complete):
        before = inputs.complete[:k]
        if len(before) < MIN_PROFILE_QUARTERS:
            continue
        cal = QuarterCalendar.of(quarter)
        for series_id, metric in inputs.series:
            path = inputs.paths.get((series_id, metric, quarter))
            actual = float(path[-1]) if path is not None else 0.0
            for index in cal.replay_indexes():
                row = _point(inputs, series_id, metric, quarter, index, before, cache)
                if row is not None:
                    rows.append({**row, "actual": actual})
    return pl.DataFrame(rows, schema=REPLAY_SCHEMA)


def _weights_by_week(frame: pl.DataFrame) -> dict[int, float]:
    out = {}
    for (week,), g in frame.group_by(["week"]):
        out[int(week)] = best_weight(g["actual"].to_numpy(), g["extrapolated"].fill_null(float("nan")).to_numpy(),
                                     g["forecast_start"].to_numpy())
    return out


def cross_fitted(replayed: pl.DataFrame) -> pl.DataFrame:
    """The replays with each quarter's landing made by weights learned without that quarter
    (`weight`, `yhat`) and its conformal score; the honest sample of the landing's error."""
    if replayed.is_empty():
        return replayed.with_columns(weight=pl.lit(None, pl.Float64), yhat=pl.lit(None, pl.Float64),
                                     score=pl.lit(None, pl.Float64))
    parts = []
    for (quarter,), g in replayed.group_by(["quarter_start"], maintain_order=True):
        others = replayed.filter(pl.col("quarter_start") != quarter)
        w = _weights_by_week(others)
        weight = g["week"].replace_strict(w, default=0.0, return_dtype=pl.Float64)
        parts.append(g.with_columns(weight=weight))
    out = pl.concat(parts)
    yhat = combine(out["extrapolated"].fill_null(float("nan")).to_numpy(), out["forecast_start"].to_numpy(),
                   out["weight"].to_numpy())
    score = np.abs(out["actual"].to_numpy() - yhat) / interval_norm(yhat, out["scale"].to_numpy())
    return out.with_columns(yhat=pl.Series(yhat), score=pl.Series(score))


def with_intervals(frame: pl.DataFrame, scored: pl.DataFrame, leave_quarter_out: bool) -> pl.DataFrame:
    """80/95% bounds per row from the scores of the same week (and, to score a replay
    honestly, of the other quarters only)."""
    lo = {lv: np.full(frame.height, np.nan) for lv in LEVELS}
    hi = {lv: np.full(frame.height, np.nan) for lv in LEVELS}
    weeks = frame["week"].to_numpy()
    quarters = frame["quarter_start"].to_list() if leave_quarter_out else [None] * frame.height
    point = frame["yhat"].to_numpy()
    norm = interval_norm(point, frame["scale"].to_numpy())
    cache: dict = {}
    for i in range(frame.height):
        key = (int(weeks[i]), quarters[i])
        if key not in cache:
            pool = scored.filter(pl.col("week") == key[0])
            if key[1] is not None:
                pool = pool.filter(pl.col("quarter_start") != key[1])
            cache[key] = half_widths(pool["score"].to_numpy(), np.asarray(pool["quarter_start"].to_list()))
        for lv in LEVELS:
            half = cache[key][lv] * norm[i]
            lo[lv][i], hi[lv][i] = point[i] - half, point[i] + half
    return frame.with_columns(**{f"yhat_lo_{lv}": pl.Series(lo[lv]) for lv in LEVELS},
                              **{f"yhat_hi_{lv}": pl.Series(hi[lv]) for lv in LEVELS})


def land(inputs: CohortInputs, running: dt.date, cutoff: dt.date, scored: pl.DataFrame) -> pl.DataFrame:
    """The landing of every series at `cutoff` in the running quarter starting `running`:
    weights and intervals of the cut-off's week, from all replays (`scored`:
    :func:`cross_fitted` of :func:`replays`)."""
    cal = QuarterCalendar.of(running)
    index = cal.index(cutoff)
    before = [q for q in inputs.complete if q < running]
    weights = _weights_by_week(scored) if scored.height else {}
    rows, cache = [], {}
    for series_id, metric in inputs.series:
        row = _point(inputs, series_id, metric, running, index, before, cache)
        if row is not None:
            rows.append(row)
    frame = pl.DataFrame(rows, schema={k: v for k, v in REPLAY_SCHEMA.items() if k != "actual"})
    if frame.is_empty():
        return frame
    week = cal.week(index)
    weight = weights.get(week, 0.0)
    yhat = combine(frame["extrapolated"].fill_null(float("nan")).to_numpy(), frame["forecast_start"].to_numpy(),
                   np.full(frame.height, weight))
    frame = frame.with_columns(weight=pl.lit(weight), yhat=pl.Series(yhat))
    return with_intervals(frame, scored, leave_quarter_out=False)
