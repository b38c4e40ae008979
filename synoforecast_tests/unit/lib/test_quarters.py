"""Quarter arithmetic: calendar and fiscal quarters, labels, ranges and which quarters are complete."""

from __future__ import annotations

import datetime as dt

import pytest

from synoforecast.lib.quarters import (
    COMPLETE_TOLERANCE_DAYS,
    add_quarters,
    complete_quarters,
    parse_key,
    quarter_end,
    quarter_label,
    quarter_range,
    quarter_start,
    to_key,
)

D = dt.date


@pytest.mark.parametrize(
    "fiscal, day, expected",
    [
        (1, D(2025, 1, 1), D(2025, 1, 1)),
        (1, D(2025, 3, 31), D(2025, 1, 1)),
        (1, D(2025, 4, 1), D(2025, 4, 1)),
        (1, D(2025, 7, 14), D(2025, 7, 1)),
        (1, D(2025, 9, 30), D(2025, 7, 1)),
        (1, D(2025, 12, 31), D(2025, 10, 1)),
        (1, D(2024, 2, 29), D(2024, 1, 1)),
        # fiscal year starting in April: Apr-Jun, Jul-Sep, Oct-Dec, Jan-Mar
        (4, D(2025, 4, 1), D(2025, 4, 1)),
        (4, D(2025, 6, 30), D(2025, 4, 1)),
        (4, D(2025, 12, 31), D(2025, 10, 1)),
        (4, D(2026, 1, 1), D(2026, 1, 1)),
        (4, D(2026, 3, 31), D(2026, 1, 1)),
    ],
)
def test_quarter_start_calendar_and_fiscal(fiscal, day, expected):
    assert quarter_start(day, fiscal_start_month=fiscal) == expected


def test_fiscal_quarter_start_crosses_the_calendar_year():
    # fiscal year starting in February: quarters Nov-Jan, so January belongs to a quarter begun in November
    assert quarter_start(D(2026, 1, 15), fiscal_start_month=2) == D(2025, 11, 1)
    assert quarter_start(D(2025, 12, 1), fiscal_start_month=2) == D(2025, 11, 1)
    assert quarter_start(D(2026, 2, 1), fiscal_start_month=2) == D(2026, 2, 1)
    # fiscal year starting in December: Dec-Feb
    assert quarter_start(D(2026, 2, 28), fiscal_start_month=12) == D(2025, 12, 1)


@pytest.mark.parametrize(
    "start, expected",
    [(D(2025, 1, 1), "2025-Q1"), (D(2025, 4, 1), "2025-Q2"), (D(2025, 7, 1), "2025-Q3"), (D(2025, 10, 1), "2025-Q4")],
)
def test_calendar_labels(start, expected):
    assert quarter_label(start) == expected


@pytest.mark.parametrize(
    "start, expected",
    [
        (D(2025, 4, 1), "FY2026-Q1"),
        (D(2025, 7, 1), "FY2026-Q2"),
        (D(2025, 10, 1), "FY2026-Q3"),
        (D(2026, 1, 1), "FY2026-Q4"),
        (D(2026, 4, 1), "FY2027-Q1"),
        (D(2025, 1, 1), "FY2025-Q4"),
    ],
)
def test_fiscal_april_labels_name_the_year_the_fiscal_year_ends(start, expected):
    assert quarter_label(start, fiscal_start_month=4) == expected


@pytest.mark.parametrize("month", [0, 13, -1])
def test_invalid_fiscal_month_is_refused(month):
    with pytest.raises(ValueError, match="fiscal_year_start_month must be 1..12"):
        quarter_start(D(2025, 1, 1), fiscal_start_month=month)
    with pytest.raises(ValueError, match=str(month)):
        quarter_label(D(2025, 1, 1), fiscal_start_month=month)


@pytest.mark.parametrize(
    "start, n, expected",
    [
        (D(2025, 10, 1), 1, D(2026, 1, 1)),
        (D(2025, 1, 1), -1, D(2024, 10, 1)),
        (D(2025, 7, 1), 0, D(2025, 7, 1)),
        (D(2025, 7, 1), 6, D(2027, 1, 1)),
        (D(2025, 7, 1), -9, D(2023, 4, 1)),
        (D(2025, 11, 1), 1, D(2026, 2, 1)),  # fiscal quarter starts shift the same way
    ],
)
def test_add_quarters(start, n, expected):
    assert add_quarters(start, n) == expected


