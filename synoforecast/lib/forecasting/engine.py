"""Forecasting engine: long-format history in, per-series forecasts with intervals out.

Pure pandas/numpy + statsforecast; no Dagster, no I/O, no global state.

Model choice per series (``n`` = number of non-missing observations, ``s`` = season_length):

==============================  =================  =========================================
history length ``n``            ``model`` column   intervals
==============================  =================  =========================================
``n >= 2*s + 1``                ``AutoETS``        ETS analytic intervals (normal errors)
``s + 2 <= n <= 2*s``           ``SeasonalNaive``  from the ``n - s`` seasonal differences
``3 <= n <= min(s + 1, 2*s)``   ``Naive``          from the ``n - 1`` one-step differences
``n == 2``                      ``Naive``          fallback: sigma = ``|y2 - y1|`` (the one
                                                   observed change), widening with sqrt(h)
``n == 1``                      ``Naive``          fallback: none possible -> NaN
==============================  =================  =========================================

For the quarterly default ``s = 4``: 1-5 points Naive, 6-8 SeasonalNaive, 9+ AutoETS.
(The ``SeasonalNaive`` band is empty when ``s == 1``; then 3+ points go to AutoETS.)

``AutoETS`` searches only the ETS forms given by ``ets_model`` (default ``"ANA"``:
additive error, no trend, additive season; ``"ANN"`` when ``s == 1``).  The full
``"ZZZ"`` search is available but is ~10x slower (it fits ~15 candidate models per
series).  If ETS fails for a series, statsforecast's ``fallback_model`` (``Naive``)
produces that series' forecast and its ``model`` column says ``Naive``
(statsforecast's ETS refuses series of ``<= npars + 4`` points, e.g. ``<= 6`` for
``"ANN"``, so with ``s == 1`` short series end up there).

Rows whose ``y`` is missing are dropped before counting ``n``; series left with no
observations are dropped silently.  Future dates continue from each series' last
observed ``ds``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from statsforecast import StatsForecast
from statsforecast.models import AutoETS, Naive, SeasonalNaive

# the public names are listed once, in the package (lib/forecasting/__init__.py)

DEFAULT_LEVELS: tuple[int, ...] = (80, 95)
DEFAULT_ETS_MODEL = "ANA"

MODEL_AUTOETS = "AutoETS"
MODEL_SEASONAL_NAIVE = "SeasonalNaive"
MODEL_NAIVE = "Naive"

_QS_ANCHOR = {1: "QS", 2: "QS-FEB", 0: "QS-MAR"}  # month % 3 -> offset alias


class ForecastInputError(ValueError):
    """The input history (frame or CSV) cannot be forecast; the message says why."""


def choose_model(n: int, season_length: int = 4) -> str | None:
    """Name of the model used for a series with ``n`` observations (None if n < 1)."""
    if n < 1:
        return None
    if n >= 2 * season_length + 1:
        return MODEL_AUTOETS
    if season_length > 1 and n >= season_length + 2:
        return MODEL_SEASONAL_NAIVE
    return MODEL_NAIVE


def output_columns(levels: Sequence[int] = DEFAULT_LEVELS) -> list[str]:
    """Columns of :func:`forecast_frame`'s result, in order."""
    cols = ["unique_id", "ds", "model", "yhat"]
    for lv in _normalise_levels(levels):
        cols += [f"yhat_lo_{lv}", f"yhat_hi_{lv}"]
    return cols


