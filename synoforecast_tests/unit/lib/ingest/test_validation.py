"""pandera schemas derived from the contract: what they accept and what they report."""

from __future__ import annotations

import datetime as dt

import polars as pl

from synoforecast.lib.ingest.contract import SHEETS_BY_TABLE
from synoforecast.lib.ingest.validation import sheet_schema, validate_sheet

SVR = SHEETS_BY_TABLE["svr_rm"]
JUL = dt.date(2025, 7, 1)


def svr_frame(**overrides) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "sale_date": [dt.date(2025, 7, 14), dt.date(2025, 8, 2), dt.date(2025, 9, 30)],
            "region": ["EMEA", None, "APAC"],
            "country": ["DE", "FR", "JP"],
            "customer_id": ["00412", "C2", "C3"],
            "customer": ["Acme", None, "Kaisha"],
            "model": ["RS2423RP+", "SA3610", "RS9999"],
            "tier": ["T2", "T1", None],
            "units": [3, -1, 2],
            "revenue_usd": [1234.5, -500.0, 10.0],
            "channel": ["Distributor", None, "Direct"],
            "quarter_start": [JUL, JUL, JUL],
            "source_row": [2, 3, 4],  # extra columns are allowed
        }
    )
    return frame.with_columns(**{k: pl.Series(k, v) for k, v in overrides.items()})


def test_schema_covers_every_contract_column():
    schema = sheet_schema(SVR)
    assert set(schema.columns) == {c.field for c in SVR.columns} | {"quarter_start"}
    assert schema.columns["customer_id"].nullable is False
    assert schema.columns["region"].nullable is True


def test_a_valid_frame_has_no_problems():
    assert validate_sheet(SVR, svr_frame()) == []


def test_null_customer_id_and_unknown_tier_are_reported():
    frame = svr_frame(customer_id=["00412", None, "C3"], tier=["T2", "T9", None])
    problems = validate_sheet(SVR, frame)
    assert len(problems) == 2
    assert any(p.startswith("customer_id: not_nullable") and "None" in p for p in problems)
    assert any(p.startswith("tier: isin") and "'T9'" in p for p in problems)


def test_missing_quarter_start_is_reported():
    problems = validate_sheet(SVR, svr_frame(quarter_start=[JUL, None, JUL]))
    assert problems and all(p.startswith("quarter_start: not_nullable") for p in problems)


def test_c2_schema_does_not_check_tiers():
    c2 = SHEETS_BY_TABLE["c2"]
    frame = pl.DataFrame(
        {
            "month": [JUL],
            "customer_id": ["00412"],
            "customer": [None],
            "region": [None],
            "service": ["C2 Storage"],
            "plan": [None],
            "seats": [10],
            "mrr_usd": [99.5],
            "quarter_start": [JUL],
        }
    )
    assert validate_sheet(c2, frame) == []
    assert "tier" not in sheet_schema(c2).columns
    assert validate_sheet(c2, frame.with_columns(service=pl.lit(None, dtype=pl.String))) != []
