"""The rolling pass's fits on a Dask cluster against the local path, in the same run.

    python benchmarks/forecast_dask.py [--series 10000] [--min-quarters 12] [--max-quarters 24]
                                       [--dask-workers 2] [--n-jobs 2] [--scheduler tcp://host:8786]
                                       [--tasks-per-thread N] [--skip-combined] [--json]

A synthetic quarterly cohort of ``--series`` seasonal, trending series whose lengths are drawn
from ``--min-quarters`` .. ``--max-quarters`` (like the real cohorts: customers enter late),
one as-of quarter. Timed, on the same cohort and from an empty store each time:

* **local**: ``OneStepPredictions(n_jobs=--n-jobs)``, the platform's default path (this process
  and ``n_jobs - 1`` worker processes of lib/workers.py; the default is ``min(2, cores)``);
* **dask**: ``OneStepPredictions(dask_scheduler=...)`` on a ``distributed.LocalCluster`` of
  ``--dask-workers`` worker processes with one thread each, started here before the clock
  starts (its start-up is printed apart), or on ``--scheduler`` if given.

Before either is timed, every worker of both paths fits each model once on a few series (numba
compiles, statsforecast imports): the state a long-lived worker of either kind is in.

Each makes every fit the assets' rolling pass makes for the cohort (each band's candidates at
each backtest origin and at the forecast origin: ``prefetch`` of ``band_jobs``). ``ratio`` is
dask time over local time. Then, unless ``--skip-combined``, the engine's combined forecasts
(selection, weights, conformal intervals) are assembled from each store and compared: the
max abs/rel differences of the fits and of the published point forecasts and bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import pandas as pd


def synthetic(n_series: int, min_q: int, max_q: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    end = pd.Timestamp("2025-07-01")
    frames = []
    lengths = rng.integers(min_q, max_q + 1, n_series)
    for i, n in enumerate(lengths):
        level = rng.lognormal(5, 1)
        season = np.resize([0.9, 1.0, 0.95, 1.25], max_q)[max_q - n :]
        trend = 1 + rng.normal(0.01, 0.01) * np.arange(n)
        y = np.round(level * season * trend * (1 + rng.normal(0, 0.08, n)), 2)
        ds = pd.date_range(end=end, periods=n, freq="QS")
        frames.append(pd.DataFrame({"unique_id": f"s{i:05d}", "ds": ds, "y": y}))
    return pd.concat(frames, ignore_index=True)


def max_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    both = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float("inf"), float("inf")
    if not both.any():
        return 0.0, 0.0
    d = np.abs(a[both] - b[both])
    rel = d / np.maximum(np.abs(a[both]), 1e-300)
    return float(d.max()), float(rel.max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--min-quarters", type=int, default=12)
    ap.add_argument("--max-quarters", type=int, default=24)
    ap.add_argument("--dask-workers", type=int, default=2)
    ap.add_argument("--n-jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--scheduler", default=None, help="an existing scheduler instead of a LocalCluster")
    ap.add_argument("--tasks-per-thread", type=int, default=None, help="override rolling.DASK_TASKS_PER_THREAD")
    ap.add_argument("--skip-combined", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from synoforecast.lib.forecasting.cohort_forecast import BACKTEST_WINDOWS
    from synoforecast.lib.forecasting.engine import forecast_selected, prepare_history
    from synoforecast.lib.forecasting.rolling import WORKER_PRELOAD, OneStepPredictions, fit_prefixes
    from synoforecast.lib.forecasting.selection import DEFAULT_ARIMA_MAX_SERIES, band_jobs
    from synoforecast.lib.workers import run_split

    if args.tasks_per_thread:
        from synoforecast.lib.forecasting import rolling

        rolling.DASK_TASKS_PER_THREAD = args.tasks_per_thread
    load = os.getloadavg()
    print(
        f"host: {platform.node()} {os.cpu_count()} cores, python {platform.python_version()}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start"
    )
    df = prepare_history(synthetic(args.series, args.min_quarters, args.max_quarters))
    jobs = band_jobs(df, 4, BACKTEST_WINDOWS)
    print(
        f"cohort: {args.series} series, {args.min_quarters}-{args.max_quarters} quarters, {len(df)} rows; "
        + ", ".join(
            f"band of {sub['unique_id'].nunique()} series x {len(specs)} models, {w} windows" for sub, w, specs in jobs
        )
    )

    cluster = None
    t0 = time.perf_counter()
    if args.scheduler:
        address = args.scheduler
    else:
        from distributed import LocalCluster

        cluster = LocalCluster(
            n_workers=args.dask_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        address = cluster.scheduler_address
    dask_store = OneStepPredictions(dask_scheduler=address)
    startup = time.perf_counter() - t0
    local_store = OneStepPredictions(n_jobs=args.n_jobs)
    # warm-up, not timed: every worker of both paths imports statsforecast and compiles
    # (numba) each model once on a few series, as a long-lived worker of either kind has
    t0 = time.perf_counter()
    warm = synthetic(8, args.min_quarters, args.max_quarters, seed=1)
    part = {uid: (g["ds"].to_numpy(), g["y"].to_numpy()) for uid, g in warm.groupby("unique_id")}
    for _, _, specs in jobs:
        for spec in specs:
            dask_store._dask.run(fit_prefixes, spec, part, "QS")
            run_split(fit_prefixes, [(spec, part, "QS")] * args.n_jobs, preload=WORKER_PRELOAD)
    print(
        f"dask: {address}, {sum(dask_store._dask.nthreads().values())} worker thread(s), start-up {startup:.1f} s; "
        f"warm-up of both paths {time.perf_counter() - t0:.1f} s"
    )

    t0 = time.perf_counter()
    local_store.prefetch(jobs)
    local_s = time.perf_counter() - t0
    print(
        f"local ({args.n_jobs} process(es)): {local_store.fits} fits in {local_s:.1f} s ({local_store.fits / local_s:.0f} fits/s)"
    )

    t0 = time.perf_counter()
    dask_store.prefetch(jobs)
    dask_s = time.perf_counter() - t0
    print(
        f"dask ({args.dask_workers} workers x 1 thread): {dask_store.fits} fits in {dask_s:.1f} s ({dask_store.fits / dask_s:.0f} fits/s)"
    )
    print(f"ratio dask/local: {dask_s / local_s:.2f}")

    keys = sorted(local_store.values)
    assert keys == sorted(dask_store.values), "the two stores hold different fits"
    fits_abs, fits_rel = max_diff([local_store.values[k] for k in keys], [dask_store.values[k] for k in keys])
    print(f"fits: {len(keys)} compared, max abs diff {fits_abs:.3g}, max rel diff {fits_rel:.3g}")
    result = {
        "series": args.series,
        "fits": local_store.fits,
        "local_seconds": round(local_s, 2),
        "dask_seconds": round(dask_s, 2),
        "dask_startup_seconds": round(startup, 2),
        "ratio": round(dask_s / local_s, 3),
        "fits_max_abs_diff": fits_abs,
        "fits_max_rel_diff": fits_rel,
        "load_average_start": load,
    }
    if not args.skip_combined:
        t0 = time.perf_counter()
        a, b = (
            forecast_selected(
                df, 1, 4, windows=BACKTEST_WINDOWS, arima_max_series=DEFAULT_ARIMA_MAX_SERIES, one_step=store
            ).forecast
            for store in (local_store, dask_store)
        )
        cols = [c for c in a.columns if c == "yhat" or c.startswith("yhat_")]
        a, b = (f.sort_values(["unique_id", "ds"]).reset_index(drop=True) for f in (a, b))
        assert a["unique_id"].equals(b["unique_id"]) and a["model"].equals(b["model"])
        worst = max((max_diff(a[c].to_numpy(), b[c].to_numpy()) for c in cols), key=lambda x: x[1])
        print(
            f"combined forecasts ({len(a)} rows, {', '.join(cols)}; assembled in {time.perf_counter() - t0:.1f} s): "
            f"max abs diff {worst[0]:.3g}, max rel diff {worst[1]:.3g}"
        )
        result |= {"forecast_max_abs_diff": worst[0], "forecast_max_rel_diff": worst[1]}
    load = os.getloadavg()
    print(f"load average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    result["load_average_end"] = load
    if args.json:
        print(json.dumps(result))
    dask_store._dask.close()
    if cluster is not None:
        cluster.close()


if __name__ == "__main__":
    main()
