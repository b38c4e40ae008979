"""Selection, conformal intervals, backtest scorecard, metrics and bottom-up reconciliation (real statsforecast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from synoforecast.lib.forecasting import (
    bias,
    coverage,
    forecast_frame,
    forecast_selected,
    mase,
)
from synoforecast.lib.forecasting.backtest import (
    SEASONAL_NAIVE_BENCHMARK,
    SELECTED,
    rolling_backtest,
    scorecard,
)
from synoforecast.lib.forecasting.reconcile import bottom_up, incoherence, proportional_split, top_down
from synoforecast.lib.forecasting.selection import ENSEMBLE, band_of, crossfit_scores, series_scale


def quarterly(uid, n, seed=0, zeros=False):
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2018-01-01", periods=n, freq="QS")
    if zeros:
        y = rng.choice([0.0, 0.0, 0.0, 2.0, 5.0], n)
    else:
        y = np.resize([100.0, 105.0, 102.0, 160.0], n) * (1 + 0.02 * np.arange(n)) + rng.normal(0, 3, n)
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": y})


@pytest.fixture(scope="module")
def mixed():
    parts = [quarterly(f"len{n}", n, seed=n) for n in (1, 2, 3, 7, 12, 20)]
    parts += [quarterly("full_b", 20, seed=99), quarterly("sparse", 16, seed=4, zeros=True)]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def selected(mixed):
    return forecast_selected(mixed, horizon=2)


def test_bands_and_candidates(selected):
    ch = selected.choices.set_index("unique_id")
    assert ch.loc[["len1", "len2", "len3"], "band"].eq("fallback").all()  # new customers: documented fallback
    assert ch.loc["len7", "band"] == "seasonal_short"
    assert ch.loc[["len12", "len20", "full_b"], "band"].eq("full").all()
    assert ch.loc["sparse", "band"] == "intermittent"
    assert ch.loc["sparse", "model"] in {"Naive", "CrostonOptimized", "ADIDA", "IMAPA"}
    assert ch.loc["len20", "model"] in {"SeasonalNaive", "Naive", "AutoETS", "AutoTheta", ENSEMBLE}
    assert {"mase_AutoETS", "mase_AutoTheta", f"mase_{ENSEMBLE}"} <= set(ch.columns)
    assert (ch.loc[["len12", "len20"], "windows"] >= 2).all()
    assert band_of(5, 0.5, 4) == "fallback" and band_of(12, 0.0, 4) == "full"


def test_selected_frame_keeps_the_engine_contract(mixed, selected):
    fc = forecast_frame(mixed, horizon=2, select=True)
    assert list(fc.columns) == ["unique_id", "ds", "model", "yhat", "yhat_lo_80", "yhat_hi_80",
                                "yhat_lo_95", "yhat_hi_95"]
    assert len(fc) == 2 * mixed["unique_id"].nunique() and fc["yhat"].notna().all()
    band = fc.dropna()
    assert len(band) == len(fc) - 2  # only the single-observation series has no interval
    assert (band["yhat_lo_95"] <= band["yhat_lo_80"]).all() and (band["yhat_lo_80"] <= band["yhat"]).all()
    assert (band["yhat"] <= band["yhat_hi_80"]).all() and (band["yhat_hi_80"] <= band["yhat_hi_95"]).all()
    # intervals widen with the horizon
    two = fc[fc["unique_id"] == "len20"]
    width = (two["yhat_hi_80"] - two["yhat_lo_80"]).to_numpy()
    assert width[1] > width[0]


def test_crossfit_scores_leave_the_scored_window_out_of_the_choice():
    # series a: model 0 wins windows 1-2 but loses window 3 badly; in-sample the rule picks model 1
    err = np.array([[1.0, 2.0], [1.0, 2.0], [5.0, 2.0],
                    [3.0, 1.0], [np.nan, 4.0],  # series b: model 0 failed in one window
                    [7.0, 9.0]])  # series c: a single window, nothing to leave out
    series = np.array(["a", "a", "a", "b", "b", "c"])
    window = np.array([1, 2, 3, 1, 2, 1])
    got = crossfit_scores(err, series, window)
    # a: windows 1 and 2 are scored by model 1 (chosen on the others), window 3 by model 0 (2 < 5 left out)
    assert got[:3].tolist() == [2.0, 2.0, 5.0]
    # b: window 1 left out -> only model 1 has another window (4) -> 1; window 2 left out -> model 1 (1 < 3) -> 4
    assert got[3:5].tolist() == [1.0, 4.0]
    assert np.isnan(got[5])
    # cohort scope: one choice per left-out window, by mean sMAPE over all series' other windows
    terms = np.array([[0.1, 0.2], [0.1, 0.2], [0.9, 0.2], [0.1, 0.3], [0.1, 0.3], [0.1, 0.3]])
    cohort = crossfit_scores(err, series, window, scope="cohort", smape_terms=terms)
    # windows 1 and 2 left out: model 1 has the lower mean sMAPE elsewhere; window 3 left out: model 0 (0.1 < 0.26)
    assert cohort.tolist() == [2.0, 2.0, 5.0, 1.0, 4.0, 9.0]


def test_selected_intervals_use_the_crossfitted_quantile(mixed):
    import math

    result = forecast_selected(mixed, levels=(80, 95))
    full = result.backtest[result.backtest["band"] == "full"]
    scale = result.choices.set_index("unique_id")["scale"]
    full = full.assign(err=(full["y"] - full["yhat"]).abs() / full["unique_id"].map(scale))
    wide = full.pivot_table(index=["unique_id", "cutoff"], columns="model", values="err", sort=True)
    names = ["SeasonalNaive", "Naive", "AutoETS", "AutoTheta", ENSEMBLE]
    wide = wide[names].reset_index()
    window = wide.groupby("unique_id")["cutoff"].rank(method="dense").to_numpy()
    scores = crossfit_scores(wide[names].to_numpy(), wide["unique_id"].to_numpy(), window)
    m = len(scores)
    for lv in (80, 95):
        expected = np.sort(scores)[min(m, math.ceil((m + 1) * lv / 100)) - 1]
        assert result.quantiles["full"]["selected"][lv] == pytest.approx(expected)
    fc = result.forecast.set_index("unique_id")
    for uid in ("len12", "len20", "full_b"):
        half = fc.loc[uid, "yhat_hi_80"] - fc.loc[uid, "yhat"]
        assert half == pytest.approx(result.quantiles["full"]["selected"][80] * scale[uid])


def test_rolling_backtest_scores_selected_candidates_and_benchmark():
    df = pd.concat([quarterly(f"s{i}", 20, seed=i) for i in range(4)], ignore_index=True)
    bt = rolling_backtest(df, windows=2)
    card = scorecard(bt).set_index("model")
    assert {SELECTED, SEASONAL_NAIVE_BENCHMARK, "AutoETS", "AutoTheta", ENSEMBLE} <= set(card.index)
    assert card.loc[SELECTED, "forecasts"] == 8
    # no look-ahead: every forecast is for the quarter right after its origin
    assert ((bt["ds"] - bt["origin"]).dt.days.between(89, 92)).all()
    for col in ("smape", "mape", "mase", "coverage_80", "coverage_95"):
        assert card.loc[SELECTED, col] is not None
    assert card.loc[SELECTED, "smape"] < card.loc[SEASONAL_NAIVE_BENCHMARK, "smape"]


def test_metrics():
    assert mase([10, 20], [12, 18], 2.0) == pytest.approx(1.0)
    assert mase([10, 20], [12, 18], [0, 2]) == pytest.approx(1.0)  # zero scale ignored
    assert bias([100, 100], [110, 100]) == pytest.approx(5.0)
    assert coverage([1, 5, 9], [0, 0, 0], [2, 6, 8]) == pytest.approx(200 / 3)
    assert coverage([1], [np.nan], [2]) is None
    assert series_scale(np.array([1.0, 2, 3, 4, 5, 6]), 4) == pytest.approx(4.0)
    assert series_scale(np.array([3.0, 3, 3]), 4) == pytest.approx(3.0)


def test_bottom_up_adds_up_exactly_after_rounding():
    frame = pl.DataFrame({
        "series_id": ["total", "T1", "T2", "T3"] * 2,
        "metric": ["units"] * 4 + ["revenue"] * 4,
        "yhat": [100.0, 33.33333, 33.33333, 40.00004, 1e6, 1 / 3, 2 / 3, 999_000.123456],
        "yhat_lo_80": [90.0, 30, 30, 35, 9e5, 0, 0, 9e5],
        "yhat_hi_80": [110.0, 36, 36, 45, 1.1e6, 1, 1, 1.1e6],
    })
    out = bottom_up(frame, "total", decimals=4)
    assert incoherence(out, "total") == 0.0
    total = out.filter(pl.col("series_id") == "total").sort("metric")
    assert total["yhat_base"].to_list() == [1e6, 100.0]
    units = out.filter(pl.col("metric") == "units")
    shift = units.filter(pl.col("series_id") == "total")["yhat"][0] - 100.0
    assert units.filter(pl.col("series_id") == "total")["yhat_lo_80"][0] == pytest.approx(90.0 + shift)
    kids = out.filter(pl.col("series_id") != "total")
    assert (kids["yhat"] == kids["yhat_base"]).all()
    from decimal import Decimal
    for metric in ("units", "revenue"):
        part = out.filter(pl.col("metric") == metric)
        parent = Decimal(repr(part.filter(pl.col("series_id") == "total")["yhat"][0]))
        assert parent == sum(Decimal(repr(v)) for v in part.filter(pl.col("series_id") != "total")["yhat"])


def test_top_down_scales_regions_onto_a_total_exactly_after_rounding():
    from decimal import Decimal

    frame = pl.DataFrame({
        "series_id": ["EMEA", "Americas", "APAC", "Unknown"] * 2,
        "metric": ["units"] * 4 + ["revenue"] * 4,
        "yhat": [40.0, 30.0, 20.0, 3.0, 1 / 3, 1 / 3, 1 / 3, -2.0],
        "yhat_lo_80": [35.0, 25, 15, 1, 0, 0, 0, -3],
        "yhat_hi_80": [45.0, 35, 25, 5, 1, 1, 1, -1],
    })
    totals = pl.DataFrame({"metric": ["units", "revenue"], "total": [100.0, 1234567.8901]})
    out = top_down(frame, totals, decimals=4)
    assert out["yhat_base"].to_list() == pytest.approx(frame["yhat"].to_list())
    for metric, total in totals.iter_rows():
        part = out.filter(pl.col("metric") == metric)
        assert sum(Decimal(repr(v)) for v in part["yhat"]) == Decimal(repr(total))
    units = out.filter(pl.col("metric") == "units").sort("series_id")
    assert units.filter(pl.col("series_id") == "EMEA")["yhat"][0] == pytest.approx(100 * 40 / 93, abs=1e-4)
    # the interval moves with the point and keeps its width
    emea = units.filter(pl.col("series_id") == "EMEA").row(0, named=True)
    assert emea["yhat_hi_80"] - emea["yhat_lo_80"] == pytest.approx(10.0)
    assert emea["yhat_lo_80"] == pytest.approx(emea["yhat"] - 5.0)
    # a negative point gets no share of the total
    revenue = out.filter(pl.col("metric") == "revenue")
    assert revenue.filter(pl.col("series_id") == "Unknown")["yhat"][0] == 0.0
    # largest remainder: parts are exact multiples of 1e-4 and never off by more than one unit
    assert proportional_split(1.0, [1, 1, 1], 4) == [0.3334, 0.3333, 0.3333]
    assert proportional_split(0.0, [0, 0], 4) == [0.0, 0.0]
    assert proportional_split(10.0, [0, 0], 4) == [5.0, 5.0]
    assert sum(Decimal(repr(v)) for v in proportional_split(-7.5, [2, 1, 1], 4)) == Decimal("-7.5")
    # a metric without a total is left as it was (rounded)
    alone = top_down(frame, totals.filter(pl.col("metric") == "units"), decimals=4)
    assert alone.filter(pl.col("metric") == "revenue")["yhat"].to_list() == \
        [round(v, 4) for v in frame["yhat"][4:].to_list()]


def test_backtest_command_prints_per_model_and_selected_scores(tmp_path, capsys):
    import json

    from synoforecast.cli import main

    df = pd.concat([quarterly(f"s{i}", 16, seed=i) for i in range(2)], ignore_index=True)
    path = tmp_path / "h.csv"
    df.assign(ds=df["ds"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    assert main(["backtest", "--input", str(path), "--windows", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    models = {m["model"]: m for m in doc["models"]}
    assert doc["windows"] == 2 and {SELECTED, SEASONAL_NAIVE_BENCHMARK, "AutoETS"} <= set(models)
    assert {"smape", "mape", "mase", "coverage_80", "coverage_95"} <= set(models[SELECTED])
    assert main(["backtest", "--input", str(tmp_path / "missing.csv")]) == 2
