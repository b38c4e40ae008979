"""Model selection by rolling-origin backtest, an ensemble candidate and conformal intervals.

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
                                                                      (AutoARIMA), Ensemble
  ``seasonal_short``  ``s + 3 <= n < 2s + 4``                         Naive, SeasonalNaive
  ``fallback``        anything shorter (new customers, 1-6 quarters)  length rule of
                                                                      :func:`engine.forecast_frame`
  ==================  ==============================================  ==========================

  AutoARIMA costs ~10x AutoETS, so it is only a candidate when the band holds at most
  ``arima_max_series`` series with ``n >= 4s`` (it is off for the 10k-series scale).
* **Backtest.**  statsforecast ``cross_validation`` with ``h=1``, ``step_size=1`` and
  ``w = min(W, n_min - min_train)`` windows (at least 2), i.e. each candidate is refit
  at each of the last ``w`` origins and scored on the next quarter.
* **Ensemble.**  The mean of the band's ``Auto*`` candidates (``full`` band only).
* **Selection.**  ``scope="series"``: each series takes the candidate with the lowest
  mean absolute scaled error over its windows; ``scope="cohort"``: one candidate for
  the whole band, the lowest mean sMAPE.  Ties go to the simpler model (listed first).
* **Scale out.**  When a dask.distributed cluster is configured (a current ``Client``
  or ``SYNOFORECAST_DASK_SCHEDULER``), the backtest and forecast run on it through
  statsforecast's distributed (fugue) backend; results match the local run to ~1e-7 (float noise).
* **Intervals (split conformal, cross-fitted selection).**  The score of a backtest
  window is the absolute error, divided by the series' in-sample seasonal-naive MAE (the
  MASE scale), of the candidate the selection rule picks from the series' *other*
  windows (leave-one-window-out): an honest sample of the selected forecast's error,
  since the selected model's own errors on the windows that chose it are optimistically
  small (their pooled quantile covered only 68% at 80% on Tourism).  Scores are pooled
  over the band; the ``L``% half-width is the finite-sample conformal quantile
  (``ceil((m+1)L/100)``-th of ``m`` scores) times the series' scale, times
  ``sqrt(step)`` for steps beyond the first.  With a single window there is nothing to
  leave out and the selected model's own errors are used.  Each candidate's own
  interval (``candidates``) uses that candidate's pooled scores.  Intervals are
  symmetric and nested (95% contains 80%).
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
    AutoETS,
    AutoTheta,
    CrostonOptimized,
    Naive,
    SeasonalNaive,
)

__all__ = [
    "ENSEMBLE",
    "SelectionResult",
    "band_of",
    "crossfit_scores",
    "select_and_forecast",
    "series_scale",
]

ENSEMBLE = "Ensemble"
INTERMITTENT_ZERO_SHARE = 0.3
DEFAULT_WINDOWS = 4
DEFAULT_ARIMA_MAX_SERIES = 0  # AutoARIMA costs ~10x AutoETS: opt-in (arima_max_series=N)
SELECTION_ETS_MODEL = "ZZZ"


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


def series_scale(y: np.ndarray, season_length: int) -> float:
    """In-sample MAE of the seasonal naive (lag-1 naive when too short); 1.0 if zero/undefined."""
    y = np.asarray(y, dtype="float64")
    lag = season_length if len(y) > season_length else 1
    if len(y) <= lag:
        return 1.0
    d = np.abs(y[lag:] - y[:-lag])
    scale = float(np.mean(d))
    if not np.isfinite(scale) or scale <= 0:
        scale = float(np.mean(np.abs(y))) or 1.0
    return scale


def band_of(n: int, zero_share: float, season_length: int) -> str:
    s = season_length
    if n >= 6 and zero_share >= INTERMITTENT_ZERO_SHARE:
        return "intermittent"
    if n >= 2 * s + 4:
        return "full"
    if s > 1 and n >= s + 3:
        return "seasonal_short"
    return "fallback"


def _min_train(band: str, s: int) -> int:
    return {"full": 2 * s + 2, "seasonal_short": s + 1, "intermittent": 4}[band]


def _candidates(band: str, s: int, use_arima: bool, ets_model: str) -> tuple[list, list[str]]:
    """statsforecast models and the names of the ensemble members."""
    if band == "intermittent":
        return [Naive(), CrostonOptimized(), ADIDA(), IMAPA()], []
    if band == "seasonal_short":
        return [Naive(), SeasonalNaive(season_length=s)], []
    models = [SeasonalNaive(season_length=s), Naive(),
              AutoETS(season_length=s, model=ets_model if s > 1 else ets_model[:2] + "N"),
              AutoTheta(season_length=s)]
    members = ["AutoETS", "AutoTheta"]
    if use_arima:
        models.append(AutoARIMA(season_length=s))
        members.append("AutoARIMA")
    return models, members


def _conformal_q(scores: np.ndarray, level: int) -> float:
    scores = scores[np.isfinite(scores)]
    m = len(scores)
    if m == 0:
        return float("nan")
    rank = min(m, math.ceil((m + 1) * level / 100.0))
    return float(np.sort(scores)[rank - 1])


def _smape_terms(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    denom = np.abs(y) + np.abs(f)
    return np.divide(2 * np.abs(y - f), denom, out=np.zeros(len(y)), where=denom > 0)


def crossfit_scores(err: np.ndarray, series: np.ndarray, window: np.ndarray, *, scope: str = "series",
                    smape_terms: np.ndarray | None = None) -> np.ndarray:
    """Conformal scores of a selected forecast, one per backtest row: the scaled error
    ``err[row, k]`` of the candidate ``k`` the selection rule picks *without* that row's
    window (rows x candidates; candidates in tie-break order, simplest first).

    ``scope="series"``: lowest mean scaled error over the series' other windows;
    ``scope="cohort"``: lowest mean sMAPE (``smape_terms``) over every series' other
    windows.  Rows whose series has no other window get the in-sample choice (NaN
    here; the caller fills them)."""
    n, k = err.shape
    if n == 0:
        return np.array([])
    valid = np.isfinite(err)
    if scope == "cohort":
        terms = np.where(np.isfinite(smape_terms), smape_terms, 0.0)
        ok = np.isfinite(smape_terms)
        codes, inverse = np.unique(window, return_inverse=True)
        tot, cnt = terms.sum(axis=0), ok.sum(axis=0)
        pick = np.empty(len(codes), dtype=int)
        for j in range(len(codes)):
            rest = inverse == j
            c = cnt - ok[rest].sum(axis=0)
            mean = np.where(c > 0, (tot - terms[rest].sum(axis=0)) / np.maximum(c, 1), np.inf)
            pick[j] = int(np.argmin(mean)) if np.isfinite(mean).any() else -1
        chosen = pick[inverse]
    else:
        ez = np.where(valid, err, 0.0)
        codes, inverse = np.unique(series, return_inverse=True)
        tot = np.zeros((len(codes), k))
        cnt = np.zeros((len(codes), k))
        np.add.at(tot, inverse, ez)
        np.add.at(cnt, inverse, valid)
        loo_cnt = cnt[inverse] - valid
        loo = np.where(loo_cnt > 0, (tot[inverse] - ez) / np.maximum(loo_cnt, 1), np.inf)
        chosen = np.where(np.isfinite(loo).any(axis=1), np.argmin(loo, axis=1), -1)
    out = np.full(n, np.nan)
    have = chosen >= 0
    out[have] = err[np.flatnonzero(have), chosen[have]]
    return out


def _run_band(df: pd.DataFrame, band: str, *, horizon: int, s: int, freq: str, levels: list[int],
              windows: int, scope: str, arima_max_series: int, n_jobs: int, ets_model: str,
              interval_pool: str = "crossfit", dask_partitions: int = 0):
    n_min = int(df.groupby("unique_id").size().min())
    w = max(1, min(windows, n_min - _min_train(band, s)))
    long_enough = int((df.groupby("unique_id").size() >= 4 * s).sum())
    use_arima = band == "full" and 0 < df["unique_id"].nunique() <= arima_max_series \
        and long_enough == df["unique_id"].nunique()
    models, members = _candidates(band, s, use_arima, ets_model)
    sf = StatsForecast(models=models, freq=freq, n_jobs=n_jobs, fallback_model=Naive())
    with warnings.catch_warnings():  # ETS/ARIMA divide-by-zero notes on tiny or perfect fits
        warnings.simplefilter("ignore", RuntimeWarning)
        if dask_partitions:
            cv, fc = _run_on_dask(sf, df, w, horizon, dask_partitions)
        else:
            cv = sf.cross_validation(df=df, h=1, n_windows=w, step_size=1)
            fc = sf.forecast(df=df, h=horizon)
    names = [c for c in fc.columns if c not in ("unique_id", "ds")]
    if members:
        cv[ENSEMBLE] = cv[members].mean(axis=1)
        fc[ENSEMBLE] = fc[members].mean(axis=1)
        names.append(ENSEMBLE)
    cv["unique_id"] = cv["unique_id"].astype(str)
    fc["unique_id"] = fc["unique_id"].astype(str)

    scales = df.groupby("unique_id", sort=False)["y"].apply(lambda v: series_scale(v.to_numpy(), s))
    scale_cv = cv["unique_id"].map(scales).to_numpy()
    y = cv["y"].to_numpy()
    err = {m: np.abs(y - cv[m].to_numpy()) / scale_cv for m in names}
    per_series = pd.DataFrame({m: err[m] for m in names}).assign(unique_id=cv["unique_id"].to_numpy()) \
        .groupby("unique_id", sort=False).mean()
    terms = np.column_stack([_smape_terms(y, cv[m].to_numpy()) for m in names]) if len(cv) \
        else np.empty((0, len(names)))
    if scope == "cohort":
        sm = {m: np.nanmean(terms[:, i]) for i, m in enumerate(names)}
        best = min(names, key=lambda m: (sm[m], names.index(m)))
        chosen = pd.Series(best, index=per_series.index)
    else:
        filled = per_series[names].fillna(np.inf).to_numpy()
        chosen = pd.Series(np.asarray(names, dtype=object)[np.argmin(filled, axis=1)], index=per_series.index)

    quant = {m: {lv: _conformal_q(err[m], lv) for lv in levels} for m in names}
    # the selected model's own errors on the windows that chose it (optimistic: used as the
    # pool only for series with a single window, or when asked for)
    sel_err = np.array([err[m][i] for i, m in enumerate(cv["unique_id"].map(chosen).to_numpy())]) \
        if len(cv) else np.array([])
    if interval_pool == "crossfit" and len(cv):
        window = cv.groupby("unique_id", sort=False)["cutoff"].rank(method="dense").to_numpy()
        scores = crossfit_scores(np.column_stack([err[m] for m in names]), cv["unique_id"].to_numpy(), window,
                                 scope=scope, smape_terms=terms)
        scores = np.where(np.isnan(scores), sel_err, scores)
    else:
        scores = sel_err
    quant_selected = {lv: _conformal_q(scores, lv) for lv in levels}

    uid = fc["unique_id"].to_numpy()
    pick = chosen.reindex(uid).to_numpy()
    values = fc[names].to_numpy(dtype="float64")
    col = np.array([names.index(p) for p in pick])
    yhat = values[np.arange(len(fc)), col]
    step = fc.groupby("unique_id", sort=False).cumcount().to_numpy() + 1
    sc = pd.Series(uid).map(scales).to_numpy()
    out = pd.DataFrame({"unique_id": uid, "ds": fc["ds"].to_numpy(), "model": pick, "yhat": yhat})
    for lv in levels:
        q = np.array([quant[p][lv] for p in pick]) if interval_pool == "model" \
            else np.full(len(pick), quant_selected[lv])
        half = q * sc * np.sqrt(step)
        out[f"yhat_lo_{lv}"] = yhat - half
        out[f"yhat_hi_{lv}"] = yhat + half
    out["band"] = band

    cand = fc.melt(id_vars=["unique_id", "ds"], value_vars=names, var_name="model", value_name="yhat")
    cand_sc = cand["unique_id"].map(scales).to_numpy()
    cand_step = np.tile(step, len(names))
    for lv in levels:
        half = cand["model"].map({m: quant[m][lv] for m in names}).to_numpy() * cand_sc * np.sqrt(cand_step)
        cand[f"yhat_lo_{lv}"] = cand["yhat"] - half
        cand[f"yhat_hi_{lv}"] = cand["yhat"] + half
    cand["band"] = band

    choices = per_series.rename(columns=lambda m: f"mase_{m}")
    choices.insert(0, "model", chosen)
    choices.insert(1, "band", band)
    choices.insert(2, "windows", w)
    choices.insert(3, "scale", scales.reindex(choices.index))
    choices = choices.reset_index()

    bt = cv.melt(id_vars=["unique_id", "ds", "cutoff", "y"], value_vars=names, var_name="model", value_name="yhat")
    for lv in levels:
        q = bt["model"].map({m: quant[m][lv] for m in names}).to_numpy()
        half = q * bt["unique_id"].map(scales).to_numpy()
        bt[f"yhat_lo_{lv}"] = bt["yhat"] - half
        bt[f"yhat_hi_{lv}"] = bt["yhat"] + half
    bt["band"] = band
    return out, choices, bt, {**quant, "selected": quant_selected}, cand


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
) -> SelectionResult:
    """Selection on a prepared frame (unique_id str, ds, y float; sorted, no NaN).

    ``fallback(frame) -> forecast frame`` forecasts the ``fallback`` band (the
    history-length rule); its rows keep that rule's ``model`` label.
    """
    if scope not in ("series", "cohort"):
        raise ValueError(f"scope must be 'series' or 'cohort', got {scope!r}")
    dask_partitions = 0
    if distributed is not False:
        client = dask_client()
        if client is not None:
            dask_partitions = max(1, len(client.scheduler_info().get("workers", {})) * 2)
        elif distributed:
            raise RuntimeError("distributed=True but no dask cluster is configured")
    levels = list(levels)
    g = df.groupby("unique_id", sort=False)["y"]
    stats = pd.DataFrame({"n": g.size(), "zeros": g.apply(lambda v: float((v == 0).mean()))})
    stats["band"] = [band_of(int(n), z, season_length) for n, z in zip(stats["n"], stats["zeros"])]
    band_by_row = df["unique_id"].map(stats["band"])
    parts, choices, bts, quants, cands = [], [], [], {}, []
    for band in ("full", "seasonal_short", "intermittent"):
        sub = df.loc[band_by_row == band]
        if sub.empty:
            continue
        out, ch, bt, q, cd = _run_band(sub, band, horizon=horizon, s=season_length, freq=freq, levels=levels,
                                   windows=windows, scope=scope, arima_max_series=arima_max_series,
                                   n_jobs=n_jobs, ets_model=ets_model, dask_partitions=dask_partitions)
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
        choices.append(pd.DataFrame({"unique_id": first["unique_id"].to_numpy(), "model": first["model"].to_numpy(),
                                     "band": "fallback", "windows": 0}))
    forecast = pd.concat(parts, ignore_index=True).sort_values(["unique_id", "ds"], kind="stable") \
        .reset_index(drop=True)
    choice = pd.concat(choices, ignore_index=True).sort_values("unique_id").reset_index(drop=True)
    choice = choice.merge(stats[["n"]].rename(columns={"n": "history_quarters"}), left_on="unique_id",
                          right_index=True, how="left")
    backtest = pd.concat(bts, ignore_index=True) if bts else pd.DataFrame(
        columns=["unique_id", "ds", "cutoff", "y", "model", "yhat"])
    candidates = pd.concat(cands, ignore_index=True) if cands else pd.DataFrame(
        columns=["unique_id", "ds", "model", "yhat"])
    return SelectionResult(forecast=forecast, choices=choice, backtest=backtest, quantiles=quants,
                           candidates=candidates)
