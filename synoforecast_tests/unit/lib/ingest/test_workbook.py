"""The workbook reader against the input contract (docs: /work/shared/workbook-contract.md).

Every workbook is built here with openpyxl in tmp_path, so each test states exactly the
cells it feeds the reader and the counts it expects back.
"""

from __future__ import annotations

import datetime as dt
import os
import zipfile
from pathlib import Path

import openpyxl
import pytest

from synoforecast.lib.ingest.workbook import Reference, WorkbookRefused, read_workbook
from synoforecast_dbt import PROJECT_DIR as DBT_PROJECT_DIR

SEEDS = DBT_PROJECT_DIR / "seeds"
HEADER = ["Date", "Region", "Country", "Customer ID", "Customer", "Model", "Tier", "Units", "Revenue (USD)", "Channel"]
JUL14 = dt.date(2025, 7, 14)


def sale(
    day=JUL14,
    *,
    region="EMEA",
    country="DE",
    cust="C001",
    customer="Acme GmbH",
    model="RS2423RP+",
    tier="T2",
    units=1,
    revenue=100.0,
    channel="Distributor",
) -> list:
    return [day, region, country, cust, customer, model, tier, units, revenue, channel]


def write_book(path: Path, sheets: dict[str, list[list]]) -> Path:
    """One worksheet per entry, rows appended from row 1 (None = empty cell, [] = empty row)."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def svr_book(path: Path, rows: list[list], header: list[str] = HEADER, **extra_sheets) -> Path:
    return write_book(path, {"SVR-RM": [header, *rows], **extra_sheets})


def contract_counts(report: dict) -> dict:
    """The counts the ingest report promises (diagnostic extras such as null_shares left out)."""
    return {k: v for k, v in report.items() if k not in ("null_shares", "quarantined_cells", "conventions")}


def reference() -> Reference:
    return Reference.from_seeds(SEEDS)


def read(path: Path, **kwargs):
    return read_workbook(path, reference=reference(), **kwargs)


def refusal(path: Path, **kwargs) -> WorkbookRefused:
    with pytest.raises(WorkbookRefused) as info:
        read(path, **kwargs)
    return info.value


def test_reference_from_seeds_knows_models_and_countries():
    ref = reference()
    assert ref.models["rs2423rp+"] == "RS2423RP+"
    assert ref.models["rs3621xs+"] == "RS3621xs+"
    assert ref.model_tiers["SA3610"] == "T1"
    assert ref.model_tiers["DS923+"] is None  # consumer models have no tier
    assert {"de", "germany", "jp", "japan"} <= ref.countries


# --- what real exports look like (accepted) -----------------------------------------------------


def test_title_rows_header_aliases_sheet_name_and_extra_sheet(tmp_path):
    path = write_book(
        tmp_path / "export.xlsx",
        {
            " svr-rm ": [
                ["Synology Sale-out Report - FY25 W32"],
                ["Filter: all regions"],
                [],
                ["date", "Region", "Country", "Cust ID", "Customer", "Model", "Tier", "Qty", "Rev (USD)", "Channel"],
                sale(units=3, revenue=300.0),
                sale(
                    dt.date(2025, 8, 2), country="FR", cust="C002", model="SA3610", tier="T1", units=1, revenue=5000.5
                ),
            ],
            "Pivot": [["Region", "Sum of Units"], ["EMEA", 4]],
        },
    )
    result = read(path)
    assert list(result.sheets) == ["SVR-RM"]
    assert result.ignored_sheets == ["Pivot"]
    sheet = result.sheets["SVR-RM"]
    assert sheet.header_row == 4
    frame = sheet.frame
    assert frame["sale_date"].to_list() == [JUL14, dt.date(2025, 8, 2)]
    assert frame["customer_id"].to_list() == ["C001", "C002"]
    assert frame["units"].to_list() == [3, 1]
    assert frame["revenue_usd"].to_list() == [300.0, 5000.5]
    assert frame["source_row"].to_list() == [5, 6]
    assert contract_counts(sheet.report()) == {
        "rows_read": 2,
        "rows_loaded": 2,
        "duplicates_removed": 0,
        "rows_quarantined": 0,
        "unknown_models": 0,
        "unknown_countries": 0,
        "units_total": 4,
        "revenue_total": 5300.5,
        "quarters": ["2025-Q3"],
    }


def test_header_found_below_leading_empty_rows_and_columns(tmp_path):
    """The title is in B2 and the table starts at B4: rows and cell letters still match Excel's."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "SVR-RM"
    ws.cell(2, 2, "Synology Sale-out Report")
    rows = [HEADER, *[sale(dt.date(2025, 7, 1) + dt.timedelta(days=d)) for d in range(60)]]
    rows[6][0] = "not a date"  # Excel row 4 + 6 = 10, column B
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            ws.cell(4 + i, 2 + j, value)
    wb.save(tmp_path / "offset.xlsx")
    sheet = read(tmp_path / "offset.xlsx").sheets["SVR-RM"]
    assert sheet.header_row == 4
    assert sheet.quarantine["cell"].to_list() == ["SVR-RM!B10"]
    assert sheet.frame["source_row"].min() == 5
    assert sheet.rows_loaded == 59


