"""Interval and scale arithmetic shared by the forecasting engine and the landing: pure
numpy (and scipy's t quantile), so the landing never loads statsforecast to use it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .metrics import mase_scale

TAIL_SCORES = 2  # below 2 expected (effective) scores beyond a level's quantile, the t bound is its floor


def series_scale(y: np.ndarray, season_length: int) -> float:
    """The scale backtest errors are measured in: MASE's (:func:`.metrics.mase_scale`), else the
    lag-1 naive MAE, else the mean absolute level, else 1.0 (the engine needs a scale for every
    series; MASE in the evaluation gets none where no seasonal scale exists)."""
    scale = mase_scale(y, season_length)
    if scale is None:
        y = np.asarray(y, dtype="float64")
        lag1 = float(np.mean(np.abs(np.diff(y)))) if len(y) > 1 else 0.0
        scale = lag1 if lag1 > 0 else (float(np.mean(np.abs(y))) if len(y) else 0.0)
    return scale if np.isfinite(scale) and scale > 0 else 1.0


def interval_norm(forecast: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """What a conformal score is measured against: the forecast's own level, or the series'
    MASE scale where the forecast is near zero.  Sales errors grow with the level: scores in
    units of a fixed in-sample scale made the last quarters (at the highest level) look
    calmer than the next one, and 80% intervals covered 66-72% on the growing demo sample."""
    return np.maximum(np.abs(np.asarray(forecast, dtype="float64")), np.asarray(scale, dtype="float64"))


def effective_pool_size(scores: np.ndarray, groups: np.ndarray | None) -> float:
    """How many independent scores a pool is worth: ``m / (1 + (k - 1) * icc)`` (Kish's design
    effect), ``icc`` the intra-class correlation of the scores within a backtest window and
    ``k`` the series per window.  A cohort's series share their quarters' shocks (a strong Q4
    lifts every tier), so six windows of 16 series are closer to 6 draws than to 96; public
    data sets of unrelated series keep ``icc`` near 0 and their full size."""
    s = np.asarray(scores, dtype="float64")
    keep = np.isfinite(s)
    m = int(keep.sum())
    if groups is None or m < 3:
        return float(m)
    s, g = s[keep], np.asarray(groups)[keep]
    codes, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    n_groups = len(codes)
    if n_groups == 1:  # one window: nothing tells its shared shock from the series' own noise
        return 1.0
    if n_groups == m:
        return float(m)
    means = np.bincount(inverse, weights=s) / counts
    grand = s.mean()
    msb = float(np.sum(counts * (means - grand) ** 2) / (n_groups - 1))
    msw = float(np.sum((s - means[inverse]) ** 2) / (m - n_groups))
    k0 = (m - np.sum(counts**2) / m) / (n_groups - 1)
    icc = (msb - msw) / (msb + (k0 - 1) * msw) if msb + (k0 - 1) * msw > 0 else 0.0
    icc = min(max(icc, 0.0), 1.0)
    return float(m / (1 + (m / n_groups - 1) * icc))


def conformal_halfwidths(
    scores: np.ndarray, levels: Sequence[int], groups: np.ndarray | None = None
) -> dict[int, float]:
    """Scaled half-width per level from absolute scaled errors: the split-conformal quantile
    (the ``ceil((m+1)L/100)``-th of ``m`` scores) when the pool is large enough for it, and
    never less than a Student-t bound (``t_df`` quantile x RMS of the scores, ``df`` the pool's
    effective size, see :func:`effective_pool_size` with ``groups`` = each score's backtest
    window) while the pool is small for the level: fewer than :data:`TAIL_SCORES` effective
    scores expected beyond it (under 10 at 80%, under 40 at 95%).  With ``m``
    scores the conformal rank exceeds ``m`` below ``m = 19`` at 95%: clipping it at the largest
    score seen made the 80% and 95% bounds equal and too narrow.  Levels are strictly nested."""
    from scipy.stats import t as student_t

    s = np.asarray(scores, dtype="float64")
    finite = np.isfinite(s)
    g = None if groups is None else np.asarray(groups)[finite]
    s = s[finite]
    m = len(s)
    if m == 0:
        return {lv: float("nan") for lv in levels}
    m_eff = max(1.0, effective_pool_size(s, g))
    ordered = np.sort(s)
    rms = float(np.sqrt(np.mean(s**2)))
    out: dict[int, float] = {}
    previous, prev_param = 0.0, 0.0
    for lv in sorted(levels):
        param = float(student_t.ppf(0.5 + lv / 200.0, df=m_eff)) * rms
        rank = math.ceil((m + 1) * lv / 100.0)
        empirical = float(ordered[rank - 1]) if rank <= m else None
        if empirical is None:
            q = param
        elif m_eff < TAIL_SCORES / (1 - lv / 100.0):
            q = max(empirical, param)
        else:
            q = empirical
        if q <= previous:  # ties in the scores: keep the wider level wider, in the t bound's proportion
            q = previous * (param / prev_param if prev_param > 0 else 1.0 + 1e-6)
            q = q if q > previous else previous + 1e-9
        out[lv] = q
        previous, prev_param = q, param
    return out