class _TrackedAutoETS(AutoETS):
    """AutoETS that remembers which calls (in call order) raised.

    statsforecast calls ``forecast`` once per series, in series order, when
    ``n_jobs=1``; the exception is re-raised so ``fallback_model`` still handles it.
    We only use the record to label fallback rows truthfully.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.failed_calls: list[int] = []

    def forecast(self, y, h, X=None, X_future=None, level=None, fitted=False):
        call = self.calls
        self.calls += 1
        try:
            return super().forecast(y=y, h=h, X=X, X_future=X_future, level=level, fitted=fitted)
        except Exception:
            self.failed_calls.append(call)
            raise


def _normalise_levels(levels: Sequence[int]) -> list[int]:
    if isinstance(levels, (int, float)):
        levels = [levels]
    out: list[int] = []
    for lv in levels:
        try:
            f = float(lv)
        except (TypeError, ValueError):
            raise ForecastInputError(f"level {lv!r} is not a number") from None
        if not np.isfinite(f) or f != int(f) or not 0 < f < 100:
            raise ForecastInputError(f"level {lv!r} must be an integer percentage between 1 and 99")
        if int(f) not in out:
            out.append(int(f))
    return sorted(out)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ForecastInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def infer_freq(history: pd.DataFrame) -> str:
    """Frequency alias for ``history`` (columns unique_id, ds).

    All dates at midnight on the 1st of a month: quarterly month starts
    (every month in the same quarter position, e.g. Jan/Apr/Jul/Oct) -> ``'QS'``
    (``'QS-FEB'`` / ``'QS-MAR'`` for the other anchors), otherwise ``'MS'``.
    Anything else: ``pandas.infer_freq`` on the longest series.
    """
    ds = pd.DatetimeIndex(history["ds"])
    if len(ds) == 0:
        raise ForecastInputError("cannot infer the frequency: history is empty")
    if (ds == ds.normalize()).all() and (ds.day == 1).all():
        residues = np.unique(np.asarray(ds.month) % 3)
        if len(residues) == 1:
            return _QS_ANCHOR[int(residues[0])]
        return "MS"
    counts = history.groupby("unique_id", sort=True)["ds"].size()
    longest = counts.idxmax()
    series = pd.DatetimeIndex(history.loc[history["unique_id"] == longest, "ds"]).sort_values()
    freq = None
    if len(series) >= 3:
        try:
            freq = pd.infer_freq(series)
        except (TypeError, ValueError):
            freq = None
    if freq is None:
        raise ForecastInputError(
            "cannot infer the frequency of ds from the data "
            f"(longest series {longest!r} has {len(series)} dates that are not "
            "month starts and have no regular spacing); pass freq explicitly, e.g. 'QS'"
        )
    return freq


def _prepare(history: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(history, pd.DataFrame):
        raise ForecastInputError(f"history must be a pandas DataFrame, got {type(history).__name__}")
    missing = [c for c in ("unique_id", "ds", "y") if c not in history.columns]
    if missing:
        raise ForecastInputError(
            f"history is missing column(s) {', '.join(map(repr, missing))}; "
            f"found columns: {', '.join(map(str, history.columns)) or '(none)'}"
        )
    df = history[["unique_id", "ds", "y"]]
    if df["unique_id"].isna().any():
        raise ForecastInputError("history has rows with a missing unique_id")
    try:
        ds = pd.to_datetime(df["ds"])
    except (TypeError, ValueError) as exc:
        raise ForecastInputError(f"history column 'ds' is not a date: {exc}") from None
    if getattr(ds.dt, "tz", None) is not None:
        ds = ds.dt.tz_localize(None)
    try:
        y = pd.to_numeric(df["y"]).astype("float64")
    except (TypeError, ValueError) as exc:
        raise ForecastInputError(f"history column 'y' is not numeric: {exc}") from None
    out = pd.DataFrame(
        {
            "unique_id": df["unique_id"].astype(str).to_numpy(),
            "ds": ds.astype("datetime64[ns]").to_numpy(),
            "y": y.to_numpy(),
        }
    )
    if out["ds"].isna().any():
        raise ForecastInputError("history has rows with a missing ds")
    if np.isinf(out["y"]).any():
        raise ForecastInputError("history column 'y' contains infinite values")
    dup = out.duplicated(["unique_id", "ds"], keep=False)
    if dup.any():
        first = out.loc[dup].iloc[0]
        raise ForecastInputError(
            f"history has {int(dup.sum())} rows with a duplicate (unique_id, ds), e.g. "
            f"({first['unique_id']!r}, {first['ds'].date().isoformat()})"
        )
    out = out.loc[out["y"].notna()]
    return out.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)


def _run_group(
    df: pd.DataFrame, model_name: str, horizon: int, season_length: int, levels: list[int], freq: str, ets_model: str
) -> pd.DataFrame:
    tracked: _TrackedAutoETS | None = None
    if model_name == MODEL_AUTOETS:
        spec = ets_model if season_length > 1 else ets_model[:2] + "N"
        tracked = _TrackedAutoETS(season_length=season_length, model=spec, alias=model_name)
        model = tracked
    elif model_name == MODEL_SEASONAL_NAIVE:
        model = SeasonalNaive(season_length=season_length, alias=model_name)
    else:
        model = Naive(alias=model_name)
    sf = StatsForecast(models=[model], freq=freq, n_jobs=1, fallback_model=Naive())
    raw = sf.forecast(h=horizon, df=df, level=list(levels))

    res = pd.DataFrame(
        {
            "unique_id": raw["unique_id"].astype(str).to_numpy(),
            "ds": raw["ds"].to_numpy(),
            "model": model_name,
            "yhat": raw[model_name].to_numpy(dtype="float64"),
        }
    )
    for lv in levels:
        res[f"yhat_lo_{lv}"] = raw[f"{model_name}-lo-{lv}"].to_numpy(dtype="float64")
        res[f"yhat_hi_{lv}"] = raw[f"{model_name}-hi-{lv}"].to_numpy(dtype="float64")

    n_series = len(res) // horizon
    if tracked is not None and tracked.failed_calls and tracked.calls == n_series:
        rows = np.concatenate([np.arange(i * horizon, (i + 1) * horizon) for i in tracked.failed_calls])
        res.loc[rows, "model"] = MODEL_NAIVE
    return res


def forecast_frame(
    history: pd.DataFrame,
    horizon: int = 1,
    season_length: int = 4,
    levels: Sequence[int] = DEFAULT_LEVELS,
    freq: str | None = None,
    *,
    ets_model: str = DEFAULT_ETS_MODEL,
    select: bool = False,
    windows: int | None = None,
    scope: str = "series",
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Forecast every series in ``history``.

    ``select=True`` chooses each series' model by rolling-origin backtest (see
    :mod:`.selection`; intervals are then split-conformal) and falls back to the
    history-length rule below for series too short to backtest.  Use
    :func:`forecast_selected` for the choices and backtest as well.

    history: long format ``unique_id`` (str), ``ds`` (datetime64), ``y`` (float);
    negative ``y`` is fine, missing ``y`` rows are ignored.  Returns one row per
    unique_id x future step, sorted by (unique_id, ds), with columns ``unique_id``,
    ``ds``, ``model`` (model used for that series, see the module docstring),
    ``yhat`` and ``yhat_lo_<L>``, ``yhat_hi_<L>`` for each level L (ascending).
    Interval bounds are NaN only for series with a single observation (with ``select=True``
    only where no short series in the band has a quarter-on-quarter change to pool).

    ``freq`` is inferred when None (see :func:`infer_freq`).  ``ets_model`` is the
    ETS form AutoETS searches (statsforecast notation, e.g. ``"ANA"``, ``"ZZZ"``).
    Raises :class:`ForecastInputError` for unusable input.
    """
    horizon = _positive_int(horizon, "horizon")
    season_length = _positive_int(season_length, "season_length")
    lv = _normalise_levels(levels)
    if not isinstance(ets_model, str) or len(ets_model) != 3:
        raise ForecastInputError(f"ets_model must be a 3-letter ETS code, got {ets_model!r}")
    columns = output_columns(lv)

    df = _prepare(history)
    if df.empty:
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
        empty["unique_id"] = empty["unique_id"].astype(object)
        empty["model"] = empty["model"].astype(object)
        empty["ds"] = empty["ds"].astype("datetime64[ns]")
        return empty

    if freq is None:
        freq = infer_freq(df)
    else:
        try:
            to_offset(freq)
        except (TypeError, ValueError):
            raise ForecastInputError(f"freq {freq!r} is not a pandas offset alias") from None

    if select:
        res = forecast_selected(
            df, horizon, season_length, lv, freq, windows=windows, scope=scope, n_jobs=n_jobs, _prepared=True
        )
        return res.forecast[columns]
    return _forecast_by_length(df, horizon, season_length, lv, freq, ets_model)