def test_numbers_stored_as_text_with_thousands_separators(tmp_path):
    path = svr_book(
        tmp_path / "text_numbers.xlsx",
        [
            sale(units="1,234", revenue="1,234.50"),
            sale(units=" 7 ", revenue="$2,000"),
            sale(units="-2", revenue="-1,000.25"),  # a return / credit note
            sale(units=5, revenue=10.5),
        ],
    )
    sheet = read(path).sheets["SVR-RM"]
    assert sheet.frame["units"].to_list() == [1234, 7, -2, 5]
    assert sheet.frame["revenue_usd"].to_list() == [1234.5, 2000.0, -1000.25, 10.5]
    assert sheet.totals() == (1244, 2244.75)


@pytest.mark.parametrize(
    "value",
    ["2025-07-14", "2025/07/14", "14.07.2025", dt.date(2025, 7, 14), dt.datetime(2025, 7, 14, 9, 30), 45852],
    ids=["iso", "slashes", "dotted", "excel-date", "excel-datetime", "excel-serial"],
)
def test_date_spellings_in_a_uniform_column(tmp_path, value):
    path = svr_book(tmp_path / "dates.xlsx", [sale(value, units=1), sale(value, units=2)])
    sheet = read(path).sheets["SVR-RM"]
    assert sheet.rows_quarantined == 0
    assert sheet.frame["sale_date"].to_list() == [JUL14, JUL14]
    assert sheet.frame["quarter_start"].to_list() == [dt.date(2025, 7, 1)] * 2


def test_date_spellings_mixed_in_one_column(tmp_path):
    spellings = [
        "2025-07-14",
        "2025/07/14",
        "14.07.2025",
        dt.date(2025, 7, 14),
        dt.datetime(2025, 7, 14, 23, 59),
        45852,
    ]
    path = svr_book(tmp_path / "mixed_dates.xlsx", [sale(v, units=i + 1) for i, v in enumerate(spellings)])
    sheet = read(path).sheets["SVR-RM"]
    assert sheet.rows_quarantined == 0
    assert sheet.frame["sale_date"].to_list() == [JUL14] * len(spellings)
    assert sheet.frame["units"].to_list() == [1, 2, 3, 4, 5, 6]


def test_blank_rows_and_grand_total_row_are_not_data(tmp_path):
    path = svr_book(
        tmp_path / "totals.xlsx",
        [
            sale(units=1, revenue=10.0),
            [],
            sale(cust="C002", units=2, revenue=20.0),
            [None] * 10,
            sale(cust="C003", units=3, revenue=30.0),
            [],
            ["Grand Total", None, None, None, None, None, None, 6, "60.00", None],
        ],
    )
    sheet = read(path).sheets["SVR-RM"]
    assert sheet.rows_read == 3
    assert sheet.rows_quarantined == 0
    assert sheet.frame["source_row"].to_list() == [2, 4, 6]
    assert sheet.totals() == (6, 60.0)


def test_total_label_in_a_text_column_is_skipped_too(tmp_path):
    path = svr_book(
        tmp_path / "total_in_customer.xlsx",
        [sale(units=4, revenue=40.0), [None, None, None, None, "TOTAL ", None, None, 4, 40.0, None]],
    )
    assert read(path).sheets["SVR-RM"].report()["rows_read"] == 1


