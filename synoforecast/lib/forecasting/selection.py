"""Forecast combination weighted by pooled, shrunken backtest errors; conformal intervals.

Pure pandas/numpy + statsforecast; no Dagster, no I/O.

How a series is forecast (``n`` = observations, ``s`` = season length, ``W`` = windows):

* **Band.**  Each series falls in one band, which fixes its candidate models:

  ==================  ==============================================  ==========================
  band                condition                                       candidates
  ==================  ==============================================  ==========================
  ``intermittent``    >= 30% zeros and ``n >= 6``                     Naive, CrostonOptimized,
                                                                      ADIDA, IMAPA
  ``full``            ``n >= 2s + 4``                                 SeasonalNaive, Naive,
                                                                      AutoETS, AutoTheta,
                                                                      AutoCES, (AutoARIMA)
  ``seasonal_short``  ``s + 1 <= n < 2s + 4``                         Naive, SeasonalNaive,
                                                                      RandomWalkWithDrift
  ``fallback``        anything shorter (new customers, 1-4 quarters)  :func:`short_history_forecast`
  ==================  ==============================================  ==========================

  AutoARIMA costs ~10x AutoETS, so it is only a candidate when the band holds at most
  ``arima_max_series`` series with ``n >= 4s`` (off by default).
* **Backtest.**  statsforecast ``cross_validation`` with ``h=1``, ``step_size=1`` and
  ``w = min(W, n_min - min_train)`` windows (at least 1): each candidate is refit at each of
  the last ``w`` origins and scored on the next quarter by its absolute error over the
  series' in-sample seasonal-naive MAE (the MASE scale).
* **Combination.**  A series' score per candidate is its mean scaled error over its windows
  shrunk toward the band's pooled mean (the pool weighs as ``shrinkage`` windows, default
  3; ``scope="cohort"``: the pooled mean alone).  The forecast is the combination of the
  candidates scoring within 1.5 x the best, weighted by the inverse squared score.  Why: picking one model per series by
  four noisy windows lost to a plain mean of AutoETS/AutoTheta on public quarterly data
  (Tourism, last 4 origins: selection 0.875 x seasonal naive's sMAPE, this combination
  0.765); the simple methods stay in the pool, so a series they suit leans on them.
* **Intervals (split conformal, cross-fitted).**  The score of a backtest window is the
  scaled error of the combination weighted *without* that window (leave-one-window-out), an
  honest sample of the published forecast's error.  Scores are pooled over the band; the
  ``L``% half-width is the finite-sample conformal quantile times the series' scale, times
  ``sqrt(step)`` for steps beyond the first; a pool too small for a level (fewer than 19
  scores at 95%), and any pool with fewer than 2 effective scores expected beyond the level
  (under 10 at 80%, 40 at 95%), is never narrower than a Student-t bound on the scores (:func:`conformal_halfwidths`).  Each candidate's own
  interval (``candidates``) uses that candidate's pooled errors.  Intervals are symmetric
  and strictly nested (95% wider than 80%).
* **Scale out.**  When a dask.distributed cluster is configured (a current ``Client``
  or ``SYNOFORECAST_DASK_SCHEDULER``), the backtest and forecast run on it through
  statsforecast's distributed (fugue) backend; results match the local run to ~1e-7.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import (
    ADIDA,
    IMAPA,
    AutoARIMA,
    AutoCES,
    AutoETS,
    AutoTheta,
    CrostonOptimized,
    Naive,
    RandomWalkWithDrift,
    SeasonalNaive,
)

from .intervals import conformal_halfwidths, interval_norm, series_scale

__all__ = [
    "COMBINATION",
    "SelectionResult",
    "band_jobs",
    "band_of",
    "combination_weights",
    "crossfit_combination",
    "select_and_forecast",
    "short_history_forecast",
    "shrunken_scores",
]

COMBINATION = "Combination"
SHORT_SEASONAL = "Naive+SeasonalNaive"  # one season of history: both, equally weighted
INTERMITTENT_ZERO_SHARE = 0.3
DEFAULT_WINDOWS = 6  # where the history allows: 6 quarters of errors behind the weights and intervals
TRIM_RATIO = 1.5  # candidates scoring worse than 1.5 x the best get no weight
DEFAULT_SHRINKAGE = 3.0  # a series' own windows vs the pool: the pool counts as this many windows
DEFAULT_ARIMA_MAX_SERIES = 0  # AutoARIMA costs ~10x AutoETS: opt-in (arima_max_series=N)
SELECTION_ETS_MODEL = "ZZZ"  # searched without damped trends: half the cost, the same h=1 accuracy
# (M3 last 4 origins 4.984 vs 4.975 sMAPE, Tourism 0.7645 vs 0.7641 x snaive)


@dataclass
class SelectionResult:
    """forecast: engine output columns (+ ``band``); choices: one row per series with the
    chosen model, band, windows and each candidate's backtest MASE; backtest: the long
    backtest (unique_id, ds, cutoff, y, model, yhat)."""

    forecast: pd.DataFrame
    choices: pd.DataFrame
    backtest: pd.DataFrame
    quantiles: dict = field(default_factory=dict)  # band -> model (or "selected") -> level -> scaled half-width
    candidates: pd.DataFrame = field(default_factory=pd.DataFrame)  # every candidate's forecast + interval


def band_of(n: int, zero_share: float, season_length: int) -> str:
    s = season_length
    if n >= 6 and zero_share >= INTERMITTENT_ZERO_SHARE:
        return "intermittent"
    if n >= 2 * s + 4:
        return "full"
    if s > 1 and n >= s + 1:
        return "seasonal_short"
    return "fallback"


def _min_train(band: str, s: int) -> int:
    return {"full": 2 * s + 2, "seasonal_short": s, "intermittent": 4}[band]


def candidate_specs(band: str, s: int, use_arima: bool, ets_model: str) -> list[tuple[type, dict]]:
    """The band's statsforecast models as (class, keyword arguments), simplest first: the
    spec is also the models' identity in the one-step cache (:mod:`.rolling`)."""
    if band == "intermittent":
        return [(Naive, {}), (CrostonOptimized, {}), (ADIDA, {}), (IMAPA, {})]
    if band == "seasonal_short":
        return [(Naive, {}), (SeasonalNaive, {"season_length": s}), (RandomWalkWithDrift, {})]
    specs = [
        (SeasonalNaive, {"season_length": s}),
        (Naive, {}),
        (AutoETS, {"season_length": s, "model": ets_model if s > 1 else ets_model[:2] + "N", "damped": False}),
        (AutoTheta, {"season_length": s}),
        (AutoCES, {"season_length": s}),
    ]
    if use_arima:
        specs.append((AutoARIMA, {"season_length": s}))
    return specs


