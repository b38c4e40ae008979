"""Where the quarter in progress will land (pure: numpy/polars, no Dagster, no I/O).

At a snapshot's cut-off, each series of a cohort has a quarter-to-date actual (QTD) and
the quarter's model forecast made at the last quarter close (F). Two extrapolations of the
QTD join it: E = QTD / p, p the share of a quarter the series reached by the same point of
its past quarters (its intra-quarter profile: quarter-end pushes, weekends, holidays;
aligned by selling days, calendar days or months), and N, the naive one (QTD / elapsed
calendar share; for a stock, its latest value). The landing is

    landing = a * E + b * N + (1 - a - b) * F        (a, b >= 0, a + b <= 1)

with (a, b) per week of quarter, metric and level (totals / parts) learned by replaying past
quarters at every week (only data dated up to each replayed cut-off, profiles from the
quarters before it, the forecast the platform published for that quarter). The 80/95%
intervals are split-conformal on the same replays per week and level, so they narrow as the
quarter fills. Weights and interval quantiles used to score a replayed quarter are learned
without that quarter (leave-one-quarter-out): the evaluation is honest.

Metrics are flows (units, revenue: summed to date) or stocks (C2 seats: the latest month's
value).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from synoforecast.lib.quarters import add_quarters

WEEKS = 13  # weeks of a quarter (the 13th runs to the quarter's last day)
PROFILE_QUARTERS = 8  # past quarters an intra-quarter profile is averaged over
MIN_PROFILE_QUARTERS = 4  # fewer than this with sales: the cohort's pooled profile instead
MIN_PROFILE_SHARE = 0.02  # below it an extrapolation explodes: the forecast alone
PROFILE_SHRINKAGE = 4.0  # a series' own profile vs its cohort's: the cohort's weighs as 4 quarters
WEIGHT_STEP = 0.05
WEIGHTS = np.array(
    [
        (a, b)
        for a in np.arange(0, 1 + 1e-9, WEIGHT_STEP)
        for b in np.arange(0, 1 + 1e-9, WEIGHT_STEP)
        if a + b <= 1 + 1e-9
    ]
)  # (a, b) over the simplex, forecast-heavy first
WEIGHTS = WEIGHTS[np.argsort(WEIGHTS.sum(axis=1), kind="stable")]
MIX_MARGIN = 0.03  # a mix must beat the better baseline by 3% of its sMAPE on the replays to be used
LEVELS = (80, 95)


@dataclass(frozen=True)
class QuarterCalendar:
    """Day index arithmetic of one (fiscal) quarter."""

    start: dt.date
    days: int  # calendar days in the quarter
    selling_cum: np.ndarray  # selling days (Mon-Fri) elapsed at the end of each day index

    @classmethod
    def of(cls, start: dt.date) -> QuarterCalendar:
        return _calendar(start)

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

    def alignment(self, index: int, mode: str = "selling") -> tuple:
        """Where in the quarter `index` is, for :meth:`aligned_index` of another quarter.

        ``selling``: (selling-day share, days past the last selling day), so a Saturday cut-off
        lines up with the Saturday after the same share of another quarter's selling days.
        ``calendar``: the share of calendar days (retail sells every day of the week).
        ``month`` (one row per month dated on its first day, C2): (month of the quarter, day
        of the month), so a cut-off that holds a month's row lines up with the same month."""
        if mode == "month":
            day = self.start + dt.timedelta(days=index)
            return ("month", (day.year * 12 + day.month) - (self.start.year * 12 + self.start.month), day.day)
        if mode == "calendar":
            return ("calendar", self.calendar_share(index))
        first = int(np.searchsorted(self.selling_cum, self.selling_cum[index]))
        return ("selling", self.selling_share(index), index - first if self.selling_cum[index] > 0 else index)

    def aligned_index(self, alignment: tuple) -> int:
        if alignment[0] == "month":
            _, month, day = alignment
            first = self.start
            month_start = dt.date(first.year + (first.month - 1 + month) // 12, (first.month - 1 + month) % 12 + 1, 1)
            return min((month_start - self.start).days + day - 1, self.days - 1)
        if alignment[0] == "calendar":
            return min(max(int(round(alignment[1] * self.days)) - 1, 0), self.days - 1)
        _, share, extra = alignment
        if share >= 1.0 - 1e-12:  # every selling day done: only a weekend is left, take the quarter's end
            return self.days - 1
        return min(self.index_at_selling_share(share) + extra, self.days - 1)

    def week(self, index: int) -> int:
        return min(WEEKS, index // 7 + 1)

    def replay_indexes(self) -> list[int]:
        """The last day of each week of the quarter (weekly exports), the 13th at quarter end."""
        return [min(7 * w - 1, self.days - 1) if w < WEEKS else self.days - 1 for w in range(1, WEEKS + 1)]


@lru_cache(maxsize=512)
def _calendar(start: dt.date) -> QuarterCalendar:
    days = (add_quarters(start, 1) - start).days
    weekday = (np.arange(days) + start.weekday()) % 7
    return QuarterCalendar(start, days, np.cumsum(weekday < 5))


def weekday_count(start: dt.date, end: dt.date) -> int:
    """Mon-Fri days from `start` to `end` inclusive."""
    if end < start:
        return 0
    n = (end - start).days + 1
    return int(((np.arange(n) + start.weekday()) % 7 < 5).sum())


def quarter_paths(
    daily: pl.DataFrame,
    quarters: list[dt.date],
    stock_metrics: tuple[str, ...] = (),
    metrics: tuple[str, ...] = ("units", "revenue"),
) -> dict[tuple[str, str, dt.date], np.ndarray]:
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


def profile_share(
    paths: dict,
    series_id: str,
    metric: str,
    before: list[dt.date],
    share: tuple,
    pooled: dict[tuple[str, dt.date], tuple[float, float]] | None = None,
) -> float:
    """The share of a quarter's value the series had reached at the same point of its quarter
    (`share`: :meth:`QuarterCalendar.alignment`) over its last :data:`PROFILE_QUARTERS`
    quarters (ratio of sums), shrunk toward the cohort's (`pooled`) with the weight of
    :data:`PROFILE_SHRINKAGE` quarters: one customer's big order in week 3 of one quarter is
    not its profile. A series with too few quarters of sales of its own gets the cohort's."""
    window = before[-PROFILE_QUARTERS:]
    done = final = 0.0
    used = 0
    for q in window:
        path = paths.get((series_id, metric, q))
        if path is None or path[-1] == 0:
            continue
        done += path[QuarterCalendar.of(q).aligned_index(share)]
        final += path[-1]
        used += 1
    cohort = float("nan")
    if pooled is not None:
        p_done = sum(pooled.get((metric, q), (0.0, 0.0))[0] for q in window)
        p_final = sum(pooled.get((metric, q), (0.0, 0.0))[1] for q in window)
        cohort = p_done / p_final if p_final > 0 else float("nan")
    if used < MIN_PROFILE_QUARTERS or final <= 0:
        return cohort
    if not np.isfinite(cohort):
        return done / final
    mean_final = final / used
    return (done + PROFILE_SHRINKAGE * cohort * mean_final) / (final + PROFILE_SHRINKAGE * mean_final)


def pooled_profile(
    paths: dict, series_ids: list[str], metric: str, quarters: list[dt.date], share: tuple
) -> dict[tuple[str, dt.date], tuple[float, float]]:
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


def combine(extrapolated: np.ndarray, naive: np.ndarray, forecast: np.ndarray, a, b) -> np.ndarray:
    """a * E + b * N + (1 - a - b) * F; where E does not exist its weight goes to F."""
    a = np.where(np.isfinite(extrapolated), a, 0.0)
    return a * np.nan_to_num(extrapolated) + b * naive + (1 - a - b) * forecast


def smape_terms(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    denom = np.abs(actual) + np.abs(predicted)
    return np.where(denom > 0, 200.0 * np.abs(actual - predicted) / np.where(denom > 0, denom, 1.0), 0.0)


_ALONE = [int(np.flatnonzero((WEIGHTS == w).all(axis=1))[0]) for w in ((0.0, 0.0), (0.0, 1.0))]  # F, N alone


def grid_losses(actual: np.ndarray, extrapolated: np.ndarray, naive: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """sMAPE of every (a, b) of :data:`WEIGHTS` on every row: shape (grid points, rows)."""
    e = np.where(np.isfinite(extrapolated), extrapolated, np.nan)
    pred = combine(e[None, :], naive[None, :], forecast[None, :], WEIGHTS[:, :1], WEIGHTS[:, 1:])
    return smape_terms(actual[None, :], pred)


def pick_weights(mean_losses: np.ndarray) -> tuple[float, float]:
    """The (a, b) with the lowest mean sMAPE (ties: the forecast-heavier); a baseline alone (the
    forecast, or the naive extrapolation) unless the mix beats it by :data:`MIX_MARGIN`: a mix
    fitted to a few replays that beats it by less is as likely to lose on the next quarter."""
    best = int(np.argmin(mean_losses))
    baseline = min(_ALONE, key=lambda i: mean_losses[i])
    if mean_losses[best] > mean_losses[baseline] * (1 - MIX_MARGIN):
        best = baseline
    a, b = WEIGHTS[best]
    return float(a), float(b)


def interval_norm(point: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(point), scale)


def half_widths(scores: np.ndarray, groups: np.ndarray, levels=LEVELS) -> dict[int, float]:
    from synoforecast.lib.forecasting.intervals import conformal_halfwidths

    return conformal_halfwidths(scores, levels, groups)


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
    alignment: str = "selling"  # how a cut-off lines up with past quarters (QuarterCalendar.alignment)
    totals: tuple[str, ...] = ()  # the cohort's total series: weights and intervals apart from the parts


def _scale(inputs: CohortInputs, series_id: str, metric: str, before: list[dt.date], cache: dict) -> float:
    """The series' quarterly scale (MASE's, else its fallbacks) over the quarters before."""
    key = (series_id, metric, len(before))
    if key not in cache:
        from synoforecast.lib.forecasting.intervals import series_scale

        finals = [
            inputs.paths[(series_id, metric, q)][-1] if (series_id, metric, q) in inputs.paths else 0.0 for q in before
        ]
        cache[key] = series_scale(np.asarray(finals, dtype="float64"), 4) if finals else 1.0
    return cache[key]


def _point(
    inputs: CohortInputs,
    series_id: str,
    metric: str,
    quarter: dt.date,
    index: int,
    before: list[dt.date],
    pooled_cache: dict,
) -> dict | None:
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
            pooled_cache[key] = pooled_profile(
                inputs.paths, inputs.parts, metric, before[-PROFILE_QUARTERS:], cal.alignment(index, inputs.alignment)
            )
        p = profile_share(
            inputs.paths, series_id, metric, before, cal.alignment(index, inputs.alignment), pooled_cache[key]
        )
    stock = metric in inputs.stock_metrics
    e, naive = extrapolations(qtd, p, calendar, stock)
    return {
        "series_id": series_id,
        "metric": metric,
        "quarter_start": quarter,
        "week": cal.week(index),
        "level": "total" if series_id in inputs.totals else "parts",
        "cutoff_date": quarter + dt.timedelta(days=index),
        "elapsed_share": calendar,
        "elapsed_selling_share": sell,
        "qtd_actual": qtd,
        "profile_share": p,
        "extrapolated": e,
        "naive_extrapolated": naive,
        "forecast_start": float(forecast),
        "scale": _scale(inputs, series_id, metric, before, pooled_cache),
    }


REPLAY_SCHEMA = {
    "series_id": pl.String,
    "metric": pl.String,
    "quarter_start": pl.Date,
    "week": pl.Int32,
    "level": pl.String,
    "cutoff_date": pl.Date,
    "elapsed_share": pl.Float64,
    "elapsed_selling_share": pl.Float64,
    "qtd_actual": pl.Float64,
    "profile_share": pl.Float64,
    "extrapolated": pl.Float64,
    "naive_extrapolated": pl.Float64,
    "forecast_start": pl.Float64,
    "scale": pl.Float64,
    "actual": pl.Float64,
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


WEIGHT_KEYS = ("week", "metric", "level")
POOL_KEYS = ("week", "level")


WEEK_SPAN = 1  # weights of week w are learned on the replays of weeks w-1..w+1: steadier, barely biased
# (not for monthly data: its quarter-to-date only moves at month ends, so neighbouring weeks
# across a month end are different situations)


def _loss_sums(frame: pl.DataFrame, span: int) -> dict[tuple, tuple[list, np.ndarray, np.ndarray]]:
    """Per weight key (week, metric, level): the replayed quarters, each grid point's summed
    sMAPE per quarter over the rows of weeks within `span` (grid points x quarters), and the
    rows per quarter: every fold's weights from one evaluation of the grid."""
    out = {}
    for (metric, level), g in frame.group_by("metric", "level"):
        weeks = g["week"].to_numpy()
        quarters, inverse = np.unique(np.asarray(g["quarter_start"].to_list()), return_inverse=True)
        losses = grid_losses(
            *(
                g[c].fill_null(float("nan")).to_numpy()
                for c in ("actual", "extrapolated", "naive_extrapolated", "forecast_start")
            )
        )
        for week in np.unique(weeks):
            near = np.abs(weeks - week) <= span
            sums = np.zeros((len(WEIGHTS), len(quarters)))
            np.add.at(sums.T, inverse[near], losses[:, near].T)
            out[(int(week), metric, level)] = (
                list(quarters),
                sums,
                np.bincount(inverse[near], minlength=len(quarters)),
            )
    return out


def _weights(sums: dict, without: dt.date | None = None) -> dict[tuple, tuple[float, float]]:
    """The weights per key from :func:`_loss_sums`, leaving the quarter `without` out."""
    out = {}
    for key, (quarters, total, counts) in sums.items():
        loss, n = total.sum(axis=1), counts.sum()
        if without is not None and without in quarters:
            i = quarters.index(without)
            loss, n = loss - total[:, i], n - counts[i]
        out[key] = pick_weights(loss / n) if n > 0 else (0.0, 0.0)
    return out


def _apply(frame: pl.DataFrame, weights: dict[tuple, tuple[float, float]]) -> pl.DataFrame:
    keys = list(zip(*(frame[k].to_list() for k in WEIGHT_KEYS)))
    ab = np.array([weights.get(k, (0.0, 0.0)) for k in keys]).reshape(-1, 2)
    e = frame["extrapolated"].fill_null(float("nan")).to_numpy()
    a = np.where(np.isfinite(e), ab[:, 0], 0.0)
    yhat = combine(e, frame["naive_extrapolated"].to_numpy(), frame["forecast_start"].to_numpy(), a, ab[:, 1])
    # on the quarter's last day what is there is the quarter, whatever weights the replays chose
    yhat = np.where(frame["elapsed_share"].to_numpy() >= 1.0, frame["qtd_actual"].to_numpy(), yhat)
    return frame.with_columns(weight=pl.Series(a), weight_naive=pl.Series(ab[:, 1]), yhat=pl.Series(yhat))


def scored(frame: pl.DataFrame) -> pl.DataFrame:
    """Each replay's conformal score: its absolute error relative to the landing's level."""
    score = np.abs(frame["actual"].to_numpy() - frame["yhat"].to_numpy()) / interval_norm(
        frame["yhat"].to_numpy(), frame["scale"].to_numpy()
    )
    return frame.with_columns(score=pl.Series(score))


def week_span(alignment: str) -> int:
    return 0 if alignment == "month" else WEEK_SPAN


def cross_fitted(replayed: pl.DataFrame, span: int = WEEK_SPAN) -> pl.DataFrame:
    """The replays with each quarter's landing made by weights learned without that quarter
    (`weight` on E, `weight_naive` on N, `yhat`): the honest sample of the landing's error
    (score it with :func:`scored` once reconciled)."""
    if replayed.is_empty():
        return replayed.with_columns(
            weight=pl.lit(None, pl.Float64), weight_naive=pl.lit(None, pl.Float64), yhat=pl.lit(None, pl.Float64)
        )
    sums = _loss_sums(replayed, span)
    parts = [
        _apply(g, _weights(sums, without=quarter))
        for (quarter,), g in replayed.group_by(["quarter_start"], maintain_order=True)
    ]
    return pl.concat(parts)


def with_intervals(frame: pl.DataFrame, scores: pl.DataFrame, leave_quarter_out: bool) -> pl.DataFrame:
    """80/95% bounds around each row's `yhat` from the `scores` (:func:`scored`) of the same
    week and level (and, to score a replay honestly, of the other quarters only)."""
    lo = {lv: np.full(frame.height, np.nan) for lv in LEVELS}
    hi = {lv: np.full(frame.height, np.nan) for lv in LEVELS}
    pools = list(zip(*(frame[k].to_list() for k in POOL_KEYS)))
    quarters = frame["quarter_start"].to_list() if leave_quarter_out else [None] * frame.height
    point = frame["yhat"].to_numpy()
    norm = interval_norm(point, frame["scale"].to_numpy())
    cache: dict = {}
    for i in range(frame.height):
        key = (pools[i], quarters[i])
        if key not in cache:
            pool = scores.filter((pl.col("week") == pools[i][0]) & (pl.col("level") == pools[i][1]))
            if key[1] is not None:
                pool = pool.filter(pl.col("quarter_start") != key[1])
            cache[key] = half_widths(pool["score"].to_numpy(), np.asarray(pool["quarter_start"].to_list()))
        for lv in LEVELS:
            half = cache[key][lv] * norm[i]
            lo[lv][i], hi[lv][i] = point[i] - half, point[i] + half
    return frame.with_columns(
        **{f"yhat_lo_{lv}": pl.Series(lo[lv]) for lv in LEVELS}, **{f"yhat_hi_{lv}": pl.Series(hi[lv]) for lv in LEVELS}
    )


def land(inputs: CohortInputs, running: dt.date, cutoff: dt.date, replayed: pl.DataFrame) -> pl.DataFrame:
    """The landing point of every series at `cutoff` in the running quarter starting `running`,
    with the weights of the cut-off's week learned from all `replayed` quarters (intervals:
    :func:`with_intervals`, once reconciled)."""
    cal = QuarterCalendar.of(running)
    index = cal.index(cutoff)
    before = [q for q in inputs.complete if q < running]
    rows, cache = [], {}
    for series_id, metric in inputs.series:
        row = _point(inputs, series_id, metric, running, index, before, cache)
        if row is not None:
            rows.append(row)
    frame = pl.DataFrame(rows, schema={k: v for k, v in REPLAY_SCHEMA.items() if k != "actual"})
    if frame.is_empty():
        return frame
    return _apply(frame, _weights(_loss_sums(replayed, week_span(inputs.alignment))) if replayed.height else {})