def test_exact_duplicates_differing_only_in_case_and_spaces_are_removed_and_counted(tmp_path):
    path = svr_book(
        tmp_path / "dupes.xlsx",
        [
            sale(customer="Acme GmbH", units=2, revenue=100.5),
            sale(
                region="emea",
                country=" de ",
                cust="c001",
                customer="ACME   GmbH ",
                model="rs2423rp+ ",
                tier="t2",
                units=2,
                revenue="100.50",
                channel="DISTRIBUTOR",
            ),
            sale(customer="Acme GmbH", units=2, revenue=100.5),
            sale(customer="Acme GmbH", units=3, revenue=100.5),  # differs in units: not a duplicate
        ],
    )
    sheet = read(path).sheets["SVR-RM"]
    assert sheet.duplicates_removed == 2
    assert sheet.rows_read == 4
    assert sheet.rows_loaded == 2
    assert sheet.frame["source_row"].to_list() == [2, 5]  # the first spelling is the one kept
    assert sheet.frame["customer"].to_list() == ["Acme GmbH", "Acme GmbH"]
    assert sheet.totals() == (5, 201.0)


def test_model_spelling_is_canonicalised(tmp_path):
    path = svr_book(tmp_path / "models.xlsx", [sale(model=" rs3621XS+ ", tier="T1"), sale(model="sa3610", tier="T1")])
    sheet = read(path).sheets["SVR-RM"]
    assert sheet.frame["model"].to_list() == ["RS3621xs+", "SA3610"]
    assert sheet.unknown_models == 0


def test_unknown_model_and_unknown_country_are_kept_flagged_and_counted(tmp_path):
    path = svr_book(
        tmp_path / "unknown.xlsx",
        [
            sale(),
            sale(model="RS9999XS+", units=2),
            sale(country="Atlantis", units=3),
            sale(country="Germany", units=4),  # English name is known
            sale(country="jp", units=5),  # codes match case-insensitively
        ],
    )
    sheet = read(path).sheets["SVR-RM"]
    assert sheet.rows_loaded == 5
    assert sheet.unknown_models == 1
    assert sheet.unknown_countries == 1
    frame = sheet.frame
    assert frame.filter(frame["is_unknown_model"])["model"].to_list() == ["RS9999XS+"]
    assert frame.filter(frame["is_unknown_country"])["country"].to_list() == ["Atlantis"]
    assert sheet.report()["units_total"] == 15


def test_device_bays_and_region_map_sheets_extend_the_reference(tmp_path):
    path = svr_book(
        tmp_path / "ref_sheets.xlsx",
        [sale(model="RS9999XS+", country="Atlantis")],
        **{
            "Device Bays": [["Model", "Bays", "Tier", "Form Factor"], ["RS9999XS+", 24, "T1", "4U"]],
            "Region Map": [["Country", "Region"], ["Atlantis", "EMEA"]],
        },
    )
    result = read(path)
    assert result.sheets["SVR-RM"].unknown_models == 0
    assert result.sheets["SVR-RM"].unknown_countries == 0
    assert result.sheets["Device Bays"].frame["bays"].to_list() == [24]
    assert list(result.sheets) == ["SVR-RM", "Region Map", "Device Bays"]  # contract order


def test_customer_id_keeps_leading_zeros(tmp_path):
    path = svr_book(tmp_path / "ids.xlsx", [sale(cust="00412"), sale(cust="0007", units=2), sale(cust="A-12", units=3)])
    assert read(path).sheets["SVR-RM"].frame["customer_id"].to_list() == ["00412", "0007", "A-12"]


def test_customer_ids_typed_as_numbers_mixed_with_text_become_plain_text(tmp_path):
    path = svr_book(tmp_path / "mixed_ids.xlsx", [sale(cust="00412"), sale(cust=1001, units=2)])
    assert read(path).sheets["SVR-RM"].frame["customer_id"].to_list() == ["00412", "1001"]


def test_customer_id_column_of_numbers_is_read_as_text(tmp_path):
    path = svr_book(tmp_path / "numeric_ids.xlsx", [sale(cust=1001), sale(cust=2002, units=2)])
    assert read(path).sheets["SVR-RM"].frame["customer_id"].to_list() == ["1001", "2002"]


def test_xlsm_extension_is_accepted(tmp_path):
    rows = [sale(units=2, revenue=20.0), sale(cust="C002", units=3, revenue=30.0)]
    xlsx = read(svr_book(tmp_path / "book.xlsx", rows))
    xlsm = read(svr_book(tmp_path / "book.xlsm", rows))
    assert xlsm.file.endswith("book.xlsm")
    assert xlsm.sheets["SVR-RM"].report() == xlsx.sheets["SVR-RM"].report()
    assert xlsm.sheets["SVR-RM"].rows_loaded == 2


