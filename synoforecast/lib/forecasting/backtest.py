"""Rolling-origin backtest of the whole engine (selection included) and its scorecard.

At each of the last ``windows`` origins the engine sees only the history up to that
origin (so selection itself is nested inside the backtest: no look-ahead), forecasts
``h=1``, and every candidate plus the selected forecast is scored against the actual.
Seasonal naive (``y[t+1-s]``) is always scored as the benchmark, whatever the band.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .engine import DEFAULT_LEVELS, _normalise_levels, _positive_int, _prepare, forecast_selected, infer_freq
from .intervals import series_scale
from .metrics import bias, coverage, mape, mase, smape

__all__ = ["SEASONAL_NAIVE_BENCHMARK", "SELECTED", "rolling_backtest", "scorecard"]

SELECTED = "selected"
SEASONAL_NAIVE_BENCHMARK = "seasonal_naive_benchmark"


def rolling_backtest(
    history: pd.DataFrame,
    windows: int = 4,
    season_length: int = 4,
    levels: Sequence[int] = DEFAULT_LEVELS,
    freq: str | None = None,
    *,
    inner_windows: int | None = None,
    scope: str = "series",
    n_jobs: int = 1,
    one_step=None,
) -> pd.DataFrame:
    """Long frame: unique_id, origin, ds, y, model, yhat, yhat_lo/hi_<L>, scale, band.

    ``model`` is each candidate's name, ``selected`` for the engine's output and
    ``seasonal_naive_benchmark``.  Series need at least 2 points before an origin.
    ``one_step`` (a :class:`.rolling.OneStepPredictions`): the origins share their fits, as
    the forecast assets' rolling pass does; the results are the same.
    """
    windows = _positive_int(windows, "windows")
    lv = _normalise_levels(levels)
    df = _prepare(history)
    if freq is None:
        freq = infer_freq(df)
    df["pos"] = df.groupby("unique_id").cumcount()
    df["n"] = df.groupby("unique_id")["y"].transform("size")
    rows = []
    for k in range(windows, 0, -1):
        train = df.loc[df["pos"] < df["n"] - k, ["unique_id", "ds", "y"]]
        test = df.loc[df["pos"] == df["n"] - k, ["unique_id", "ds", "y"]]
        counts = train.groupby("unique_id").size()
        train = train.loc[train["unique_id"].map(counts) >= 2]
        if train.empty:
            continue
        res = forecast_selected(
            train.reset_index(drop=True),
            horizon=1,
            season_length=season_length,
            levels=lv,
            freq=freq,
            windows=inner_windows,
            scope=scope,
            n_jobs=n_jobs,
            one_step=one_step,
            _prepared=True,
        )
        scales = train.groupby("unique_id")["y"].apply(lambda v: series_scale(v.to_numpy(), season_length))
        origin = train.groupby("unique_id")["ds"].max()
        sel = res.forecast.assign(model=SELECTED)
        cand = res.candidates
        snaive = train.groupby("unique_id")["y"].apply(
            lambda v: v.iloc[-season_length] if len(v) >= season_length else v.iloc[-1]
        )
        bench = pd.DataFrame({"unique_id": snaive.index, "model": SEASONAL_NAIVE_BENCHMARK, "yhat": snaive.to_numpy()})
        bench = bench.merge(test[["unique_id", "ds"]], on="unique_id")
        part = pd.concat([sel, cand, bench], ignore_index=True)
        part = part.merge(test, on=["unique_id", "ds"], how="inner")
        part["origin"] = part["unique_id"].map(origin)
        part["scale"] = part["unique_id"].map(scales)
        part["band"] = part["unique_id"].map(res.forecast.drop_duplicates("unique_id").set_index("unique_id")["band"])
        rows.append(part)
    cols = (
        ["unique_id", "origin", "ds", "y", "model", "yhat"]
        + [f"yhat_{s}_{v}" for v in lv for s in ("lo", "hi")]
        + ["scale", "band"]
    )
    if not rows:
        return pd.DataFrame(columns=cols)
    out = pd.concat(rows, ignore_index=True)
    for c in cols:
        if c not in out.columns:
            out[c] = np.nan
    return out[cols].sort_values(["model", "unique_id", "ds"]).reset_index(drop=True)


def scorecard(bt: pd.DataFrame, levels: Sequence[int] = DEFAULT_LEVELS) -> pd.DataFrame:
    """One row per model: forecasts scored, sMAPE, MAPE, MASE, bias and coverage per level.

    A candidate only exists for series in its band, so compare candidates on the
    ``series`` they cover; ``selected`` and the benchmark cover every series."""
    out = []
    for model, g in bt.groupby("model", sort=False):
        row = {
            "model": model,
            "forecasts": len(g),
            "series": g["unique_id"].nunique(),
            "smape": smape(g["y"], g["yhat"]),
            "mape": mape(g["y"], g["yhat"]),
            "mase": mase(g["y"], g["yhat"], g["scale"]),
            "bias": bias(g["y"], g["yhat"]),
        }
        for lv in _normalise_levels(levels):
            lo, hi = f"yhat_lo_{lv}", f"yhat_hi_{lv}"
            row[f"coverage_{lv}"] = coverage(g["y"], g[lo], g[hi]) if lo in g else None
        out.append(row)
    card = pd.DataFrame(out)
    order = {SELECTED: 0, SEASONAL_NAIVE_BENCHMARK: 1}
    return card.sort_values("model", key=lambda s: s.map(lambda m: (order.get(m, 2), m))).reset_index(drop=True)
