"""Dates written as text, in the day/month order their column uses.

`07/04/2025` is 7 April to a European system and 4 July to an American one. Guessing day
first shifted a month-first sheet into another quarter wherever the day was 12 or less.
So a column's order is inferred from its unambiguous values (`14/07/2025` is day first,
`07/14/2025` month first); a column holding both is reported as a conflict (the reader
refuses it, naming two cells); a column with neither uses the configured order. ISO
spellings (`2025-07-14`, `2025/07/14`, `2025-07`), Excel serial numbers and date cells are
unambiguous and read as always.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

DAY_FIRST, MONTH_FIRST = "day_first", "month_first"
ORDERS = (DAY_FIRST, MONTH_FIRST)
EXCEL_EPOCH = dt.date(1899, 12, 30)
_SERIALS = (20000, 80000)  # 1954..2119: a number outside is not a date serial
_DMY = r"^(\d{1,2})[./-](\d{1,2})[./-](\d{4})$"


@dataclass(frozen=True)
class DateReading:
    values: pl.Series  # Date; null where a cell is not a date
    order: str  # DAY_FIRST or MONTH_FIRST
    unambiguous: int  # text cells whose numbers showed the order
    text_dates: int  # text cells written day/month/year in some order
    conflict: tuple[int, int] | None = None  # positions of a day-first and a month-first cell

    def describe(self) -> str:
        name = self.order.replace("_", " ")
        if not self.text_dates:
            return "date cells, ISO text or serial numbers (no day/month text to order)"
        if self.unambiguous:
            return f"{name} (inferred from {self.unambiguous:,} unambiguous text dates)"
        return f"{name} (no unambiguous text date: the configured order)"


def serial_to_date(values: pl.Series) -> pl.Series:
    """Excel serial numbers (days since 1899-12-30) in the plausible range, else null."""
    days = pl.when(values.is_between(*_SERIALS)).then(values)
    return pl.select(pl.lit(EXCEL_EPOCH) + pl.duration(days=days.cast(pl.Int64))).to_series()


def read_dates(text: pl.Series, default_order: str = DAY_FIRST) -> DateReading:
    """Parse a column of stripped text cells (calamine writes a date cell as `2025-07-14 00:00:00`)."""
    stripped = text.cast(pl.String)
    # the day/month pattern runs only when some cell starts like `14/` or `7.` (a 3-character
    # test is ~5x cheaper than the full pattern on a column of date cells)
    if not stripped.str.slice(0, 3).str.contains(r"^\d{1,2}[./-]").any():
        ordered = pl.Series([None] * len(stripped), dtype=pl.Date)
        return DateReading(_coalesce(ordered, stripped).alias(text.name), default_order, 0, 0)
    parts = stripped.str.extract_groups(_DMY)
    first = parts.struct.field("1").cast(pl.Int32)
    second = parts.struct.field("2").cast(pl.Int32)
    day_first_at = ((first > 12) & (second <= 12)).arg_true()
    month_first_at = ((second > 12) & (first <= 12)).arg_true()
    conflict = (int(day_first_at[0]), int(month_first_at[0])) if len(day_first_at) and len(month_first_at) else None
    if len(day_first_at) or len(month_first_at):
        order = DAY_FIRST if len(day_first_at) >= len(month_first_at) else MONTH_FIRST
    else:
        order = default_order
    day, month = (first, second) if order == DAY_FIRST else (second, first)
    year = parts.struct.field("3")
    ordered = (year + "-" + month.cast(pl.String).str.zfill(2) + "-" + day.cast(pl.String).str.zfill(2)).str.strptime(
        pl.Date, "%Y-%m-%d", strict=False
    )
    return DateReading(
        _coalesce(ordered, stripped).alias(text.name),
        order,
        len(day_first_at) + len(month_first_at),
        int(first.is_not_null().sum()),
        conflict,
    )


def _coalesce(ordered: pl.Series, stripped: pl.Series) -> pl.Series:
    """The first spelling that parses: day/month/year in the column's order, ISO, a date cell
    (first 10 characters), a year-month, an Excel serial number."""
    candidates = [
        ordered,
        stripped.str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False),
        stripped.str.strptime(pl.Date, "%Y/%m/%d", strict=False),
        (stripped + "-01").str.strptime(pl.Date, "%Y-%m-%d", strict=False),
        serial_to_date(stripped.cast(pl.Float64, strict=False)),
    ]
    return pl.select(pl.coalesce(candidates)).to_series()