def test_optional_sheets_are_read(tmp_path):
    path = svr_book(
        tmp_path / "all_sheets.xlsx",
        [sale()],
        C2=[
            ["Month", "Customer ID", "Customer", "Region", "Service", "Plan", "Seats", "MRR (USD)"],
            ["2025-07", "00412", "Acme", "EMEA", "C2 Storage", "Advanced", 10, "1,000.00"],
            ["2025-08-01", "00412", "Acme", "EMEA", "C2 Storage", "Advanced", 12, 1200],
        ],
        **{"Top Customers": [["Cust ID", "Customer", "Segment", "Owner"], ["00412", "Acme", "Enterprise", "Kim"]]},
    )
    result = read(path)
    c2 = result.sheets["C2"]
    assert c2.frame["month"].to_list() == [dt.date(2025, 7, 1), dt.date(2025, 8, 1)]
    assert c2.report()["units_total"] == 22
    assert c2.report()["revenue_total"] == 2200.0
    assert result.sheets["Top Customers"].frame["customer_id"].to_list() == ["00412"]
    assert result.sheets["Top Customers"].frame["account_owner"].to_list() == ["Kim"]


# --- quarantine and the share above which the workbook is refused -------------------------------


def test_bad_rows_below_the_share_are_quarantined_with_cell_and_reason(tmp_path):
    rows = [
        sale(dt.date(2025, 7, 1) + dt.timedelta(days=i % 60), cust=f"C{i:03d}", units=1, revenue=10.0)
        for i in range(100)
    ]
    rows[3][0] = "31.02.2025"  # Excel row 5: not a date
    rows[40][3] = None  # Excel row 42: blank required Customer ID
    path = svr_book(tmp_path / "quarantine.xlsx", rows)
    sheet = read(path).sheets["SVR-RM"]
    q = sheet.quarantine.sort("source_row")
    assert q["source_row"].to_list() == [5, 42]
    assert q["cell"].to_list() == ["SVR-RM!A5", "SVR-RM!D42"]
    assert q["reason"].to_list() == ["Date is not a date: '31.02.2025'", "Customer ID is blank"]
    assert contract_counts(sheet.report()) == {
        "rows_read": 100,
        "rows_loaded": 98,
        "duplicates_removed": 0,
        "rows_quarantined": 2,
        "unknown_models": 0,
        "unknown_countries": 0,
        "units_total": 98,
        "revenue_total": 980.0,
        "quarters": ["2025-Q3"],
    }
    assert 5 not in sheet.frame["source_row"].to_list()


def test_bad_number_is_quarantined_with_its_column_letter(tmp_path):
    rows = [sale(cust=f"C{i:03d}") for i in range(100)]
    rows[0][7] = "2.5"  # Units is not a whole number (column H)
    rows[1][8] = "twelve"  # Revenue is not a number (column I)
    sheet = read(svr_book(tmp_path / "bad_numbers.xlsx", rows)).sheets["SVR-RM"]
    q = sheet.quarantine.sort("source_row")
    assert q["cell"].to_list() == ["SVR-RM!H2", "SVR-RM!I3"]
    assert q["reason"].to_list() == ["Units is not a whole number: '2.5'", "Revenue (USD) is not a number: 'twelve'"]
    assert sheet.rows_loaded == 98


def test_exactly_the_allowed_share_is_accepted(tmp_path):
    rows = [sale(cust=f"C{i:03d}") for i in range(50)]
    rows[10][0] = "soon"
    sheet = read(svr_book(tmp_path / "edge.xlsx", rows)).sheets["SVR-RM"]  # 1 of 50 = 2.0%
    assert sheet.rows_quarantined == 1
    assert sheet.rows_loaded == 49


def test_unparseable_rows_above_the_share_refuse_the_workbook_listing_cells(tmp_path):
    rows = [sale(cust=f"C{i:03d}") for i in range(20)]
    rows[3][0] = "not a date"  # row 5
    rows[7][0] = "2025-13-45"  # row 9
    rows[8][7] = "three"  # row 10, Units
    exc = refusal(svr_book(tmp_path / "too_many.xlsx", rows))
    message = str(exc)
    assert message.startswith("too_many.xlsx: ")
    assert "sheet 'SVR-RM' has 3 of 20 rows that cannot be parsed" in message
    assert "SVR-RM!A5, SVR-RM!A9, SVR-RM!H10" in message
    assert "Date is not a date: 'not a date'" in message
    assert exc.sheet == "SVR-RM"
    assert exc.cells == ["SVR-RM!A5", "SVR-RM!A9", "SVR-RM!H10"]


def test_quarantine_share_is_configurable(tmp_path):
    rows = [sale(cust=f"C{i:03d}") for i in range(20)]
    rows[3][0] = "not a date"
    path = svr_book(tmp_path / "configurable.xlsx", rows)
    assert read(path, quarantine_max_share=0.05).sheets["SVR-RM"].rows_quarantined == 1
    assert "1 of 20 rows" in str(refusal(path, quarantine_max_share=0.01))