BACKTESTED_BANDS = ("full", "seasonal_short", "intermittent")


def series_bands(df: pd.DataFrame, season_length: int) -> tuple[pd.DataFrame, pd.Series]:
    """(per-series n, zero share and band; each row's band) of a prepared frame."""
    g = df.groupby("unique_id", sort=False)["y"]
    stats = pd.DataFrame({"n": g.size(), "zeros": g.apply(lambda v: float((v == 0).mean()))})
    stats["band"] = [band_of(int(n), z, season_length) for n, z in zip(stats["n"], stats["zeros"])]
    return stats, df["unique_id"].map(stats["band"])


def band_jobs(
    df: pd.DataFrame,
    season_length: int,
    windows: int = DEFAULT_WINDOWS,
    arima_max_series: int = DEFAULT_ARIMA_MAX_SERIES,
    ets_model: str = SELECTION_ETS_MODEL,
) -> list[tuple[pd.DataFrame, int, list[tuple[type, dict]]]]:
    """(band frame, windows, candidate specs) per backtested band of a prepared frame: the fits
    :func:`select_and_forecast` will ask for, for :meth:`.rolling.OneStepPredictions.prefetch`."""
    _, band_by_row = series_bands(df, season_length)
    jobs = []
    for band in BACKTESTED_BANDS:
        sub = df.loc[band_by_row == band]
        if not sub.empty:
            w, use_arima = band_windows(sub, band, season_length, windows, arima_max_series)
            jobs.append((sub, w, candidate_specs(band, season_length, use_arima, ets_model)))
    return jobs


def band_windows(df: pd.DataFrame, band: str, s: int, windows: int, arima_max_series: int) -> tuple[int, bool]:
    """(backtest windows, whether AutoARIMA is a candidate) for a band's series: as many
    windows as the band's shortest series allows beyond its minimum training length."""
    sizes = df.groupby("unique_id").size()
    w = max(1, min(windows, int(sizes.min()) - _min_train(band, s)))
    use_arima = band == "full" and 0 < len(sizes) <= arima_max_series and int((sizes >= 4 * s).sum()) == len(sizes)
    return w, use_arima