def forecast_selected(
    history: pd.DataFrame,
    horizon: int = 1,
    season_length: int = 4,
    levels: Sequence[int] = DEFAULT_LEVELS,
    freq: str | None = None,
    *,
    windows: int | None = None,
    scope: str = "series",
    n_jobs: int = 1,
    arima_max_series: int = 0,
    distributed: bool | None = None,
    one_step=None,
    _prepared: bool = False,
):
    """Backtest-selected forecasts: a :class:`.selection.SelectionResult` (forecast with a
    ``band`` column, per-series choices with each candidate's backtest MASE, the backtest).
    ``one_step``: a :class:`.rolling.OneStepPredictions` store the candidate fits come from."""
    from .selection import DEFAULT_WINDOWS, select_and_forecast, short_history_forecast

    windows = DEFAULT_WINDOWS if windows is None else windows

    horizon = _positive_int(horizon, "horizon")
    season_length = _positive_int(season_length, "season_length")
    windows = _positive_int(windows, "windows")
    lv = _normalise_levels(levels)
    df = history if _prepared else _prepare(history)
    if df.empty:
        raise ForecastInputError("history has no observations")
    if freq is None:
        freq = infer_freq(df)

    def fallback(short: pd.DataFrame) -> pd.DataFrame:
        return short_history_forecast(
            short.reset_index(drop=True), horizon=horizon, season_length=season_length, levels=lv, freq=freq
        )

    return select_and_forecast(
        df,
        horizon=horizon,
        season_length=season_length,
        levels=lv,
        freq=freq,
        windows=windows,
        scope=scope,
        n_jobs=n_jobs,
        arima_max_series=arima_max_series,
        fallback=fallback,
        distributed=distributed,
        one_step=one_step,
    )