# --- refusals ------------------------------------------------------------------------------------


def test_missing_required_column_names_sheet_column_and_found_columns(tmp_path):
    header = [h for h in HEADER if h != "Units"]
    rows = [[v for i, v in enumerate(sale()) if HEADER[i] != "Units"]]
    exc = refusal(write_book(tmp_path / "no_units.xlsx", {" svr-rm ": [["Report"], header, *rows]}))
    message = str(exc)
    assert message.startswith("no_units.xlsx: ")
    assert "sheet ' svr-rm '" in message
    assert "missing required column(s) 'Units'" in message
    for found in ("'Date'", "'Customer ID'", "'Revenue (USD)'", "'Channel'"):
        assert found in message
    assert "header row 2" in message
    assert exc.column == "Units"


def test_several_missing_columns_are_all_named(tmp_path):
    exc = refusal(svr_book(tmp_path / "thin.xlsx", [["2025-07-14", "C1"]], header=["Date", "Customer ID"]))
    for missing in ("'Country'", "'Model'", "'Units'", "'Revenue (USD)'"):
        assert missing in str(exc)
    assert "'Date'" in str(exc).split("columns", 2)[-1]


def test_missing_svr_rm_sheet_is_refused_naming_the_sheets_found(tmp_path):
    path = write_book(
        tmp_path / "no_svr.xlsx", {"Consumer": [HEADER, sale(model="DS923+", tier=None)], "Pivot": [["x"]]}
    )
    exc = refusal(path)
    assert "required sheet 'SVR-RM' is missing" in str(exc)
    assert "'Consumer'" in str(exc) and "'Pivot'" in str(exc)
    assert exc.sheet == "SVR-RM"


def test_truncated_file_is_refused(tmp_path):
    full = svr_book(tmp_path / "full.xlsx", [sale(cust=f"C{i}") for i in range(50)]).read_bytes()
    half = tmp_path / "copying.xlsx"
    half.write_bytes(full[: len(full) // 2])
    exc = refusal(half)
    assert str(exc).startswith("copying.xlsx: ")
    assert "truncated or corrupt" in str(exc)
    assert exc.file == str(half.resolve())


def test_text_file_renamed_xlsx_is_refused(tmp_path):
    fake = tmp_path / "export.xlsx"
    fake.write_text("Date,Units\n2025-07-14,1\n")
    exc = refusal(fake)
    assert str(exc).startswith("export.xlsx: ")
    assert "not a complete .xlsx zip container" in str(exc)


def test_zip_that_is_not_a_workbook_is_refused(tmp_path):
    fake = tmp_path / "archive.xlsx"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("notes.txt", "hello")
    exc = refusal(fake)
    assert str(exc).startswith("archive.xlsx: not a readable workbook")


def test_legacy_xls_is_refused(tmp_path):
    legacy = tmp_path / "old export.xls"
    legacy.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 4096)
    exc = refusal(legacy)
    assert str(exc).startswith("old export.xls: ")
    assert "legacy .xls" in str(exc)
    assert "save it as .xlsx" in str(exc)


def test_legacy_xls_content_under_an_xlsx_name_is_still_called_legacy(tmp_path):
    legacy = tmp_path / "renamed.xlsx"
    legacy.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 4096)
    assert "legacy .xls" in str(refusal(legacy))


def test_password_protected_workbook_is_refused(tmp_path):
    locked = tmp_path / "locked.xlsx"
    locked.write_bytes(
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 1000 + "EncryptionInfo".encode("utf-16-le") + b"\x00" * 1000
    )
    exc = refusal(locked)
    assert str(exc).startswith("locked.xlsx: ")
    assert "password-protected" in str(exc)
    assert "legacy" not in str(exc)


def test_other_extensions_and_missing_files_are_refused(tmp_path):
    real = svr_book(tmp_path / "book.xlsx", [sale()])
    csv_named = tmp_path / "book.csv"
    csv_named.write_bytes(real.read_bytes())
    assert "expected .xlsx or .xlsm, got '.csv'" in str(refusal(csv_named))
    assert "file not found" in str(refusal(tmp_path / "absent.xlsx"))


