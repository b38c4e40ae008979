"""Exports shaped the way real sale-out systems write them, through `synoforecast ingest`
(issue 26): a distributor's European number text, ids typed as numbers behind a `00000`
format, month-first text dates, and hostile files. Each variant is the default sample
rewritten cell by cell with openpyxl, so the generator's own totals are the truth the
platform must load.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import openpyxl
import psycopg
import pytest

from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast_tests.e2e.test_cli import _env, run

AS_OF = dt.date(2026, 8, 20)
SPEC = SampleSpec(rows=3000, seed=7, start=dt.date(2023, 10, 1), quarters=12, as_of=AS_OF)
ID_SHEETS = {"SVR-RM": 4, "Consumer": 4, "C2": 2, "Top Customers": 1}  # sheet -> Customer ID column


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("exports") / "sample.xlsx"
    stats = write_sample_workbook(path, SPEC)
    return path, stats


def rewrite(source, target, *, european=False, padded_ids=False, month_first=False):
    """The sample as another system exports it; the file keeps the sample's export date."""
    wb = openpyxl.load_workbook(source)
    for name in ("SVR-RM", "Consumer"):
        ws = wb[name]
        for row in ws.iter_rows(min_row=2):
            if european:
                row[8].value = f"{row[8].value:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
            if month_first:
                row[0].value = row[0].value.strftime("%m/%d/%Y")
    if padded_ids:
        for name, column in ID_SHEETS.items():
            for row in wb[name].iter_rows(min_row=2):
                cell = row[column - 1]
                if cell.value and str(cell.value).isdigit():
                    width = len(str(cell.value))
                    cell.value, cell.number_format = int(cell.value), "0" * width
    wb.save(target)
    stamp = dt.datetime.combine(AS_OF, dt.time(18)).timestamp()
    os.utime(target, (stamp, stamp))
    return target


def dry_run(path):
    result = run("ingest", "--dry-run", "--json", str(path), timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout)


def test_european_number_text_loads_the_totals_the_export_holds(sample, tmp_path):
    path, stats = sample
    report = dry_run(rewrite(path, tmp_path / "eu.xlsx", european=True))
    svr = report["sheets"]["SVR-RM"]
    assert svr["revenue_total"] == pytest.approx(stats.sheets["SVR-RM"].revenue_total, abs=0.01)
    assert svr["rows_quarantined"] == 0
    assert svr["conventions"]["revenue_usd"].startswith("decimal comma")


def test_month_first_text_dates_keep_every_line_in_its_quarter(sample, tmp_path):
    path, stats = sample
    original = dry_run(path)["sheets"]["SVR-RM"]
    report = dry_run(rewrite(path, tmp_path / "us.xlsx", month_first=True))["sheets"]["SVR-RM"]
    assert report["quarters"] == original["quarters"] == stats.sheets["SVR-RM"].quarters
    assert (report["units_total"], report["rows_loaded"]) == (original["units_total"], original["rows_loaded"])
    assert report["conventions"]["sale_date"].startswith("month first (inferred")


def test_padded_number_ids_load_as_the_text_ids_through_the_whole_pipeline(sample, tmp_path, pg_url):
    """Ids typed as numbers lose no zero: every sheet's ids equal the text ids of the original
    export, and the top customers still match their SVR-RM lines."""
    path, _ = sample
    padded = rewrite(path, tmp_path / "ids.xlsx", padded_ids=True)
    result = run("ingest", str(padded), "--json", env=_env(tmp_path, SYNOFORECAST_WAREHOUSE_URL=pg_url), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    wb = openpyxl.load_workbook(path, read_only=True)
    complete = dt.datetime(2026, 7, 1)  # raw holds the complete quarters; 2026-Q3 runs at the export
    expected = {
        name: {
            str(r[col - 1])
            for r in wb[name].iter_rows(min_row=2, values_only=True)
            if r[col - 1] and (name == "Top Customers" or r[0] < complete)
        }
        for name, col in ID_SHEETS.items()
    }
    with psycopg.connect(pg_url) as conn:
        loaded = {
            name: {r[0] for r in conn.execute(f"select distinct customer_id from raw.{table}")}
            for name, table in {
                "SVR-RM": "svr_rm",
                "Consumer": "consumer",
                "C2": "c2",
                "Top Customers": "top_customers",
            }.items()
        }
        unmatched = conn.execute(
            "select count(*) from raw.top_customers t where not exists "
            "(select 1 from raw.svr_rm s where s.customer_id = t.customer_id)"
        ).fetchone()[0]
    assert any(i.startswith("0") for i in expected["SVR-RM"])  # the sample has ids with leading zeros
    assert loaded == expected
    assert unmatched == 0


def _stray_cell(source, target):
    wb = openpyxl.load_workbook(source)
    wb["SVR-RM"]["XFD1048576"] = "x"
    wb.save(target)


def _huge_date(source, target):
    wb = openpyxl.load_workbook(source)
    wb["SVR-RM"]["A5"] = -1e308
    wb.save(target)


def _nan_units(source, target):
    wb = openpyxl.load_workbook(source)
    wb["SVR-RM"]["H5"], wb["SVR-RM"]["H6"], wb["SVR-RM"]["H7"] = "NaN", "inf", 2**63
    wb.save(target)


@pytest.mark.parametrize(
    "break_it, code, expected",
    [(_stray_cell, 2, "reaches cell XFD1048576"), (_huge_date, 0, "SVR-RM!A5"), (_nan_units, 0, "SVR-RM!H5")],
)
def test_hostile_files_end_in_a_refusal_or_a_quarantine_never_a_crash(sample, tmp_path, break_it, code, expected):
    path, _ = sample
    target = tmp_path / "hostile.xlsx"
    break_it(path, target)
    result = run("ingest", "--dry-run", "--json", str(target), timeout=300)
    assert result.returncode == code, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "panicked" not in result.stderr
    report = json.loads(result.stdout)
    shown = report["error"] if code else json.dumps(report["sheets"]["SVR-RM"]["quarantined_cells"])
    assert expected in shown
