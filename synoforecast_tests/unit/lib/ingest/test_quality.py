"""Change detection against what is published (ops.partition_state rows) and the shrink guard."""

from __future__ import annotations

from synoforecast.lib.ingest.fingerprint import EMPTY
from synoforecast.lib.ingest.quality import ABSENT, expected_fingerprints, shrinkage, stale_quarters

RAW = {"svr_rm": True, "consumer": True, "region_map": False}
Q1, Q2, Q3, Q4 = "2025-01-01", "2025-04-01", "2025-07-01", "2025-10-01"


def prints(svr=None, region="r1", incomplete=None) -> dict:
    return {
        "sheets": {"svr_rm": svr or {Q1: "a", Q2: "b", Q3: "c"}, "consumer": {Q1: "x"}},
        "references": {"region_map": region},
        "incomplete": incomplete or {"svr_rm": [], "consumer": []},
    }


def published(expected: dict, cohorts: int = 1) -> list[tuple]:
    """State rows as a run that published every expected partition would leave them."""
    rows = []
    for target, keys in expected.items():
        for key, fp in keys.items():
            scopes = cohorts if target == "forecast.forecasts" else 1
            rows += [(target, f"{i}|{key}", key, fp) for i in range(scopes)]
    return rows


def test_expected_fingerprints_per_raw_table_and_cumulative_for_derived():
    exp = expected_fingerprints(prints(), [Q1, Q2, Q3], [Q1, Q2, Q3], RAW)
    assert exp["raw.svr_rm"] == {Q1: "a", Q2: "b", Q3: "c"}
    assert exp["raw.consumer"] == {Q1: "x", Q2: EMPTY, Q3: EMPTY}  # no rows in a quarter: the empty digest
    assert exp["raw.region_map"] == {Q1: "r1", Q2: "r1", Q3: "r1"}
    assert len({exp["dbt"][q] for q in (Q1, Q2, Q3)}) == 3
    assert exp["dbt"] == exp["forecast.forecasts"] == exp["forecast.evaluation"]


def test_nothing_is_stale_when_everything_is_published_from_the_same_content():
    exp = expected_fingerprints(prints(), [Q1, Q2, Q3], [Q1, Q2, Q3], RAW)
    assert stale_quarters(exp, published(exp, cohorts=2), {"forecast.forecasts": 2}) == []


def test_a_changed_quarter_makes_it_and_every_later_derived_partition_stale():
    before = expected_fingerprints(prints(), [Q1, Q2, Q3], [Q1, Q2, Q3], RAW)
    now = expected_fingerprints(prints(svr={Q1: "a", Q2: "B", Q3: "c"}), [Q1, Q2, Q3], [Q1, Q2, Q3], RAW)
    assert stale_quarters(now, published(before)) == [Q2, Q3]
    raw_only = {t: v for t, v in now.items() if t.startswith("raw.")}
    assert stale_quarters(raw_only, published(before)) == [Q2]


def test_a_run_that_died_half_way_leaves_its_unwritten_partitions_stale():
    exp = expected_fingerprints(prints(), [Q1, Q2, Q3], [Q1, Q2, Q3], RAW)
    state = [
        row
        for row in published(exp, cohorts=2)
        if not (row[0] == "forecast.forecasts" and row[2] == Q3 and row[1].startswith("1|"))
    ]
    assert stale_quarters(exp, state, {"forecast.forecasts": 2}) == [Q3]


def test_a_quarter_partial_in_the_baseline_is_stale_once_complete_even_with_identical_rows():
    """Export of 29 Dec: Q4 partial, never published. Export of 5 Jan: the same Q4 rows, complete."""
    dec = prints(svr={Q3: "c", Q4: "d"}, incomplete={"svr_rm": [Q4], "consumer": []})
    jan = prints(svr={Q3: "c", Q4: "d"})
    state = published(expected_fingerprints(dec, [Q3], [Q3], RAW))
    assert stale_quarters(expected_fingerprints(jan, [Q3, Q4], [Q3, Q4], RAW), state) == [Q4]


def test_completeness_is_per_sheet():
    fps = prints(incomplete={"svr_rm": [], "consumer": [Q3]})
    exp = expected_fingerprints(fps, [Q1, Q2, Q3], [Q1, Q2, Q3], RAW)
    assert Q3 not in exp["raw.consumer"] and Q3 in exp["raw.svr_rm"]
    done = expected_fingerprints(prints(), [Q1, Q2, Q3], [Q1, Q2, Q3], RAW)
    assert exp["dbt"][Q3] != done["dbt"][Q3]  # marts built on a partial Consumer quarter are not final


def test_a_reference_sheet_change_reaches_every_quarter():
    before = expected_fingerprints(prints(), [Q1, Q2, Q3], [Q1, Q2, Q3], RAW)
    now = expected_fingerprints(prints(region="r2"), [Q1, Q2, Q3], [Q1, Q2, Q3], RAW)
    assert stale_quarters(now, published(before)) == [Q1, Q2, Q3]
    gone = expected_fingerprints(prints(region=None) | {"references": {}}, [Q1], [Q1], RAW)
    assert gone["raw.region_map"] == {Q1: ABSENT}


def test_only_existing_partitions_are_expected():
    exp = expected_fingerprints(prints(), [Q1, Q2, Q3], [Q2, Q3], RAW)
    assert set(exp["raw.svr_rm"]) == {Q2, Q3} and set(exp["dbt"]) == {Q2, Q3}


def _sheets(rows, units, revenue):
    return {"rows_loaded": rows, "units_total": units, "revenue_total": revenue}


def test_shrink_beyond_the_share_names_the_sheet_and_the_figures():
    base = {"sha256": "b" * 64, "sheets": {"SVR-RM": _sheets(18979, 50000, 9e6), "Consumer": _sheets(100, 10, 1.0)}}
    now = {"sheets": {"SVR-RM": _sheets(0, 0, 0.0), "Consumer": _sheets(90, 9, 0.9)}}
    finding = shrinkage(now, base, 0.5)
    assert not finding.passed
    assert "SVR-RM rows loaded 18,979 -> 0 (-100%)" in finding.summary and "Consumer" not in finding.summary
    assert finding.metadata["drops"]["SVR-RM"]["rows_loaded"] == {"published": 18979, "now": 0}


def test_growth_and_a_first_snapshot_pass_the_shrink_guard():
    base = {"sha256": "b" * 64, "sheets": {"SVR-RM": _sheets(100, 10, 1.0)}}
    assert shrinkage({"sheets": {"SVR-RM": _sheets(160, 16, 1.6)}}, base, 0.5).passed
    assert shrinkage({"sheets": {"SVR-RM": _sheets(60, 6, 0.6)}}, base, 0.5).passed
    assert shrinkage({"sheets": {}}, None, 0.5).passed