def test_refusal_is_a_value_error_naming_the_file():
    exc = WorkbookRefused("/nas/raw/snap.xlsx", "reason here", sheet="SVR-RM", column="Units", cells=["SVR-RM!A2"])
    assert isinstance(exc, ValueError)
    assert str(exc) == "snap.xlsx: reason here"
    assert (exc.file, exc.sheet, exc.column, exc.cells) == ("/nas/raw/snap.xlsx", "SVR-RM", "Units", ["SVR-RM!A2"])


# --- whole-workbook report, quarters and hashes ---------------------------------------------------


def _two_quarter_rows(last_day: dt.date) -> list[list]:
    return [
        sale(dt.date(2025, 4, 10), cust="00412", units=2, revenue="1,000.00"),
        sale(dt.date(2025, 6, 30), cust="C002", model="SA3610", tier="T1", units=1, revenue=5000.25),
        sale(dt.date(2025, 6, 30), cust="C002", model="SA3610", tier="T1", units=1, revenue=5000.25),  # duplicate
        sale(dt.date(2025, 7, 1), cust="C003", model="RS1234", units=4, revenue=400.0),  # unknown model
        sale(last_day, cust="C004", country="Atlantis", units=-1, revenue=-100.0),  # return, unknown country
        [],
        ["Grand Total", None, None, None, None, None, None, 7, 11300.5, None],
    ]


def _set_mtime(path: Path, when: dt.datetime) -> None:
    ts = when.replace(tzinfo=dt.UTC).timestamp()
    os.utime(path, (ts, ts))


def test_workbook_report_counts_exactly(tmp_path):
    path = svr_book(tmp_path / "snapshot.xlsx", _two_quarter_rows(dt.date(2025, 9, 29)))
    _set_mtime(path, dt.datetime(2025, 10, 20, 12))
    result = read(path)
    report = result.report()
    assert report["ok"] is True and report["error"] is None
    assert report["file"] == str(path.resolve())
    assert len(report["sha256"]) == 64
    assert contract_counts(report["sheets"]["SVR-RM"]) == {
        "rows_read": 5,
        "rows_loaded": 4,
        "duplicates_removed": 1,
        "rows_quarantined": 0,
        "unknown_models": 1,
        "unknown_countries": 1,
        "units_total": 6,
        "revenue_total": 6300.25,
        "quarters": ["2025-Q2", "2025-Q3"],
    }
    assert report["ignored_sheets"] == []
    assert result.quarters == [dt.date(2025, 4, 1), dt.date(2025, 7, 1)]
    assert result.last_data_day == dt.date(2025, 9, 29)
    assert report["complete_quarters"] == ["2025-Q2", "2025-Q3"]
    assert result.size_bytes == path.stat().st_size


def test_latest_quarter_not_complete_when_data_stops_early(tmp_path):
    path = svr_book(tmp_path / "early.xlsx", _two_quarter_rows(dt.date(2025, 9, 10)))
    _set_mtime(path, dt.datetime(2025, 11, 1, 12))  # a late copy of an old export
    assert read(path).report()["complete_quarters"] == ["2025-Q2"]


def test_quarter_still_running_at_export_is_not_complete(tmp_path):
    path = svr_book(tmp_path / "running.xlsx", _two_quarter_rows(dt.date(2025, 9, 29)))
    _set_mtime(path, dt.datetime(2025, 9, 30, 8))
    assert read(path).report()["complete_quarters"] == ["2025-Q2"]


def test_fiscal_year_labels(tmp_path):
    path = svr_book(tmp_path / "fiscal.xlsx", [sale(dt.date(2025, 3, 31)), sale(dt.date(2025, 4, 1), units=2)])
    result = read(path, fiscal_start_month=4)
    frame = result.sheets["SVR-RM"].frame
    assert frame["quarter_start"].to_list() == [dt.date(2025, 1, 1), dt.date(2025, 4, 1)]
    assert frame["quarter_label"].to_list() == ["FY2025-Q4", "FY2026-Q1"]
    assert result.sheets["SVR-RM"].quarters == ["FY2025-Q4", "FY2026-Q1"]


def test_quarter_hashes_ignore_row_order_and_change_only_where_content_changed(tmp_path):
    rows = [
        sale(dt.date(2025, 5, 1), cust="A"),
        sale(dt.date(2025, 5, 2), cust="B"),
        sale(dt.date(2025, 8, 1), cust="C"),
        sale(dt.date(2025, 8, 2), cust="D"),
    ]
    base = read(svr_book(tmp_path / "a.xlsx", rows)).quarter_hashes
    shuffled = read(svr_book(tmp_path / "b.xlsx", [rows[3], [], rows[1], rows[2], rows[0]])).quarter_hashes
    changed_rows = [list(r) for r in rows]
    changed_rows[3][7] = 99
    changed = read(svr_book(tmp_path / "c.xlsx", changed_rows)).quarter_hashes
    assert sorted(base) == ["2025-04-01", "2025-07-01"]
    assert shuffled == base
    assert changed["2025-04-01"] == base["2025-04-01"]
    assert changed["2025-07-01"] != base["2025-07-01"]


