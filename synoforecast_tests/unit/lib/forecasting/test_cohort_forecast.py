"""Scoring a cohort's forecasts one quarter later, and the data a forecast needs (pure, no Dagster)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from synoforecast.lib.forecasting.cohort_forecast import level_of, missing_coverage, score_cohort
from synoforecast.lib.forecasting.cohorts import COHORTS_BY_NAME

TOP = COHORTS_BY_NAME["svr_rm_top_customers"]
OVERALL = COHORTS_BY_NAME["svr_rm_overall"]
Q1, Q2, Q3 = dt.date(2025, 1, 1), dt.date(2025, 4, 1), dt.date(2025, 7, 1)


def made(series: dict[str, float]) -> pl.DataFrame:
    rows = [
        (sid, metric, value, value, value * 0.9, value * 1.1, value * 0.8, value * 1.2)
        for sid, value in series.items()
        for metric in ("units", "revenue")
    ]
    return pl.DataFrame(
        rows,
        schema=["series_id", "metric", "yhat", "yhat_base", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"],
        orient="row",
    )


def test_a_new_series_has_no_mase_and_says_why():
    # "new" first sells in Q2 (one quarter of history before Q3): no in-sample scale exists;
    # T1 has ten quarters before Q3 (six seasonal differences, each 4: scale 4.0)
    quarters = [dt.date(2023 + m // 12, m % 12 + 1, 1) for m in range(0, 33, 3)]  # 2023-Q1 .. 2025-Q3
    history = pl.DataFrame(
        {
            "series_id": ["new", "new"] + ["T1"] * 11,
            "quarter_start": [Q2, Q3] + quarters,
            "units": [10.0, 12.0] + [float(v) for v in range(1, 12)],
            "revenue": [100.0, 120.0] + [10.0 * v for v in range(1, 12)],
        }
    )
    rows = score_cohort(OVERALL, made({"new": 11.0}), history, Q3, "r")
    assert {r["metric"] for r in rows} == {"units", "revenue"}
    for r in rows:
        assert r["mase"] is None and r["mase_series"] == 0
        assert "1 of 1 series have no in-sample scale" in r["mase_note"]
    both = score_cohort(OVERALL, made({"new": 11.0, "T1": 6.5}), history, Q3, "r")
    units = next(r for r in both if r["metric"] == "units")
    assert units["mase_series"] == 1 and units["mase"] == abs(6.5 - 11.0) / 4.0
    # T1 with only six quarters before Q3 (two seasonal differences): no MASE, and the note says why
    short = history.filter(pl.col("quarter_start") >= dt.date(2024, 1, 1))
    rows = score_cohort(OVERALL, made({"T1": 6.5}), short, Q3, "r")
    assert all(r["mase"] is None and "fewer than 4 seasonal differences" in r["mase_note"] for r in rows)


def test_totals_and_parts_are_scored_apart():
    history = pl.DataFrame(
        {
            "series_id": ["total", "T1", "T2"] * 3,
            "quarter_start": [Q1] * 3 + [Q2] * 3 + [Q3] * 3,
            "units": [10.0, 6.0, 4.0, 12.0, 7.0, 5.0, 14.0, 8.0, 6.0],
            "revenue": [1.0, 0.6, 0.4, 1.2, 0.7, 0.5, 1.4, 0.8, 0.6],
        }
    )
    rows = score_cohort(OVERALL, made({"total": 13.0, "T1": 8.0, "T2": 5.0}), history, Q3, "r")
    by = {(r["metric"], r["level"]): r for r in rows}
    assert set(by) == {(m, lv) for m in ("units", "revenue") for lv in ("total", "parts")}
    assert by[("units", "total")]["series_scored"] == 1 and by[("units", "parts")]["series_scored"] == 2
    assert by[("units", "total")]["smape_naive"] is not None  # naive: Q2's actual
    assert level_of(COHORTS_BY_NAME["c2_scorecard"], "All C2") == "total"
    assert level_of(COHORTS_BY_NAME["regional"], "EMEA") == "parts"


def test_top_customer_forecast_is_scored_against_the_top_set_it_used():
    # B is top in Q2 (when the forecast was made) and not in Q3
    history = pl.DataFrame(
        {
            "series_id": ["A", "A", "A", "B", "B", "B", "C", "C", "C"],
            "quarter_start": [Q1, Q2, Q3] * 3,
            "units": [5.0, 5.0, 5.0, 2.0, 2.0, 3.0, 1.0, 1.0, 1.0],
            "revenue": [50.0, 50.0, 50.0, 20.0, 20.0, 30.0, 10.0, 10.0, 10.0],
            "is_top_customer": [True, True, True, True, True, False, False, False, False],
        }
    )
    rows = score_cohort(TOP, made({"A": 5.0, "B": 3.0, "all_other": 1.0, "total": 9.0}), history, Q3, "r")
    parts = next(r for r in rows if r["metric"] == "units" and r["level"] == "parts")
    assert parts["series_scored"] == 3 and parts["smape"] == 0.0  # B and all_other as the Q2 set formed them


def test_a_forecast_needs_a_snapshot_that_holds_its_quarter():
    snapshot = {"file": "sale-out-2025-07-01.xlsx", "complete_quarter_keys": ["2025-01-01", "2025-04-01"]}
    assert missing_coverage(snapshot, Q2) is None
    why = missing_coverage(snapshot, Q3)
    assert "sale-out-2025-07-01.xlsx holds complete quarters up to 2025-Q2, not 2025-Q3" in why
    assert "an export taken after 2025-09-30" in why
    assert "no accepted snapshot" in missing_coverage(None, Q3)
