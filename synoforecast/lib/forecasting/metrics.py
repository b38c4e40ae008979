"""Forecast accuracy metrics (pure numpy).

Both take array-likes of equal length.  Pairs where either value is missing (NaN or
None) are ignored; the result is a plain ``float`` percentage, or ``None`` when no
pair is left to score.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MASE_MIN_DIFFERENCES", "bias", "coverage", "mape", "mase", "mase_scale", "smape"]


def _pairs(actual, forecast) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype="float64").ravel()
    f = np.asarray(forecast, dtype="float64").ravel()
    if a.shape != f.shape:
        raise ValueError(f"actual and forecast must have the same length ({a.size} != {f.size})")
    keep = ~(np.isnan(a) | np.isnan(f))
    return a[keep], f[keep]


def mape(actual, forecast) -> float | None:
    """Mean absolute percentage error, 0-100+ scale: mean(|F - A| / |A|) * 100.

    Pairs with ``actual == 0`` are ignored (undefined); None if nothing is left.
    """
    a, f = _pairs(actual, forecast)
    keep = a != 0
    if not keep.any():
        return None
    a, f = a[keep], f[keep]
    return float(np.mean(np.abs(f - a) / np.abs(a)) * 100.0)


def smape(actual, forecast) -> float | None:
    """Symmetric MAPE, 0-200 scale: mean(2|F - A| / (|A| + |F|)) * 100.

    A pair with ``|A| + |F| == 0`` (both zero) counts as zero error.  None if empty.
    """
    a, f = _pairs(actual, forecast)
    if a.size == 0:
        return None
    denom = np.abs(a) + np.abs(f)
    num = 2.0 * np.abs(f - a)
    err = np.divide(num, denom, out=np.zeros_like(num), where=denom != 0)
    return float(np.mean(err) * 100.0)


def mase(actual, forecast, scale) -> float | None:
    """Mean absolute scaled error: mean(|F - A| / scale).

    ``scale`` is a scalar or one value per pair: the in-sample MAE of the seasonal
    naive forecast of that series (see :func:`.intervals.series_scale`), so MASE < 1
    beats the seasonal naive's in-sample one-step error.  Pairs with a non-positive or
    missing scale are ignored; None if nothing is left.
    """
    a, f = np.asarray(actual, dtype="float64").ravel(), np.asarray(forecast, dtype="float64").ravel()
    s = np.broadcast_to(np.asarray(scale, dtype="float64"), a.shape)
    keep = ~(np.isnan(a) | np.isnan(f) | np.isnan(s)) & (s > 0)
    if not keep.any():
        return None
    return float(np.mean(np.abs(f[keep] - a[keep]) / s[keep]))


def mase_scale(history, season_length: int, min_differences: int = 1) -> float | None:
    """MASE's denominator for a series: the in-sample MAE of the seasonal naive forecast.
    None where there is no such scale: fewer than `min_differences` seasonal differences
    in the history, or all of them zero. Scoring asks for MASE_MIN_DIFFERENCES: a scale
    resting on one difference made a MASE of 245 when two early quarters happened to be
    alike (2022-Q2 in the demo); the interval scaling (intervals.series_scale) takes one."""
    y = np.asarray(history, dtype="float64")
    y = y[~np.isnan(y)]
    if len(y) - season_length < max(min_differences, 1):
        return None
    scale = float(np.mean(np.abs(y[season_length:] - y[:-season_length])))
    return scale if np.isfinite(scale) and scale > 0 else None


MASE_MIN_DIFFERENCES = 4  # in-sample seasonal differences a reported MASE's scale rests on


def bias(actual, forecast) -> float | None:
    """Relative bias in percent: sum(F - A) / sum(|A|) * 100 (positive = over-forecast)."""
    a, f = _pairs(actual, forecast)
    denom = np.sum(np.abs(a))
    if a.size == 0 or denom == 0:
        return None
    return float(np.sum(f - a) / denom * 100.0)


def coverage(actual, lower, upper) -> float | None:
    """Share (0-100) of actuals inside [lower, upper]; pairs with a missing bound are ignored."""
    a = np.asarray(actual, dtype="float64").ravel()
    lo = np.asarray(lower, dtype="float64").ravel()
    hi = np.asarray(upper, dtype="float64").ravel()
    keep = ~(np.isnan(a) | np.isnan(lo) | np.isnan(hi))
    if not keep.any():
        return None
    return float(np.mean((a[keep] >= lo[keep]) & (a[keep] <= hi[keep])) * 100.0)
