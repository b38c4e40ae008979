"""Quarter arithmetic shared by the reader, the assets and the CLI.

Partition keys are quarter-start dates (`2025-07-01`); Dagster cannot print a quarter
number, so the human label (`2025-Q3`) is derived here. A fiscal year that starts in
another month shifts both the grouping of months and the label (FY label = the
calendar year in which the fiscal year ends, as most sales teams count it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

KEY_FORMAT = "%Y-%m-%d"


def _check_month(fiscal_start_month: int) -> None:
    if not 1 <= fiscal_start_month <= 12:
        raise ValueError(f"fiscal_year_start_month must be 1..12, got {fiscal_start_month}")


def quarter_start(day: dt.date, fiscal_start_month: int = 1) -> dt.date:
    """First day of the (fiscal) quarter containing `day`."""
    _check_month(fiscal_start_month)
    offset = (day.month - fiscal_start_month) % 3
    month_index = day.year * 12 + (day.month - 1) - offset
    return dt.date(month_index // 12, month_index % 12 + 1, 1)


def add_quarters(start: dt.date, n: int) -> dt.date:
    month_index = start.year * 12 + (start.month - 1) + 3 * n
    return dt.date(month_index // 12, month_index % 12 + 1, 1)


def quarter_end(start: dt.date) -> dt.date:
    """Last day of the quarter that begins on `start`."""
    return add_quarters(start, 1) - dt.timedelta(days=1)


def quarter_label(start: dt.date, fiscal_start_month: int = 1) -> str:
    """`2025-Q3` for calendar quarters; `FY2026-Q1` style when the fiscal year is shifted."""
    _check_month(fiscal_start_month)
    months_into_year = (start.month - fiscal_start_month) % 12
    number = months_into_year // 3 + 1
    if fiscal_start_month == 1:
        return f"{start.year}-Q{number}"
    fiscal_year = start.year + (1 if start.month >= fiscal_start_month else 0)
    return f"FY{fiscal_year}-Q{number}"


def parse_key(key: str) -> dt.date:
    return dt.datetime.strptime(key, KEY_FORMAT).date()


def to_key(start: dt.date) -> str:
    return start.strftime(KEY_FORMAT)


def quarter_range(first: dt.date, last: dt.date) -> list[dt.date]:
    """Quarter starts from `first` to `last` inclusive (both quarter starts)."""
    out, current = [], first
    while current <= last:
        out.append(current)
        current = add_quarters(current, 1)
    return out


COMPLETE_TOLERANCE_DAYS = 7


def complete_quarters(starts: Iterable[dt.date], as_of: dt.date, last_data_day: dt.date | None = None) -> list[dt.date]:
    """Quarters a snapshot holds in full: ended before `as_of` (the export date) and,
    for the latest quarter, with data reaching its last week (`last_data_day`), so a
    late copy of an old export does not pass for complete. A partial quarter is never
    a training target nor scored as an actual."""
    ordered = sorted(set(starts))
    complete = [s for s in ordered if quarter_end(s) < as_of]
    if complete and complete[-1] == ordered[-1] and last_data_day is not None:
        if last_data_day < quarter_end(complete[-1]) - dt.timedelta(days=COMPLETE_TOLERANCE_DAYS):
            complete.pop()
    return complete