def shrunken_scores(
    err: np.ndarray, inverse: np.ndarray, n_series: int, k: float, leave_out: np.ndarray | None = None
) -> np.ndarray:
    """Per series x candidate: the mean scaled backtest error, shrunk toward the band's
    pooled mean with the weight of ``k`` windows (``k=inf``: the pooled mean alone).

    A series' own four windows are a noisy score (on Tourism, picking per series by them
    loses to every plain combination); the pool is what most series have in common.
    ``leave_out`` (a row mask) drops rows from both the series and the pooled means."""
    valid = np.isfinite(err)
    if leave_out is not None:
        valid = valid & ~leave_out[:, None]
    ez = np.where(valid, err, 0.0)
    tot = np.zeros((n_series, err.shape[1]))
    cnt = np.zeros((n_series, err.shape[1]))
    np.add.at(tot, inverse, ez)
    np.add.at(cnt, inverse, valid)
    pooled = np.divide(
        ez.sum(axis=0), valid.sum(axis=0), out=np.full(err.shape[1], np.nan), where=valid.sum(axis=0) > 0
    )
    if not np.isfinite(k):
        return np.broadcast_to(pooled, tot.shape).copy()
    return np.divide(tot + k * pooled, cnt + k, out=np.full(tot.shape, np.nan), where=(cnt + k) > 0)


def combination_weights(score: np.ndarray, trim: float = TRIM_RATIO) -> np.ndarray:
    """Inverse squared score weights per row over the candidates scoring within ``trim`` x the
    row's best (rows sum to 1; a candidate without a score gets 0; a row without any score
    weighs its candidates equally).  Trimming keeps a clearly worse model out: a seasonal
    series' naive forecast, however small its inverse-squared weight, dragged a quarter-end
    peak into the next quarter."""
    s = np.where(np.isfinite(score), np.maximum(score, 1e-9), np.nan)
    best = np.nanmin(np.where(np.isfinite(s), s, np.inf), axis=1, keepdims=True)
    inv = np.where(np.isfinite(s) & (s <= best * trim), 1.0 / s**2, 0.0)
    total = inv.sum(axis=1, keepdims=True)
    equal = np.full_like(inv, 1.0 / max(inv.shape[1], 1))
    return np.divide(inv, total, out=equal, where=total > 0)


def crossfit_combination(
    err: np.ndarray, preds: np.ndarray, inverse: np.ndarray, n_series: int, k: float
) -> np.ndarray:
    """Each backtest row's forecast by the combination weighted *without* that row's window:
    an honest sample of the published combination's error (the weights that saw a window
    fit it better than they will fit the next quarter)."""
    n, m = err.shape
    out = np.full(n, np.nan)
    if n == 0:
        return out
    valid = np.isfinite(err)
    ez = np.where(valid, err, 0.0)
    tot = np.zeros((n_series, m))
    cnt = np.zeros((n_series, m))
    np.add.at(tot, inverse, ez)
    np.add.at(cnt, inverse, valid)
    ptot, pcnt = ez.sum(axis=0), valid.sum(axis=0)
    p_loo = np.divide(
        ptot[None, :] - ez, pcnt[None, :] - valid, out=np.full((n, m), np.nan), where=(pcnt[None, :] - valid) > 0
    )
    if np.isfinite(k):
        own_tot, own_cnt = tot[inverse] - ez, cnt[inverse] - valid
        s = np.divide(
            own_tot + k * np.nan_to_num(p_loo),
            own_cnt + k * np.isfinite(p_loo),
            out=np.full((n, m), np.nan),
            where=(own_cnt + k * np.isfinite(p_loo)) > 0,
        )
    else:
        s = p_loo
    w = combination_weights(s)
    return np.nansum(w * preds, axis=1)


