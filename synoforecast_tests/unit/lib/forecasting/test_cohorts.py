"""Cohort series as of a quarter: the cut, the top-customer grouping and the long format."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from synoforecast.lib.forecasting.cohorts import (
    ALL_OTHER,
    COHORTS,
    COHORTS_BY_NAME,
    METRICS,
    TOTAL,
    actuals_at,
    series_as_of,
    split_unique_id,
    to_long,
)

Q1, Q2, Q3, Q4 = dt.date(2025, 1, 1), dt.date(2025, 4, 1), dt.date(2025, 7, 1), dt.date(2025, 10, 1)
OVERALL = COHORTS_BY_NAME["svr_rm_overall"]
TOP = COHORTS_BY_NAME["svr_rm_top_customers"]


def overall_history() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "series_id": ["total", "T1", "total", "T1", "total", "T1", "total"],
            "quarter_start": [Q3, Q1, Q1, Q2, Q2, Q3, Q4],
            "units": [30.0, 1.0, 10.0, 2.0, 20.0, 3.0, 40.0],
            "revenue": [300.0, 10.0, 100.0, 20.0, 200.0, 30.0, 400.0],
        }
    )


def customer_history() -> pl.DataFrame:
    rows = [
        # series_id, quarter, units, revenue, is_top
        ("00412", Q1, 5.0, 500.10, True),
        ("00412", Q2, 6.0, 600.20, True),
        ("00412", Q3, 7.0, 700.30, True),
        ("B", Q1, 1.0, 100.01, False),
        ("B", Q2, 2.0, 200.02, True),  # top in Q2 only
        ("B", Q3, 3.0, 300.03, False),
        ("C", Q1, 4.0, 0.1, False),
        ("C", Q2, 1.0, 0.2, False),
        ("C", Q3, 2.0, 0.7, False),
        ("D", Q3, 9.0, 999.99, False),
        ("00412", Q4, 99.0, 9999.0, True),  # after the as-of quarter
    ]
    return pl.DataFrame(
        rows, schema=["series_id", "quarter_start", "units", "revenue", "is_top_customer"], orient="row"
    )


def test_cohorts_are_named_uniquely_and_say_where_they_come_from():
    names = [c.name for c in COHORTS]
    assert len(names) == len(set(names)) == len(COHORTS_BY_NAME)
    assert [c.name for c in COHORTS if c.by_customer] == ["svr_rm_top_customers"]
    for cohort in COHORTS:
        assert cohort.marts and all(m.startswith("mart_") for m in cohort.marts)
        assert "quarter_start" in cohort.history_sql


def test_series_as_of_cuts_at_the_as_of_quarter_inclusive():
    out = series_as_of(OVERALL, overall_history(), Q2)
    assert out.columns == ["series_id", "quarter_start", "units", "revenue"]
    assert out.rows() == [
        ("T1", Q1, 1.0, 10.0),
        ("T1", Q2, 2.0, 20.0),
        ("total", Q1, 10.0, 100.0),
        ("total", Q2, 20.0, 200.0),
    ]
    assert series_as_of(OVERALL, overall_history(), dt.date(2024, 10, 1)).is_empty()
    assert series_as_of(OVERALL, overall_history(), Q4).height == 8  # T1 without a Q4 row: a zero


def test_top_customers_kept_and_the_rest_summed_into_all_other():
    out = series_as_of(TOP, customer_history(), Q3)
    assert out.columns == ["series_id", "quarter_start", "units", "revenue"]
    # B was top in Q2 but not in the as-of quarter: it belongs to all_other over its whole history
    assert out.rows() == [
        ("00412", Q1, 5.0, 500.10),
        ("00412", Q2, 6.0, 600.20),
        ("00412", Q3, 7.0, 700.30),
        (ALL_OTHER, Q1, 5.0, 100.11),
        (ALL_OTHER, Q2, 3.0, 200.22),
        (ALL_OTHER, Q3, 14.0, 1300.72),
        (TOTAL, Q1, 10.0, 600.21),
        (TOTAL, Q2, 9.0, 800.42),
        (TOTAL, Q3, 21.0, 2001.02),
    ]


def test_top_customer_grouping_preserves_totals_per_quarter():
    history = customer_history()
    for as_of in (Q1, Q2, Q3):
        out = series_as_of(TOP, history, as_of).filter(pl.col("series_id") != TOTAL)
        expected = (
            history.filter(pl.col("quarter_start") <= as_of)
            .group_by("quarter_start")
            .agg(pl.col("units").sum(), pl.col("revenue").sum().round(2))
            .sort("quarter_start")
        )
        got = (
            out.group_by("quarter_start")
            .agg(pl.col("units").sum(), pl.col("revenue").sum().round(2))
            .sort("quarter_start")
        )
        assert_frame_equal(got, expected)
        total = series_as_of(TOP, history, as_of).filter(pl.col("series_id") == TOTAL)
        assert_frame_equal(
            total.select("quarter_start", "units", pl.col("revenue").round(2)).sort("quarter_start"),
            expected.select("quarter_start", pl.col("units").cast(pl.Float64), "revenue"),
            check_dtypes=False,
        )


def test_top_customers_as_of_q2_follow_the_q2_flags():
    out = series_as_of(TOP, customer_history(), Q2)
    assert sorted(set(out["series_id"].to_list())) == ["00412", "B", ALL_OTHER, TOTAL]
    assert out.filter(pl.col("series_id") == ALL_OTHER).rows() == [(ALL_OTHER, Q1, 4.0, 0.1), (ALL_OTHER, Q2, 1.0, 0.2)]


def test_all_other_revenue_does_not_depend_on_row_order():
    history = customer_history()
    forward = series_as_of(TOP, history, Q3)
    backward = series_as_of(TOP, history.reverse(), Q3)
    assert_frame_equal(forward, backward)


def test_top_customer_cohort_with_no_history_before_as_of_is_empty():
    assert series_as_of(TOP, customer_history(), dt.date(2024, 1, 1)).is_empty()


def test_to_long_and_split_unique_id_round_trip():
    series = series_as_of(TOP, customer_history(), Q3)
    long = to_long(series)
    assert long.columns == ["unique_id", "ds", "y"]
    assert long.height == 2 * series.height
    assert set(long["unique_id"]) == {f"{s}::{m}" for s in ("00412", ALL_OTHER, TOTAL) for m in METRICS}
    assert long["ds"].dtype == pl.Date and long["y"].dtype == pl.Float64

    split = split_unique_id(long)
    assert split.filter(pl.col("unique_id") == "00412::revenue")[["series_id", "metric"]].row(0) == ("00412", "revenue")
    back = (
        split.pivot(on="metric", index=["series_id", "ds"], values="y")
        .rename({"ds": "quarter_start"})
        .select("series_id", "quarter_start", "units", "revenue")
        .sort("series_id", "quarter_start")
    )
    assert_frame_equal(back, series.sort("series_id", "quarter_start"))


def test_to_long_drops_missing_values():
    series = pl.DataFrame(
        {"series_id": ["a", "a"], "quarter_start": [Q1, Q2], "units": [1.0, None], "revenue": [10.0, 20.0]}
    )
    long = to_long(series)
    assert long.rows() == [("a::revenue", Q1, 10.0), ("a::revenue", Q2, 20.0), ("a::units", Q1, 1.0)]


@pytest.mark.parametrize(
    "unique_id, series_id, metric",
    [("total::units", "total", "units"), ("C2 Storage::revenue", "C2 Storage", "revenue")],
)
def test_split_unique_id(unique_id, series_id, metric):
    out = split_unique_id(pl.DataFrame({"unique_id": [unique_id]}))
    assert out.row(0, named=True) == {"unique_id": unique_id, "series_id": series_id, "metric": metric}


def test_actuals_at_include_the_derived_top_customer_series():
    # the history query has no `total` or `all_other` rows: they are formed like the forecasts' series
    got = actuals_at(TOP, customer_history(), Q3)
    assert got[(TOTAL, "units")] == 21.0 and got[(TOTAL, "revenue")] == 2001.02
    assert got[(ALL_OTHER, "units")] == 14.0 and got[("00412", "revenue")] == 700.30
    assert ("B", "units") not in got  # not a top customer in Q3: counted in all_other
    assert actuals_at(OVERALL, overall_history(), Q2) == {
        ("T1", "units"): 2.0,
        ("T1", "revenue"): 20.0,
        ("total", "units"): 20.0,
        ("total", "revenue"): 200.0,
    }
    assert actuals_at(TOP, customer_history(), dt.date(2024, 1, 1)) == {}


def sparse_customer_history() -> pl.DataFrame:
    """A top customer who buys in the Q4s only, plus a steady one (the mart has no row for a
    quarter without sales)."""
    quarters = [dt.date(2021 + i // 4, 1 + 3 * (i % 4), 1) for i in range(16)]
    rows = []
    for q in quarters:
        rows.append(("steady", q, 10.0, 1000.0, True))
        if q.month == 10:
            rows.append(("q4_only", q, 40.0 + q.year - 2021, 4000.0, True))
    return pl.DataFrame(
        rows, schema=["series_id", "quarter_start", "units", "revenue", "is_top_customer"], orient="row"
    )


def test_quarters_without_sales_are_zeros_not_gaps():
    as_of = dt.date(2024, 10, 1)
    series = series_as_of(TOP, sparse_customer_history(), as_of).filter(pl.col("series_id") == "q4_only")
    # first sale 2021-Q4, then every quarter to the as-of quarter: 13 quarters, 9 of them zero
    assert series.height == 13 and series["quarter_start"][0] == dt.date(2021, 10, 1)
    assert series["quarter_start"][-1] == as_of
    assert (series["units"] == 0).sum() == 9
    # the seasonal lag now points at the same quarter a year earlier, not at the previous sale
    by_quarter = dict(zip(series["quarter_start"], series["units"]))
    assert by_quarter[dt.date(2024, 10, 1)] == 43.0 and by_quarter[dt.date(2023, 10, 1)] == 42.0
    assert by_quarter[dt.date(2024, 7, 1)] == 0.0
    # totals keep every quarter too
    total = series_as_of(TOP, sparse_customer_history(), as_of).filter(pl.col("series_id") == TOTAL)
    assert total.height == 16


def test_a_customer_who_skips_quarters_is_forecast_in_the_intermittent_band():
    from synoforecast.lib.forecasting import forecast_selected

    long = to_long(series_as_of(TOP, sparse_customer_history(), dt.date(2024, 10, 1))).to_pandas()
    result = forecast_selected(long, horizon=1, season_length=4, freq="QS")
    bands = result.choices.set_index("unique_id")["band"]
    assert bands["q4_only::units"] == "intermittent" and bands["q4_only::revenue"] == "intermittent"
    assert bands["steady::units"] != "intermittent"


def test_scoring_forms_top_customers_with_the_set_the_forecast_used():
    history = customer_history()
    # B is top in Q2 only: a forecast made at Q2 has a B series; its Q3 actual must be B's own Q3 sales
    scored = series_as_of(TOP, history, Q3, top_as_of=Q2)
    b = scored.filter((pl.col("series_id") == "B") & (pl.col("quarter_start") == Q3))
    assert b["units"].to_list() == [3.0]
    other = scored.filter((pl.col("series_id") == ALL_OTHER) & (pl.col("quarter_start") == Q3))
    assert other["units"].to_list() == [11.0]  # C 2 + D 9: B is not in all_other under the Q2 set
    assert series_as_of(TOP, history, Q3).filter(pl.col("series_id") == "B").is_empty()


def test_c2_all_services_row_is_the_bottom_up_parent():
    assert COHORTS_BY_NAME["c2_scorecard"].parent == "All C2"
