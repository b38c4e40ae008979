"""Forecast accuracy metrics (pure numpy).

Both take array-likes of equal length.  Pairs where either value is missing (NaN or
None) are ignored; the result is a plain ``float`` percentage, or ``None`` when no
pair is left to score.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mape", "smape"]


def _pairs(actual, forecast) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype="float64").ravel()
    f = np.asarray(forecast, dtype="float64").ravel()
    if a.shape != f.shape:
        raise ValueError(
            f"actual and forecast must have the same length ({a.size} != {f.size})"
        )
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