def _run_band(
    df: pd.DataFrame,
    band: str,
    *,
    horizon: int,
    s: int,
    freq: str,
    levels: list[int],
    windows: int,
    scope: str,
    arima_max_series: int,
    n_jobs: int,
    ets_model: str,
    shrinkage: float = DEFAULT_SHRINKAGE,
    dask_partitions: int = 0,
    one_step=None,
):
    w, use_arima = band_windows(df, band, s, windows, arima_max_series)
    specs = candidate_specs(band, s, use_arima, ets_model)
    if one_step is not None and horizon == 1:  # the rolling pass: every fit looked up, made once per origin
        cv, fc = one_step.frames(df, w, specs, freq)
    else:
        sf = StatsForecast(models=[cls(**kw) for cls, kw in specs], freq=freq, n_jobs=n_jobs, fallback_model=Naive())
        with warnings.catch_warnings():  # ETS/ARIMA divide-by-zero notes on tiny or perfect fits
            warnings.simplefilter("ignore", RuntimeWarning)
            if dask_partitions:
                cv, fc = _run_on_dask(sf, df, w, horizon, dask_partitions)
            else:
                cv = sf.cross_validation(df=df, h=1, n_windows=w, step_size=1)
                fc = sf.forecast(df=df, h=horizon)
    return _combine_band(df, band, cv, fc, w, s=s, levels=levels, scope=scope, shrinkage=shrinkage)


def _combine_band(
    df: pd.DataFrame,
    band: str,
    cv: pd.DataFrame,
    fc: pd.DataFrame,
    w: int,
    *,
    s: int,
    levels: list[int],
    scope: str,
    shrinkage: float,
):
    """Weights, combined forecast and conformal intervals from a band's backtest (`cv`: one row
    per series and origin with each candidate's prediction) and its candidates' forecasts (`fc`)."""
    names = [c for c in fc.columns if c not in ("unique_id", "ds")]
    cv["unique_id"] = cv["unique_id"].astype(str)
    fc["unique_id"] = fc["unique_id"].astype(str)

    scales = df.groupby("unique_id", sort=False)["y"].apply(lambda v: series_scale(v.to_numpy(), s))
    series_ids = cv["unique_id"].to_numpy()
    y = cv["y"].to_numpy()
    preds = cv[names].to_numpy(dtype="float64")
    err = np.abs(y[:, None] - preds) / cv["unique_id"].map(scales).to_numpy()[:, None]
    k = np.inf if scope == "cohort" else shrinkage

    # combination weights per series, from every backtest window of the band
    codes, inverse = np.unique(series_ids, return_inverse=True)
    score = shrunken_scores(err, inverse, len(codes), k)
    weights = pd.DataFrame(combination_weights(score), index=codes, columns=names)
    per_series = pd.DataFrame(
        np.vstack([np.nanmean(err[inverse == i], axis=0) for i in range(len(codes))])
        if len(codes)
        else np.empty((0, len(names))),
        index=codes,
        columns=names,
    )

    # conformal scores: each window's error of the combination weighted without that window
    loo = crossfit_combination(err, preds, inverse, len(codes), k)
    cv_scale = cv["unique_id"].map(scales).to_numpy()
    scores = np.abs(y - loo) / interval_norm(loo, cv_scale)
    window = cv["cutoff"].to_numpy()
    quant_selected = conformal_halfwidths(scores, levels, window)
    quant = {
        m: conformal_halfwidths(np.abs(y - preds[:, i]) / interval_norm(preds[:, i], cv_scale), levels, window)
        for i, m in enumerate(names)
    }

    uid = fc["unique_id"].to_numpy()
    wf = weights.reindex(uid).to_numpy()
    yhat = np.nansum(fc[names].to_numpy(dtype="float64") * wf, axis=1)
    step = fc.groupby("unique_id", sort=False).cumcount().to_numpy() + 1
    sc = pd.Series(uid).map(scales).to_numpy()
    label = COMBINATION if len(names) > 1 else names[0]
    out = pd.DataFrame({"unique_id": uid, "ds": fc["ds"].to_numpy(), "model": label, "yhat": yhat})
    for lv in levels:
        half = quant_selected[lv] * interval_norm(yhat, sc) * np.sqrt(step)
        out[f"yhat_lo_{lv}"] = yhat - half
        out[f"yhat_hi_{lv}"] = yhat + half
    out["band"] = band

    cand = fc.melt(id_vars=["unique_id", "ds"], value_vars=names, var_name="model", value_name="yhat")
    cand_sc = cand["unique_id"].map(scales).to_numpy()
    cand_step = np.tile(step, len(names))
    for lv in levels:
        half = (
            cand["model"].map({m: quant[m][lv] for m in names}).to_numpy()
            * interval_norm(cand["yhat"].to_numpy(), cand_sc)
            * np.sqrt(cand_step)
        )
        cand[f"yhat_lo_{lv}"] = cand["yhat"] - half
        cand[f"yhat_hi_{lv}"] = cand["yhat"] + half
    cand["band"] = band

    choices = per_series.rename(columns=lambda m: f"mase_{m}").join(weights.rename(columns=lambda m: f"weight_{m}"))
    choices.insert(0, "model", label)
    choices.insert(1, "band", band)
    choices.insert(2, "windows", w)
    choices.insert(3, "scale", scales.reindex(choices.index))
    choices = choices.rename_axis("unique_id").reset_index()

    bt = cv.melt(id_vars=["unique_id", "ds", "cutoff", "y"], value_vars=names, var_name="model", value_name="yhat")
    for lv in levels:
        q = bt["model"].map({m: quant[m][lv] for m in names}).to_numpy()
        half = q * interval_norm(bt["yhat"].to_numpy(), bt["unique_id"].map(scales).to_numpy())
        bt[f"yhat_lo_{lv}"] = bt["yhat"] - half
        bt[f"yhat_hi_{lv}"] = bt["yhat"] + half
    bt["band"] = band
    return out, choices, bt, {**quant, "selected": quant_selected}, cand