def prepare_history(history: pd.DataFrame) -> pd.DataFrame:
    """The engine's validated, sorted input frame (what :func:`forecast_selected` fits)."""
    return _prepare(history)


def _forecast_by_length(
    df: pd.DataFrame, horizon: int, season_length: int, lv: list[int], freq: str, ets_model: str
) -> pd.DataFrame:
    columns = output_columns(lv)
    counts = df.groupby("unique_id", sort=False)["y"].transform("size").to_numpy()
    chosen = np.full(len(df), MODEL_NAIVE, dtype=object)
    chosen[counts >= season_length + 2] = MODEL_SEASONAL_NAIVE if season_length > 1 else MODEL_NAIVE
    chosen[counts >= 2 * season_length + 1] = MODEL_AUTOETS

    parts = []
    for name in (MODEL_AUTOETS, MODEL_SEASONAL_NAIVE, MODEL_NAIVE):
        mask = chosen == name
        if mask.any():
            parts.append(_run_group(df.loc[mask], name, horizon, season_length, lv, freq, ets_model))
    out = pd.concat(parts, ignore_index=True)

    # Single-observation series: the Naive sigma is 0 by construction, which would
    # claim certainty; no interval is possible, so report NaN.
    singles = df["unique_id"].to_numpy()[counts == 1]
    if len(singles):
        band = [c for c in columns if c.startswith(("yhat_lo_", "yhat_hi_"))]
        out.loc[out["unique_id"].isin(singles), band] = np.nan

    out = out.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    return out[columns]
