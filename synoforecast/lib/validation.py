"""pandera schemas for every sheet, derived from the contract, checked on loaded rows."""

from __future__ import annotations

import polars as pl
import pandera.polars as pa

from synoforecast.lib.contract import SheetSpec

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