def short_history_forecast(
    df: pd.DataFrame, *, horizon: int, season_length: int, levels: Sequence[int], freq: str
) -> pd.DataFrame:
    """The ``fallback`` band (at most one season of history: too short to backtest): naive, and
    once a full season exists (``n == s``) the equal-weight mean of naive and seasonal naive:
    with no backtest to weigh them, the combination's rule for a series without scores (a
    seasonal tier and a growing C2 service look alike after four quarters; either model
    alone loses badly on the other).

    Intervals: the quarter-on-quarter changes of every series in the band (a cohort's new
    customers, or all its series in its first year), relative to the level they started
    from, pooled as conformal scores (:func:`conformal_halfwidths`: with a handful of changes
    that is the Student-t bound at the pool's effective size, wide as it should be), times
    the forecast's level and ``sqrt(step)``.  A band with no change at all (single quarters
    only) gets no interval (NaN)."""
    frames = {uid: g["y"].to_numpy(dtype="float64") for uid, g in df.groupby("unique_id", sort=False)}
    last_ds = df.groupby("unique_id", sort=False)["ds"].max()
    changes, when = [], []
    for uid, y in frames.items():
        if len(y) >= 2:
            ds = df.loc[df["unique_id"] == uid, "ds"].to_numpy()[1:]
            changes.append(np.abs(np.diff(y)) / interval_norm(y[:-1], np.full(len(y) - 1, np.mean(np.abs(y)) or 1.0)))
            when.append(ds)
    q = (
        conformal_halfwidths(np.concatenate(changes), levels, np.concatenate(when))
        if changes
        else {lv: float("nan") for lv in levels}
    )
    rows = []
    for uid, y in frames.items():
        n = len(y)
        seasonal = season_length > 1 and n >= season_length
        level = np.mean(np.abs(y)) or 1.0
        future = pd.date_range(last_ds[uid], periods=horizon + 1, freq=freq)[1:]
        for step, ds in enumerate(future, start=1):
            yhat = (y[n - season_length + (step - 1) % season_length] + y[-1]) / 2 if seasonal else y[-1]
            row = {"unique_id": uid, "ds": ds, "model": SHORT_SEASONAL if seasonal else "Naive", "yhat": yhat}
            for lv in levels:
                half = q[lv] * max(abs(yhat), level) * math.sqrt(step)
                row[f"yhat_lo_{lv}"], row[f"yhat_hi_{lv}"] = yhat - half, yhat + half
            rows.append(row)
    return pd.DataFrame(rows)


def _run_on_dask(sf: StatsForecast, df: pd.DataFrame, w: int, horizon: int, partitions: int):
    """statsforecast's distributed backend (fugue) on the current dask.distributed Client."""
    import dask.dataframe as dd

    ddf = dd.from_pandas(df, npartitions=max(1, partitions))
    cv = sf.cross_validation(df=ddf, h=1, n_windows=w, step_size=1).compute()
    fc = sf.forecast(df=ddf, h=horizon).compute()
    for frame in (cv, fc):
        frame["unique_id"] = frame["unique_id"].astype(str)
        frame["ds"] = pd.to_datetime(frame["ds"])
    cv["cutoff"] = pd.to_datetime(cv["cutoff"])
    cv = cv.sort_values(["unique_id", "cutoff", "ds"]).reset_index(drop=True)
    fc = fc.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    return cv, fc