def test_header_only_svr_rm_sheet_is_refused_naming_the_sheet(tmp_path):
    exc = refusal(svr_book(tmp_path / "empty.xlsx", []))
    assert exc.sheet == "SVR-RM"
    assert "required sheet 'SVR-RM' has a header row (row 1) but no data rows" in str(exc)


def test_header_only_optional_sheet_is_accepted_as_empty(tmp_path):
    path = svr_book(tmp_path / "book.xlsx", [sale()], Consumer=[HEADER])
    assert read(path).sheets["Consumer"].rows_read == 0


def test_hidden_sheets_are_ignored_and_listed_even_with_a_contract_name(tmp_path):
    import openpyxl as _openpyxl

    path = svr_book(tmp_path / "hidden.xlsx", [sale()])
    wb = _openpyxl.load_workbook(path)
    helper = wb.create_sheet("Lookup")
    helper.append(["x"])
    helper.sheet_state = "hidden"
    old = wb.create_sheet("Consumer")
    old.append(["Date", "Country", "Customer ID", "Model", "Units", "Revenue (USD)"])
    old.sheet_state = "hidden"
    wb.save(path)
    report = read(path).report()
    # names exactly as in the workbook; hidden ones flagged in their own field (issue 12)
    assert {"Lookup", "Consumer"} <= set(report["ignored_sheets"])
    assert set(report["hidden_sheets"]) == {"Lookup", "Consumer"}
    assert not [n for n in report["ignored_sheets"] if "(hidden)" in n]
    assert "Consumer" not in report["sheets"]


def test_configured_aliases_extend_the_accepted_header_spellings(tmp_path):
    from synoforecast.lib.ingest.contract import AliasTable

    path = tmp_path / "german.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "SVR-RM"
    ws.append(["Datum", "Land", "Kundennummer", "Modell", "Menge", "Umsatz (USD)"])
    ws.append([dt.date(2025, 7, 14), "DE", "00412", "RS822+", 3, 1500.0])
    wb.save(path)
    extra = {
        "SVR-RM": {
            "Date": ["Datum"],
            "Country": ["Land"],
            "Customer ID": ["Kundennummer"],
            "Model": ["Modell"],
            "Units": ["Menge"],
            "Revenue (USD)": ["Umsatz (USD)"],
        }
    }
    with pytest.raises(WorkbookRefused):
        read(path)
    report = read_workbook(path, reference=reference(), aliases=AliasTable(extra=extra)).report()
    assert report["sheets"]["SVR-RM"]["units_total"] == 3


# --- guard rails: warehouse column types, plausible dates, reader crashes (issue 11) --------------


def test_units_beyond_the_integer_column_are_quarantined_with_the_cell(tmp_path):
    rows = [sale(units=3_000_000_000)] + [sale(cust=f"C{i}") for i in range(60)]
    result = read(svr_book(tmp_path / "big.xlsx", rows))
    q = result.sheets["SVR-RM"].quarantine
    assert q["cell"].to_list() == ["SVR-RM!H2"]
    assert "Units '3000000000' is out of range for the warehouse column (integer" in q["reason"][0]
    assert result.sheets["SVR-RM"].frame["units"].max() == 1


def test_out_of_range_values_above_the_share_refuse_like_a_real_run_would(tmp_path):
    exc = refusal(svr_book(tmp_path / "big.xlsx", [sale(units=3_000_000_000), sale(cust="B")]))
    assert exc.cells == ["SVR-RM!H2"] and "out of range for the warehouse column" in str(exc)


def test_revenue_beyond_numeric_18_2_is_quarantined(tmp_path):
    rows = [sale(revenue=1e17)] + [sale(cust=f"C{i}") for i in range(60)]
    q = read(svr_book(tmp_path / "rev.xlsx", rows)).sheets["SVR-RM"].quarantine
    assert q["cell"].to_list() == ["SVR-RM!I2"] and "numeric(18,2)" in q["reason"][0]