@pytest.mark.parametrize(
    "start, expected",
    [
        (D(2025, 1, 1), D(2025, 3, 31)),
        (D(2025, 4, 1), D(2025, 6, 30)),
        (D(2025, 7, 1), D(2025, 9, 30)),
        (D(2025, 10, 1), D(2025, 12, 31)),
        (D(2023, 12, 1), D(2024, 2, 29)),  # leap year February
    ],
)
def test_quarter_end(start, expected):
    assert quarter_end(start) == expected


def test_quarter_range_spans_a_year_boundary_inclusively():
    assert quarter_range(D(2024, 10, 1), D(2025, 7, 1)) == [D(2024, 10, 1), D(2025, 1, 1), D(2025, 4, 1), D(2025, 7, 1)]
    assert quarter_range(D(2025, 7, 1), D(2025, 7, 1)) == [D(2025, 7, 1)]
    assert quarter_range(D(2025, 7, 1), D(2025, 4, 1)) == []


def test_key_round_trip():
    assert to_key(D(2025, 7, 1)) == "2025-07-01"
    assert parse_key("2025-07-01") == D(2025, 7, 1)
    assert parse_key(to_key(D(1999, 10, 1))) == D(1999, 10, 1)


# --- complete_quarters -------------------------------------------------------------------------

Q1, Q2, Q3, Q4 = D(2025, 1, 1), D(2025, 4, 1), D(2025, 7, 1), D(2025, 10, 1)


def test_only_quarters_ended_before_as_of_are_complete():
    starts = [Q3, Q1, Q2, Q2, Q4]  # unordered, with a repeat
    assert complete_quarters(starts, as_of=D(2025, 10, 15)) == [Q1, Q2, Q3]
    # a quarter that ends on the as-of day is not yet over
    assert complete_quarters(starts, as_of=D(2025, 9, 30)) == [Q1, Q2]
    assert complete_quarters(starts, as_of=D(2025, 10, 1)) == [Q1, Q2, Q3]
    assert complete_quarters([], as_of=D(2025, 10, 1)) == []


def test_latest_quarter_dropped_when_data_stops_more_than_a_week_before_its_end():
    starts = [Q2, Q3]
    as_of = D(2025, 11, 20)  # a late copy of an old export
    boundary = quarter_end(Q3) - dt.timedelta(days=COMPLETE_TOLERANCE_DAYS)  # 2025-09-23
    assert COMPLETE_TOLERANCE_DAYS == 7
    assert complete_quarters(starts, as_of, last_data_day=D(2025, 9, 30)) == [Q2, Q3]
    assert complete_quarters(starts, as_of, last_data_day=boundary) == [Q2, Q3]
    assert complete_quarters(starts, as_of, last_data_day=boundary - dt.timedelta(days=1)) == [Q2]
    assert complete_quarters(starts, as_of, last_data_day=D(2025, 8, 1)) == [Q2]


def test_an_earlier_quarter_is_never_dropped():
    # only the latest quarter can be dropped, and only once
    assert complete_quarters([Q1, Q2, Q3], D(2025, 12, 1), last_data_day=D(2025, 2, 1)) == [Q1, Q2]
    # the latest quarter of the snapshot is still running: the latest complete one is kept even
    # though the data (which reaches into Q4) says nothing about the end of Q3
    assert complete_quarters([Q2, Q3, Q4], D(2025, 10, 20), last_data_day=D(2025, 10, 2)) == [Q2, Q3]
    assert complete_quarters([Q2, Q3, Q4], D(2025, 10, 20), last_data_day=D(2025, 6, 1)) == [Q2, Q3]


def test_without_last_data_day_nothing_is_dropped():
    assert complete_quarters([Q2, Q3], D(2025, 10, 1), last_data_day=None) == [Q2, Q3]
