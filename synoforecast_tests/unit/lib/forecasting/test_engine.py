"""forecast_frame against the real statsforecast (no mocks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from synoforecast.lib.forecasting import (
    DEFAULT_LEVELS,
    MODEL_AUTOETS,
    MODEL_NAIVE,
    MODEL_SEASONAL_NAIVE,
    ForecastInputError,
    choose_model,
    forecast_frame,
    infer_freq,
    output_columns,
)

PEAK = [100.0, 105.0, 102.0, 160.0]  # Q1..Q4, Q4 peak


def quarterly(uid: str, n: int, start: str = "2019-01-01", values=None, noise=0.0, seed=0):
    ds = pd.date_range(start, periods=n, freq="QS")
    if values is None:
        rng = np.random.default_rng(seed)
        values = np.resize(PEAK, n) * (1 + 0.01 * np.arange(n)) + rng.normal(0, noise, n)
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": np.asarray(values, dtype=float)})


@pytest.fixture(scope="module")
def mixed() -> pd.DataFrame:
    parts = [quarterly(f"len{n}", n, seed=n, noise=2.0) for n in (1, 2, 3, 5, 7, 9, 23)]
    returns = np.resize([-5.0, 3.0, -2.0, 8.0], 16) + np.random.default_rng(3).normal(0, 1, 16)
    parts.append(quarterly("negative", 16, values=returns))
    parts.append(quarterly("constant", 12, values=np.full(12, 42.0)))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def mixed_fc(mixed) -> pd.DataFrame:
    return forecast_frame(mixed, horizon=2)


def test_output_columns_and_types(mixed, mixed_fc):
    assert list(mixed_fc.columns) == [
        "unique_id",
        "ds",
        "model",
        "yhat",
        "yhat_lo_80",
        "yhat_hi_80",
        "yhat_lo_95",
        "yhat_hi_95",
    ]
    assert list(mixed_fc.columns) == output_columns(DEFAULT_LEVELS)
    assert pd.api.types.is_datetime64_any_dtype(mixed_fc["ds"])
    for c in mixed_fc.columns[3:]:
        assert mixed_fc[c].dtype == np.float64
    assert mixed_fc["yhat"].notna().all()
    assert len(mixed_fc) == 2 * mixed["unique_id"].nunique()


def test_q4_peak_is_forecast():
    # 23 quarters: 2019Q1 .. 2024Q3, so the next quarter is 2024Q4 (the peak).
    hist = quarterly("peaky", 23, noise=1.5, seed=7)
    fc = forecast_frame(hist, horizon=1)
    assert fc["model"].tolist() == [MODEL_AUTOETS]
    assert fc["ds"].iloc[0] == pd.Timestamp("2024-10-01")
    last_non_q4 = hist.loc[hist["ds"].dt.quarter != 4, "y"].tail(3).mean()
    assert fc["yhat"].iloc[0] > last_non_q4


def test_intervals_are_nested(mixed_fc):
    fc = mixed_fc.dropna()
    assert len(fc) == len(mixed_fc) - 2  # only the 1-point series lacks intervals
    eps = 1e-9
    assert (fc["yhat_lo_95"] <= fc["yhat_lo_80"] + eps).all()
    assert (fc["yhat_lo_80"] <= fc["yhat"] + eps).all()
    assert (fc["yhat"] <= fc["yhat_hi_80"] + eps).all()
    assert (fc["yhat_hi_80"] <= fc["yhat_hi_95"] + eps).all()


def test_model_choice_by_history_length(mixed_fc):
    by_id = mixed_fc.groupby("unique_id")["model"].agg(lambda s: set(s))
    expected = {
        "len1": MODEL_NAIVE,
        "len2": MODEL_NAIVE,
        "len3": MODEL_NAIVE,
        "len5": MODEL_NAIVE,
        "len7": MODEL_SEASONAL_NAIVE,
        "len9": MODEL_AUTOETS,
        "len23": MODEL_AUTOETS,
        "negative": MODEL_AUTOETS,
        "constant": MODEL_AUTOETS,
    }
    assert by_id.to_dict() == {k: {v} for k, v in expected.items()}
    for n in (1, 2, 3, 5, 7, 9, 23):
        assert choose_model(n, 4) == expected[f"len{n}"]
    assert choose_model(0, 4) is None
    assert choose_model(6, 4) == MODEL_SEASONAL_NAIVE
    assert choose_model(8, 4) == MODEL_SEASONAL_NAIVE
    assert choose_model(4, 1) == MODEL_AUTOETS


def test_short_series_fallbacks(mixed, mixed_fc):
    one = mixed_fc[mixed_fc["unique_id"] == "len1"]
    y1 = mixed.loc[mixed["unique_id"] == "len1", "y"].iloc[0]
    assert (one["yhat"] == y1).all()
    assert one.filter(like="yhat_").isna().all().all()

    two = mixed_fc[mixed_fc["unique_id"] == "len2"].reset_index(drop=True)
    y = mixed.loc[mixed["unique_id"] == "len2", "y"].to_numpy()
    assert (two["yhat"] == y[-1]).all()
    sigma = abs(y[1] - y[0])
    for h, row in two.iterrows():
        half = norm.ppf(0.975) * sigma * np.sqrt(h + 1)
        assert row["yhat_hi_95"] - row["yhat"] == pytest.approx(half)
        assert row["yhat"] - row["yhat_lo_95"] == pytest.approx(half)

    seven = mixed_fc[mixed_fc["unique_id"] == "len7"]["yhat"].to_numpy()
    y7 = mixed.loc[mixed["unique_id"] == "len7", "y"].to_numpy()
    np.testing.assert_allclose(seven, y7[-4:-2])  # same quarter last year


def test_negative_and_constant_series(mixed_fc):
    neg = mixed_fc[mixed_fc["unique_id"] == "negative"]
    assert np.isfinite(neg[["yhat", "yhat_lo_95", "yhat_hi_95"]]).all().all()
    assert neg["yhat"].iloc[0] < 0  # next quarter is a Q1, the negative season
    const = mixed_fc[mixed_fc["unique_id"] == "constant"]
    np.testing.assert_allclose(const["yhat"], 42.0, rtol=1e-6)


def test_horizon_four_gives_consecutive_quarter_starts():
    hist = pd.concat([quarterly("a", 12), quarterly("b", 3, start="2020-04-01")])
    fc = forecast_frame(hist, horizon=4)
    assert fc.groupby("unique_id").size().to_dict() == {"a": 4, "b": 4}
    assert fc.loc[fc["unique_id"] == "a", "ds"].tolist() == list(pd.date_range("2022-01-01", periods=4, freq="QS"))
    assert fc.loc[fc["unique_id"] == "b", "ds"].tolist() == list(pd.date_range("2021-01-01", periods=4, freq="QS"))


def test_empty_all_nan_and_missing_y_are_dropped():
    hist = pd.concat(
        [
            quarterly("ok", 3),
            quarterly("all_nan", 4, values=[np.nan] * 4),
            quarterly("gap", 4, values=[1.0, np.nan, 3.0, np.nan]),
        ]
    )
    fc = forecast_frame(hist)
    assert fc["unique_id"].tolist() == ["gap", "ok"]
    gap = fc[fc["unique_id"] == "gap"].iloc[0]
    assert gap["yhat"] == 3.0 and gap["ds"] == pd.Timestamp("2019-10-01")
    empty = forecast_frame(hist.iloc[:0])
    assert empty.empty and list(empty.columns) == output_columns()


def test_input_is_not_mutated_and_ids_become_str():
    hist = quarterly("x", 5).assign(unique_id=7)
    before = hist.copy()
    fc = forecast_frame(hist, levels=[90])
    pd.testing.assert_frame_equal(hist, before)
    assert fc["unique_id"].tolist() == ["7"]
    assert list(fc.columns) == ["unique_id", "ds", "model", "yhat", "yhat_lo_90", "yhat_hi_90"]


def test_ets_failure_is_labelled_as_naive_fallback():
    # With season_length=1, n >= 3 selects AutoETS, but statsforecast's ETS refuses
    # series of <= 6 points ("tiny datasets"): fallback_model=Naive takes over.
    hist = pd.concat([quarterly("tiny", 4), quarterly("long", 12)])
    fc = forecast_frame(hist, season_length=1)
    assert dict(zip(fc["unique_id"], fc["model"])) == {"long": MODEL_AUTOETS, "tiny": MODEL_NAIVE}
    assert fc.loc[fc["unique_id"] == "tiny", "yhat"].iloc[0] == hist["y"].iloc[3]


@pytest.mark.parametrize(
    "dates, expected",
    [
        (pd.date_range("2020-01-01", periods=5, freq="QS"), "QS"),
        (pd.date_range("2020-02-01", periods=5, freq="QS-FEB"), "QS-FEB"),
        (pd.date_range("2020-01-01", periods=5, freq="MS"), "MS"),
        (pd.date_range("2020-01-01", periods=5, freq="D"), "D"),
        (pd.DatetimeIndex(["2020-01-01"]), "QS"),
    ],
)
def test_infer_freq(dates, expected):
    frame = pd.DataFrame({"unique_id": "a", "ds": dates, "y": 1.0})
    assert infer_freq(frame) == expected


def test_monthly_forecast_dates():
    hist = pd.DataFrame({"unique_id": "m", "ds": pd.date_range("2023-01-01", periods=4, freq="MS"), "y": 1.0})
    fc = forecast_frame(hist, horizon=2)
    assert fc["ds"].tolist() == [pd.Timestamp("2023-05-01"), pd.Timestamp("2023-06-01")]


def test_uninferable_freq_raises():
    hist = pd.DataFrame({"unique_id": "a", "ds": pd.to_datetime(["2020-01-03", "2020-01-05", "2020-02-20"]), "y": 1.0})
    with pytest.raises(ForecastInputError, match="cannot infer the frequency"):
        forecast_frame(hist)
    assert len(forecast_frame(hist, freq="D")) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"horizon": 0}, "horizon"),
        ({"season_length": 0}, "season_length"),
        ({"levels": (80, 100)}, "level"),
        ({"freq": "not-a-freq"}, "freq"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ForecastInputError, match=message):
        forecast_frame(quarterly("a", 3), **kwargs)


def test_bad_frames():
    with pytest.raises(ForecastInputError, match=r"missing column\(s\) 'y'.*found columns: unique_id, ds, value"):
        forecast_frame(quarterly("a", 3).rename(columns={"y": "value"}))
    dup = pd.concat([quarterly("a", 3), quarterly("a", 1)])
    with pytest.raises(ForecastInputError, match=r"duplicate \(unique_id, ds\).*'a', 2019-01-01"):
        forecast_frame(dup)
    assert issubclass(ForecastInputError, ValueError)