@pytest.mark.parametrize(
    "day, cell_text, why",
    [
        (
            dt.date(9999, 12, 31),
            "9999-12-31",
            "is after the export date 2025-10-20: a sale cannot be dated after its export",
        ),
        (dt.date(2025, 10, 21), "2025-10-21", "is after the export date 2025-10-20"),
        (dt.date(1900, 3, 1), "1900-03-01", "is before 2000-01-01, the earliest sale date allowed"),
        (dt.date(1999, 12, 31), "1999-12-31", "is before 2000-01-01"),
    ],
)
def test_implausible_dates_are_quarantined_not_crashing(tmp_path, day, cell_text, why):
    rows = [sale(day=day)] + [sale(cust=f"C{i}") for i in range(60)]
    path = svr_book(tmp_path / "dates.xlsx", rows)
    _set_mtime(path, dt.datetime(2025, 10, 20, 12))
    result = read(path)
    q = result.sheets["SVR-RM"].quarantine
    assert q["cell"].to_list() == ["SVR-RM!A2"]
    assert why in q["reason"][0] and cell_text in q["reason"][0]
    assert [q.isoformat() for q in result.quarters] == ["2025-07-01"]


def test_the_export_day_itself_is_a_sale_day(tmp_path):
    path = svr_book(tmp_path / "today.xlsx", [sale(day=dt.date(2025, 10, 20))])
    _set_mtime(path, dt.datetime(2025, 10, 20, 12))
    assert read(path).sheets["SVR-RM"].rows_quarantined == 0


def test_plausible_date_range_is_configurable(tmp_path):
    rows = [sale(day=dt.date(1995, 1, 2))] + [sale(cust=f"C{i}") for i in range(60)]
    result = read(svr_book(tmp_path / "old.xlsx", rows), earliest_date=dt.date(1990, 1, 1))
    assert result.sheets["SVR-RM"].rows_quarantined == 0


def date_panic_workbook(path, good_rows: int = 1):
    """An SVR-RM sheet whose second date cell made the Excel reader panic (-1e308 as a date)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "SVR-RM"
    ws.append(HEADER)
    ws.append(sale())
    ws.append(sale(cust="B"))
    for i in range(good_rows - 1):
        ws.append(sale(cust=f"G{i}"))
    ws.cell(3, 1).value = -1e308
    ws.cell(3, 1).number_format = "yyyy-mm-dd"
    wb.save(path)
    return path


def test_a_date_cell_no_date_can_hold_is_quarantined_without_a_panic(tmp_path, capfd):
    """-1e308 under a date format made calamine panic (and print the panic): the row is now
    quarantined like any cell that is not a date, and nothing is printed."""
    path = date_panic_workbook(tmp_path / "panic.xlsx", good_rows=60)
    sheet = read(path).sheets["SVR-RM"]
    assert sheet.rows_loaded == 60
    assert sheet.quarantine["cell"].to_list() == ["SVR-RM!A3"]
    assert sheet.quarantine["reason"][0] == "Date is not a date: '-1e+308'"
    assert "panick" not in capfd.readouterr().err


def test_an_io_error_while_reading_is_not_blamed_on_the_workbook(tmp_path, monkeypatch):
    import synoforecast.lib.ingest.workbook as workbook

    path = svr_book(tmp_path / "ok.xlsx", [sale()])

    def broken(*_a, **_k):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(workbook, "_load_cells", broken)
    with pytest.raises(OSError):
        read(path)


def test_quarter_digests_are_canonical_bytes_not_a_library_hash(tmp_path):
    """The digest is sha256 over the documented canonical text of the sorted rows."""
    import hashlib

    result = read(svr_book(tmp_path / "one.xlsx", [sale(units=2, revenue="1,000.50")]))
    line = "\x1f".join(
        ["2025-07-14", "EMEA", "DE", "C001", "Acme GmbH", "RS2423RP+", "T2", "2", "100050", "Distributor", "f", "f"]
    )
    assert result.sheets["SVR-RM"].quarter_digests() == {"2025-07-01": hashlib.sha256(line.encode()).hexdigest()[:32]}


def test_completeness_is_judged_per_sheet(tmp_path):
    """SVR-RM runs to the end of Q3, Consumer stops in August: Q3 is complete for one only."""
    path = svr_book(tmp_path / "book.xlsx", [sale(dt.date(2025, 9, 29))], Consumer=[HEADER, sale(dt.date(2025, 8, 1))])
    _set_mtime(path, dt.datetime(2025, 10, 20, 12))
    result = read(path)
    assert result.complete_quarters == [dt.date(2025, 7, 1)]
    assert result.fingerprints()["incomplete"] == {"svr_rm": [], "consumer": ["2025-07-01"]}