def dask_client():
    """A dask.distributed Client when one is configured: the current client in this
    process, else SYNOFORECAST_DASK_SCHEDULER (e.g. ``tcp://scheduler:8786``); None otherwise."""
    import os

    address = os.environ.get("SYNOFORECAST_DASK_SCHEDULER")
    try:
        from distributed import Client, default_client
    except ImportError:
        if address:
            raise RuntimeError("SYNOFORECAST_DASK_SCHEDULER is set but dask[distributed] is not installed") from None
        return None
    try:
        return default_client()
    except ValueError:
        pass
    return Client(address) if address else None


def select_and_forecast(
    df: pd.DataFrame,
    *,
    horizon: int,
    season_length: int,
    levels: Sequence[int],
    freq: str,
    windows: int = DEFAULT_WINDOWS,
    scope: str = "series",
    arima_max_series: int = DEFAULT_ARIMA_MAX_SERIES,
    n_jobs: int = 1,
    ets_model: str = SELECTION_ETS_MODEL,
    fallback=None,
    distributed: bool | None = None,
    one_step=None,
) -> SelectionResult:
    """Combined forecasts on a prepared frame (unique_id str, ds, y float; sorted, no NaN).

    ``fallback(frame) -> forecast frame`` forecasts the ``fallback`` band (the
    history-length rule); its rows keep that rule's ``model`` label.  ``one_step`` (a
    :class:`.rolling.OneStepPredictions`) supplies every candidate fit of an h=1 run from its
    content-addressed store instead of refitting (the rolling pass over many as-of quarters).
    """
    if scope not in ("series", "cohort"):
        raise ValueError(f"scope must be 'series' or 'cohort', got {scope!r}")
    dask_partitions = 0
    if distributed is not False and one_step is None:  # the rolling pass fits locally, from its store
        client = dask_client()
        if client is not None:
            dask_partitions = max(1, len(client.scheduler_info().get("workers", {})) * 2)
        elif distributed:
            raise RuntimeError("distributed=True but no dask cluster is configured")
    levels = list(levels)
    stats, band_by_row = series_bands(df, season_length)
    parts, choices, bts, quants, cands = [], [], [], {}, []
    for band in BACKTESTED_BANDS:
        sub = df.loc[band_by_row == band]
        if sub.empty:
            continue
        out, ch, bt, q, cd = _run_band(
            sub,
            band,
            horizon=horizon,
            s=season_length,
            freq=freq,
            levels=levels,
            windows=windows,
            scope=scope,
            arima_max_series=arima_max_series,
            n_jobs=n_jobs,
            ets_model=ets_model,
            dask_partitions=dask_partitions,
            one_step=one_step,
        )
        parts.append(out)
        choices.append(ch)
        bts.append(bt)
        quants[band] = q
        cands.append(cd)
    short = df.loc[band_by_row == "fallback"]
    if not short.empty:
        if fallback is None:
            raise ValueError("short series need a fallback forecaster")
        fb = fallback(short).copy()
        fb["band"] = "fallback"
        parts.append(fb)
        first = fb.drop_duplicates("unique_id")
        choices.append(
            pd.DataFrame(
                {
                    "unique_id": first["unique_id"].to_numpy(),
                    "model": first["model"].to_numpy(),
                    "band": "fallback",
                    "windows": 0,
                }
            )
        )
    forecast = (
        pd.concat(parts, ignore_index=True).sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    )
    choice = pd.concat(choices, ignore_index=True).sort_values("unique_id").reset_index(drop=True)
    choice = choice.merge(
        stats[["n"]].rename(columns={"n": "history_quarters"}), left_on="unique_id", right_index=True, how="left"
    )
    backtest = (
        pd.concat(bts, ignore_index=True)
        if bts
        else pd.DataFrame(columns=["unique_id", "ds", "cutoff", "y", "model", "yhat"])
    )
    candidates = (
        pd.concat(cands, ignore_index=True) if cands else pd.DataFrame(columns=["unique_id", "ds", "model", "yhat"])
    )
    return SelectionResult(
        forecast=forecast, choices=choice, backtest=backtest, quantiles=quants, candidates=candidates
    )
