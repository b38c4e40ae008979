"""Restatements of published quarters, measured per sheet, quarter and metric (pure)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from synoforecast.lib.ingest.restatements import (
    Restatement,
    comparable_quarters,
    finding,
    material,
    measure,
    quarter_totals,
)

Q1, Q2, Q3 = "2025-01-01", "2025-04-01", "2025-07-01"


def sales(rows: list[tuple[str, int, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "quarter_start": [dt.date.fromisoformat(q) for q, _, _ in rows],
            "units": [u for _, u, _ in rows],
            "revenue_usd": [r for _, _, r in rows],
        },
        schema={"quarter_start": pl.Date, "units": pl.Int64, "revenue_usd": pl.Float64},
    )


def test_quarter_totals_sum_units_and_money_and_count_lines():
    totals = quarter_totals("svr_rm", sales([(Q1, 2, 10.10), (Q1, 3, 20.20), (Q2, -1, -5.0)]))
    assert totals == {Q1: {"units": 5, "revenue": 30.3, "lines": 2}, Q2: {"units": -1, "revenue": -5.0, "lines": 1}}
    c2 = pl.DataFrame({"quarter_start": [dt.date(2025, 1, 1)] * 2, "seats": [4, 6], "mrr_usd": [40.0, 60.5]})
    assert quarter_totals("c2", c2) == {Q1: {"seats": 10, "mrr": 100.5, "lines": 2}}
    assert quarter_totals("svr_rm", None) == {} and quarter_totals("region_map", c2) == {}


def test_money_sums_stay_exact_to_the_cent_over_many_lines():
    frame = sales([(Q1, 1, 0.1)] * 100_000)
    assert quarter_totals("svr_rm", frame)[Q1]["revenue"] == 10_000.0


def test_a_restated_quarter_shows_before_after_change_and_share():
    before = {
        "svr_rm": {Q1: {"units": 100, "revenue": 1000.0, "lines": 10}, Q2: {"units": 50, "revenue": 500.0, "lines": 5}}
    }
    after = {
        "svr_rm": {Q1: {"units": 100, "revenue": 970.0, "lines": 10}, Q2: {"units": 50, "revenue": 500.0, "lines": 5}}
    }
    rows = measure(before, after, {"svr_rm": [Q1, Q2], "consumer": [], "c2": []})
    assert len(rows) == 6  # every compared value, restated or not
    (revenue,) = [r for r in rows if r.change]
    assert revenue == Restatement("SVR-RM", Q1, "2025-Q1", "revenue", 1000.0, 970.0, -30.0, -0.03)


def test_a_quarter_emptied_by_the_new_export_is_restated_to_zero_and_one_out_of_nothing_has_no_share():
    before = {"c2": {Q1: {"seats": 10, "mrr": 100.0, "lines": 2}}}
    after = {"c2": {Q2: {"seats": 3, "mrr": 30.0, "lines": 1}}}
    rows = {(r.quarter, r.metric): r for r in measure(before, after, {"c2": [Q1, Q2]})}
    assert rows[(Q1, "seats")].after == 0 and rows[(Q1, "seats")].share == -1.0
    assert rows[(Q2, "mrr")].share is None and rows[(Q2, "mrr")].size == float("inf")


def test_only_quarters_both_exports_publish_can_be_restated():
    published = {"expected_fingerprints": {"raw.svr_rm": {Q1: "a", Q2: "b"}, "raw.consumer": {Q1: "c"}, "raw.c2": {}}}
    current = {
        "expected_fingerprints": {
            "raw.svr_rm": {Q1: "a", Q2: "B", Q3: "new"},
            "raw.consumer": {Q1: "c"},
            "raw.c2": {Q1: "m"},
        }
    }
    assert comparable_quarters(published, current) == {"svr_rm": [Q1, Q2], "consumer": [Q1], "c2": []}


def test_a_manifest_without_expected_fingerprints_offers_its_complete_quarters_minus_the_incomplete_ones():
    older_release = {"complete_quarter_keys": [Q1, Q2], "fingerprints": {"incomplete": {"c2": [Q2]}}}
    current = {"expected_fingerprints": {"raw.svr_rm": {Q1: "", Q2: ""}, "raw.c2": {Q1: "", Q2: ""}}}
    assert comparable_quarters(older_release, current) == {"svr_rm": [Q1, Q2], "consumer": [], "c2": [Q1]}


def row(share: float | None, change: float = 1.0, metric: str = "units", quarter: str = Q1) -> Restatement:
    return Restatement("SVR-RM", quarter, "2025-Q1", metric, 100.0, 100.0 + change, change, share)


def test_material_ones_are_above_the_threshold_largest_first():
    rows = [
        row(0.005),
        row(-0.03, metric="revenue"),
        row(0.2, metric="lines"),
        row(None, quarter=Q2),
        row(0.0, change=0.0),
    ]
    assert [r.share for r in material(rows, 0.01)] == [None, 0.2, -0.03]
    assert material(rows, 0.5) == [rows[3]]


def test_the_check_warns_above_its_share_and_names_the_largest():
    recorded = {
        "baseline": "b" * 64,
        "rows": [row(-0.03, change=-3.0, metric="revenue").to_dict(), row(-0.07, change=-7.0).to_dict()],
    }
    warned = finding(recorded, 0.05)
    assert not warned.passed
    assert warned.summary == (
        "1 published value(s) restated by more than 5%, largest SVR-RM 2025-Q1 units: 100 -> 93 (-7, -7.0%)"
    )
    assert warned.metadata["restatements"]["restated_values"] == 2
    assert all(isinstance(v, (dict, list)) for v in warned.metadata.values())  # MetadataValue.json takes no scalar
    assert finding(recorded, 0.1).passed and "none by more than 10%" in finding(recorded, 0.1).summary


@pytest.mark.parametrize("recorded", [None, {"baseline": None, "rows": []}])
def test_the_first_export_restates_nothing(recorded):
    assert finding(recorded, 0.05).passed and "nothing restated" in finding(recorded, 0.05).summary


def test_describe_reads_like_a_sentence():
    assert (
        row(-0.03, change=-30.0, metric="revenue").describe()
        == "SVR-RM 2025-Q1 revenue: 100.00 -> 70.00 (-30.00, -3.0%)"
    )
