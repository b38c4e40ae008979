"""Combination, conformal intervals, backtest scorecard, metrics and reconciliation (real statsforecast)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pytest

from synoforecast.lib.forecasting import (
    DEFAULT_LEVELS,
    bias,
    coverage,
    forecast_frame,
    forecast_selected,
    mase,
    output_columns,
)
from synoforecast.lib.forecasting.backtest import SEASONAL_NAIVE_BENCHMARK, SELECTED, rolling_backtest, scorecard
from synoforecast.lib.forecasting.intervals import conformal_halfwidths, effective_pool_size, series_scale
from synoforecast.lib.forecasting.reconcile import bottom_up, incoherence, proportional_split, top_down
from synoforecast.lib.forecasting.selection import (
    COMBINATION,
    SHORT_SEASONAL,
    band_of,
    combination_weights,
    crossfit_combination,
    short_history_forecast,
    shrunken_scores,
)


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
    assert ch.loc["sparse", "model"] == COMBINATION and ch.loc["sparse", "weight_CrostonOptimized"] > 0
    assert ch.loc["len20", "model"] == COMBINATION
    weights = ch.loc[
        ["len12", "len20", "full_b"], [f"weight_{m}" for m in ("SeasonalNaive", "Naive", "AutoETS", "AutoTheta", "CES")]
    ]
    assert np.allclose(weights.sum(axis=1), 1.0) and ((weights >= 0) & (weights <= 1)).all().all()
    mase = ch.loc[
        ["len12", "len20", "full_b"], [f"mase_{m}" for m in ("SeasonalNaive", "Naive", "AutoETS", "AutoTheta", "CES")]
    ]
    assert np.isfinite(mase.to_numpy()).all() and (mase.to_numpy() > 0).all()  # every candidate was scored
    assert (weights.to_numpy() > 0).sum() >= 3  # several candidates share the weight
    assert {"mase_AutoETS", "mase_AutoTheta", "mase_CES"} <= set(ch.columns)
    assert (ch.loc[["len12", "len20"], "windows"] >= 2).all()
    assert band_of(4, 0.5, 4) == "fallback" and band_of(5, 0.0, 4) == "seasonal_short"
    assert band_of(12, 0.0, 4) == "full"


def test_selected_frame_keeps_the_engine_contract(mixed, selected):
    fc = forecast_frame(mixed, horizon=2, select=True)
    assert list(fc.columns) == output_columns(DEFAULT_LEVELS)  # the columns test_engine pins
    assert len(fc) == 2 * mixed["unique_id"].nunique() and fc["yhat"].notna().all()
    band = fc.dropna()
    assert len(band) == len(fc)  # short series pool their changes: even a single observation gets an interval
    assert (band["yhat_lo_95"] <= band["yhat_lo_80"]).all() and (band["yhat_lo_80"] <= band["yhat"]).all()
    assert (band["yhat"] <= band["yhat_hi_80"]).all() and (band["yhat_hi_80"] <= band["yhat_hi_95"]).all()
    # intervals widen with the horizon
    two = fc[fc["unique_id"] == "len20"]
    width = (two["yhat_hi_80"] - two["yhat_lo_80"]).to_numpy()
    assert width[1] > width[0]


def test_scores_shrink_toward_the_pool_and_weights_are_inverse_squared():
    # two series x two windows x two candidates
    err = np.array(
        [
            [1.0, 3.0],
            [1.0, 3.0],  # series 0: candidate 0 better
            [4.0, 2.0],
            [4.0, 2.0],
        ]
    )  # series 1: candidate 1 better
    inverse = np.array([0, 0, 1, 1])
    pooled = np.array([2.5, 2.5])
    own = shrunken_scores(err, inverse, 2, k=0.0)
    assert own.tolist() == [[1.0, 3.0], [4.0, 2.0]]
    shrunk = shrunken_scores(err, inverse, 2, k=2.0)  # (2 * own + 2 * pooled) / 4
    assert np.allclose(shrunk, (2 * own + 2 * pooled) / 4)
    assert np.allclose(shrunken_scores(err, inverse, 2, k=np.inf), [pooled, pooled])
    w = combination_weights(np.array([[1.0, 1.2], [1.0, 2.0], [np.nan, 3.0], [np.nan, np.nan]]))
    assert np.allclose(w[0], [1 / (1 + 1 / 1.44), (1 / 1.44) / (1 + 1 / 1.44)])  # inverse squared scores
    assert np.allclose(w[1], [1.0, 0.0])  # 2.0 > 1.5 x the best: trimmed
    assert np.allclose(w[2], [0.0, 1.0]) and np.allclose(w[3], [0.5, 0.5])


def test_crossfit_combination_weighs_each_window_without_it():
    err = np.array([[1.0, 2.0], [1.0, 2.0], [5.0, 2.0]])  # one series, three windows
    preds = np.array([[10.0, 20.0], [10.0, 20.0], [10.0, 20.0]])
    inverse = np.zeros(3, dtype=int)
    got = crossfit_combination(err, preds, inverse, 1, k=0.0)
    # windows 1 and 2: the other windows score (3, 2): within 1.5 x the best, weights 4/13, 9/13;
    # window 3: (1, 2): candidate 1 is trimmed (2 > 1.5 x 1) -> candidate 0 alone
    assert np.allclose(got, [10 * 4 / 13 + 20 * 9 / 13] * 2 + [10.0])


def test_conformal_halfwidths_are_nested_and_honest_on_small_pools():
    from scipy.stats import t

    big = np.abs(np.random.default_rng(0).normal(size=400))
    q = conformal_halfwidths(big, (80, 95))
    assert q[80] == pytest.approx(np.sort(big)[math.ceil(401 * 0.8) - 1])  # the conformal order statistic
    assert q[95] == pytest.approx(np.sort(big)[math.ceil(401 * 0.95) - 1])
    small = np.array([0.2, 0.5, 0.4, 1.0, 0.3, 0.6, 0.8, 0.7])  # 8 scores: the 95% rank does not exist
    q = conformal_halfwidths(small, (80, 95))
    rms = np.sqrt(np.mean(small**2))
    assert q[95] == pytest.approx(t.ppf(0.975, df=8) * rms) and q[95] > small.max()  # widened, never clipped
    assert q[80] == pytest.approx(max(np.sort(small)[7], t.ppf(0.9, df=8) * rms))
    assert q[95] > q[80]
    ties = np.ones(30)
    q = conformal_halfwidths(ties, (80, 95))
    assert q[95] > q[80] >= 1.0
    assert np.isnan(conformal_halfwidths(np.array([]), (80,))[80])


def test_selected_intervals_use_the_crossfitted_quantile(mixed):
    result = forecast_selected(mixed, levels=(80, 95))
    fc = result.forecast.drop_duplicates("unique_id").set_index("unique_id")
    scale = result.choices.set_index("unique_id")["scale"]
    q = result.quantiles["full"]["selected"]
    assert q[95] > q[80] > 0
    for uid in ("len12", "len20", "full_b"):
        first = fc.loc[uid]
        norm = max(abs(first["yhat"]), scale[uid])  # scores are relative to the forecast's level
        assert first["yhat_hi_80"] - first["yhat"] == pytest.approx(q[80] * norm)
        assert first["yhat_hi_95"] - first["yhat"] == pytest.approx(q[95] * norm)


def test_effective_pool_size_counts_shared_shocks_once():
    rng = np.random.default_rng(1)
    windows = np.repeat(np.arange(8), 16)
    unrelated = np.abs(rng.normal(size=128))
    assert effective_pool_size(unrelated, windows) > 80  # independent series: close to 128
    shared = np.abs(np.repeat(rng.normal(size=8), 16) + rng.normal(scale=0.01, size=128))
    assert effective_pool_size(shared, windows) < 9  # one shock per window: about 8 draws
    assert effective_pool_size(shared[:16], windows[:16]) == 1.0  # a single window is a single draw


def test_short_histories_forecast_seasonal_naive_once_a_season_exists_with_pooled_intervals():
    df = pd.DataFrame(
        {
            "unique_id": ["a"] * 4 + ["b"] * 2,
            "ds": list(pd.date_range("2024-01-01", periods=4, freq="QS"))
            + list(pd.date_range("2024-07-01", periods=2, freq="QS")),
            "y": [100.0, 110.0, 105.0, 160.0, 50.0, 60.0],
        }
    )
    fc = short_history_forecast(df, horizon=2, season_length=4, levels=(80, 95), freq="QS").set_index(
        ["unique_id", "ds"]
    )
    a = fc.loc["a"]  # one full season: naive and seasonal naive, equally weighted
    assert a["model"].tolist() == [SHORT_SEASONAL] * 2 and a["yhat"].tolist() == [130.0, 135.0]
    b = fc.loc["b"]
    assert b["model"].tolist() == ["Naive"] * 2 and b["yhat"].tolist() == [60.0, 60.0]
    assert (fc["yhat_hi_95"] > fc["yhat_hi_80"]).all() and (fc["yhat_hi_80"] > fc["yhat"]).all()
    # one pool of relative changes, scaled by each forecast's level (or the series' mean level if larger)
    ra = (a["yhat_hi_80"].iloc[0] - 130.0) / max(130.0, np.mean([100, 110, 105, 160]))
    rb = (b["yhat_hi_80"].iloc[0] - 60.0) / max(60.0, 55.0)
    assert ra == pytest.approx(rb)


def test_rolling_backtest_scores_selected_candidates_and_benchmark():
    df = pd.concat([quarterly(f"s{i}", 20, seed=i) for i in range(4)], ignore_index=True)
    bt = rolling_backtest(df, windows=2)
    card = scorecard(bt).set_index("model")
    assert {SELECTED, SEASONAL_NAIVE_BENCHMARK, "AutoETS", "AutoTheta", "CES"} <= set(card.index)
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
    frame = pl.DataFrame(
        {
            "series_id": ["total", "T1", "T2", "T3"] * 2,
            "metric": ["units"] * 4 + ["revenue"] * 4,
            "yhat": [100.0, 33.33333, 33.33333, 40.00004, 1e6, 1 / 3, 2 / 3, 999_000.123456],
            "yhat_lo_80": [90.0, 30, 30, 35, 9e5, 0, 0, 9e5],
            "yhat_hi_80": [110.0, 36, 36, 45, 1.1e6, 1, 1, 1.1e6],
        }
    )
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

    frame = pl.DataFrame(
        {
            "series_id": ["EMEA", "Americas", "APAC", "Unknown"] * 2,
            "metric": ["units"] * 4 + ["revenue"] * 4,
            "yhat": [40.0, 30.0, 20.0, 3.0, 1 / 3, 1 / 3, 1 / 3, -2.0],
            "yhat_lo_80": [35.0, 25, 15, 1, 0, 0, 0, -3],
            "yhat_hi_80": [45.0, 35, 25, 5, 1, 1, 1, -1],
        }
    )
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
    assert alone.filter(pl.col("metric") == "revenue")["yhat"].to_list() == [
        round(v, 4) for v in frame["yhat"][4:].to_list()
    ]


def test_backtest_command_prints_per_model_and_selected_scores(tmp_path, capsys):
    import json

    from synoforecast.cli.main import main

    df = pd.concat([quarterly(f"s{i}", 16, seed=i) for i in range(2)], ignore_index=True)
    path = tmp_path / "h.csv"
    df.assign(ds=df["ds"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    assert main(["backtest", "--input", str(path), "--windows", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    models = {m["model"]: m for m in doc["models"]}
    assert doc["windows"] == 2 and {SELECTED, SEASONAL_NAIVE_BENCHMARK, "AutoETS"} <= set(models)
    assert {"smape", "mape", "mase", "coverage_80", "coverage_95"} <= set(models[SELECTED])
    assert main(["backtest", "--input", str(tmp_path / "missing.csv")]) == 2
