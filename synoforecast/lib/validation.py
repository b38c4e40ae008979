"""pandera schemas for every sheet, derived from the contract, checked on loaded rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl
import pandera.polars as pa

from synoforecast.lib.contract import SheetSpec
from synoforecast.lib.warehouse import copy_query_frame

_DTYPES = {
    "date": pl.Date,
    "month": pl.Date,
    "text": pl.String,
    "id": pl.String,
    "int": pl.Int64,
    "decimal": pl.Float64,
}


def sheet_schema(spec: SheetSpec) -> pa.DataFrameSchema:
    columns = {
        c.field: pa.Column(_DTYPES[c.kind], nullable=not c.required, coerce=True)
        for c in spec.columns
    }
    columns["quarter_start"] = pa.Column(pl.Date, nullable=False, coerce=True)
    if spec.is_sales:
        columns["tier"] = pa.Column(pl.String, nullable=True, coerce=True,
                                    checks=pa.Check.isin(["T1", "T2", "T3"]))
    return pa.DataFrameSchema(columns, name=spec.name, strict=False)


def validate_sheet(spec: SheetSpec, frame: pl.DataFrame) -> list[str]:
    """Problems found (empty when the rows honour the contract): column, check, a few failing values."""
    try:
        sheet_schema(spec).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        problems = []
        for row in cases.head(20).iter_rows(named=True):
            problems.append(f"{row.get('column')}: {row.get('check')} (value {row.get('failure_case')!r})")
        return problems
    return []


@dataclass
class TableValidation:
    rows_checked: int = 0
    problems: list[str] = field(default_factory=list)


def validate_table(url: str, spec: SheetSpec, quarters: Sequence[dt.date], max_problems: int = 20) -> TableValidation:
    """Validate the rows loaded in raw.<table> for these quarters, one quarter at a time.

    A quarter at a time keeps memory to one quarter's rows whatever the range: a
    backfill over every quarter of a 1M-row sheet stays in tens of megabytes."""
    schema = {c.field: _DTYPES[c.kind] for c in spec.columns} | {"quarter_start": pl.Date}
    columns = list(schema)
    result = TableValidation()
    for quarter in quarters:
        rows = copy_query_frame(url, f"select {', '.join(columns)} from raw.{spec.table} where quarter_start = %s",
                                (quarter,), schema)
        result.rows_checked += rows.height
        if rows.height and len(result.problems) < max_problems:
            result.problems += [f"{quarter.isoformat()} {p}" for p in validate_sheet(spec, rows)]
    result.problems = result.problems[:max_problems]
    return result
