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
from synoforecast.lib.forecasting.reconcile import bottom_up, incoherence
from synoforecast.lib.forecasting.selection import ENSEMBLE, band_of, series_scale


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
