"""What goes in is what the export says (issue 26): workbooks shaped the way real sale-out
systems write them, built here with openpyxl, read by the real reader.

European number text, ids typed as numbers behind a `00000` format, month-first text
dates, and hostile files (a stray cell at XFD1048576, a zip bomb, NaN and 2**63 in Units,
NUL characters, overlong ids): each is read as the export means it, quarantined with its
cell, or refused naming the file, sheet and cell. Never a crash, a panic or a wrong number.
"""

from __future__ import annotations

import datetime as dt
import zipfile

import openpyxl
import pytest

from synoforecast.lib.ingest.xlsx_parts import Limits
from synoforecast_tests.unit.lib.ingest.test_workbook import HEADER, JUL14, _set_mtime, read, refusal, sale, svr_book


def european(value: float) -> str:
    """1234.5 -> '1.234,50' as a German ERP writes it."""
    return f"{value:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")


# -- numbers ---------------------------------------------------------------------------------


def test_european_number_text_is_read_in_its_convention_not_1000x_too_small(tmp_path):
    revenues = [27673.35, 1234.5, 950.0, 1000.0, 12.25]
    rows = [sale(cust=f"C{i}", revenue=european(r)) for i, r in enumerate(revenues)]
    sheet = read(svr_book(tmp_path / "eu.xlsx", rows)).sheets["SVR-RM"]
    assert sheet.frame["revenue_usd"].to_list() == revenues
    assert sheet.rows_quarantined == 0
    assert sheet.conventions["revenue_usd"].startswith("decimal comma")


def test_a_european_column_whose_only_values_are_ambiguous_groups_still_needs_an_unambiguous_one(tmp_path):
    """`1.234` alone keeps today's reading; one `950,50` in the column settles it as thousands."""
    alone = read(svr_book(tmp_path / "amb.xlsx", [sale(revenue="1.234")])).sheets["SVR-RM"]
    assert alone.frame["revenue_usd"].to_list() == [1.23]
    assert "no unambiguous value" in alone.conventions["revenue_usd"]
    settled = read(svr_book(tmp_path / "settled.xlsx", [sale(revenue="1.234"), sale(cust="B", revenue="950,50")]))
    assert settled.sheets["SVR-RM"].frame["revenue_usd"].to_list() == [1234.0, 950.5]


def test_american_text_and_accounting_brackets(tmp_path):
    rows = [
        sale(revenue="1,234.50"),
        sale(cust="B", revenue="(1,234.00)"),
        sale(cust="C", revenue="0.75"),
        sale(cust="D", units="(2)", revenue="-5.00"),
    ]
    frame = read(svr_book(tmp_path / "us.xlsx", rows)).sheets["SVR-RM"].frame
    assert frame["revenue_usd"].to_list() == [1234.5, -1234.0, 0.75, -5.0]
    assert frame["units"].to_list() == [1, 1, 1, -2]


def test_a_column_mixing_the_conventions_is_refused_naming_two_cells(tmp_path):
    rows = [sale(revenue="1.234,50"), sale(cust="B", revenue="17.5"), sale(cust="C", revenue="2.000,00")]
    exc = refusal(svr_book(tmp_path / "mixed.xlsx", rows))
    assert exc.sheet == "SVR-RM" and exc.column == "Revenue (USD)"
    assert exc.cells == ["SVR-RM!I3", "SVR-RM!I2"]
    assert "mixes number conventions" in str(exc) and "'17.5' is written with a decimal point" in str(exc)


def test_typed_numbers_in_a_decimal_comma_column_keep_their_value(tmp_path):
    """A number cell among European text arrives as `17.5` from the reader: it is 17.5, not a
    contradiction and not 175."""
    rows = [sale(revenue="1.234,50"), sale(cust="B", revenue=17.5), sale(cust="C", revenue=1.234)]
    frame = read(svr_book(tmp_path / "eu-typed.xlsx", rows)).sheets["SVR-RM"].frame
    assert frame["revenue_usd"].to_list() == [1234.5, 17.5, 1.23]


def test_the_convention_is_recorded_per_column(tmp_path):
    rows = [sale(units="1,200", revenue=european(5000.0)), sale(cust="B", units=3, revenue=european(10.5))]
    result = read(svr_book(tmp_path / "eu.xlsx", rows))
    conventions = result.report()["sheets"]["SVR-RM"]["conventions"]
    assert conventions["revenue_usd"].startswith("decimal comma")
    assert conventions["units"] == "decimal point, ',' groups thousands (no unambiguous value: the default)"
    assert conventions["sale_date"].startswith("date cells")
    assert result.sheets["SVR-RM"].frame["units"].to_list() == [1200, 3]


@pytest.mark.parametrize("value", ["NaN", "inf", "-Infinity", "1e999", 2**63, float(2**63), "9223372036854775808"])
def test_non_finite_or_huge_units_are_quarantined_with_the_cell_not_a_crash(tmp_path, value):
    rows = [sale(units=value)] + [sale(cust=f"C{i}") for i in range(60)]
    sheet = read(svr_book(tmp_path / "units.xlsx", rows)).sheets["SVR-RM"]
    assert sheet.quarantine["cell"].to_list() == ["SVR-RM!H2"]
    assert sheet.rows_loaded == 60


# -- ids ---------------------------------------------------------------------------------------


def padded_id_book(path, ids: list, number_format: str = "00000"):
    """SVR-RM lines whose number ids are shown through `number_format`, as Excel does it."""
    svr_book(path, [sale(cust=cust, units=i + 1) for i, cust in enumerate(ids)])
    wb = openpyxl.load_workbook(path)
    for row, cust in enumerate(ids, start=2):
        if isinstance(cust, (int, float)):
            wb["SVR-RM"].cell(row, 4).number_format = number_format
    wb.save(path)
    return path


def test_ids_typed_as_numbers_read_as_excel_displays_them(tmp_path):
    path = padded_id_book(tmp_path / "ids.xlsx", [3208, "03208", 412, 12345, "A-7", 3208.0])
    assert read(path).sheets["SVR-RM"].frame["customer_id"].to_list() == [
        "03208",
        "03208",
        "00412",
        "12345",
        "A-7",
        "03208",
    ]


def test_padding_with_literal_text_and_the_same_customer_in_top_customers(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "SVR-RM"
    ws.append(HEADER)
    ws.append(sale(cust=3208))
    ws.cell(2, 4).number_format = "000000"
    top = wb.create_sheet("Top Customers")
    top.append(["Customer ID", "Customer"])
    top.append([3208, "Acme GmbH"])
    top.cell(2, 1).number_format = '"C-"000000'
    wb.save(tmp_path / "top.xlsx")
    result = read(tmp_path / "top.xlsx")
    assert result.sheets["SVR-RM"].frame["customer_id"].to_list() == ["003208"]
    assert result.sheets["Top Customers"].frame["customer_id"].to_list() == ["C-003208"]


def test_a_whole_number_id_never_gets_a_decimal_point(tmp_path):
    path = svr_book(tmp_path / "plain.xlsx", [sale(cust=1001.0), sale(cust=20000000000.0, units=2)])
    assert read(path).sheets["SVR-RM"].frame["customer_id"].to_list() == ["1001", "20000000000"]


# -- dates --------------------------------------------------------------------------------------


def test_month_first_text_dates_are_read_month_first(tmp_path):
    rows = [sale(day="07/04/2025"), sale(cust="B", day="07/14/2025"), sale(cust="C", day="12/31/2025")]
    path = svr_book(tmp_path / "us-dates.xlsx", rows)
    _set_mtime(path, dt.datetime(2026, 1, 5, 12))
    sheet = read(path).sheets["SVR-RM"]
    assert sheet.frame["sale_date"].to_list() == [dt.date(2025, 7, 4), dt.date(2025, 7, 14), dt.date(2025, 12, 31)]
    assert sheet.conventions["sale_date"].startswith("month first (inferred")


def test_day_first_is_inferred_too_and_the_configured_order_decides_when_nothing_is_unambiguous(tmp_path):
    rows = [sale(day="07/04/2025"), sale(cust="B", day="14/07/2025")]
    assert read(svr_book(tmp_path / "eu.xlsx", rows)).sheets["SVR-RM"].frame["sale_date"].to_list() == [
        dt.date(2025, 4, 7),
        JUL14,
    ]
    vague = svr_book(tmp_path / "vague.xlsx", [sale(day="07/04/2025"), sale(cust="B", day="08/05/2025")])
    day_first = read(vague).sheets["SVR-RM"]
    assert day_first.frame["sale_date"].to_list() == [dt.date(2025, 4, 7), dt.date(2025, 5, 8)]
    assert "configured order" in day_first.conventions["sale_date"]
    month_first = read(vague, date_order="month_first").sheets["SVR-RM"]
    assert month_first.frame["sale_date"].to_list() == [dt.date(2025, 7, 4), dt.date(2025, 8, 5)]


def test_a_column_with_both_orders_is_refused_naming_cells(tmp_path):
    rows = [sale(day="14/07/2025"), sale(cust="B", day="07/15/2025")]
    exc = refusal(svr_book(tmp_path / "both.xlsx", rows))
    assert exc.cells == ["SVR-RM!A2", "SVR-RM!A3"] and "mixes day/month orders" in str(exc)


# -- hostile files --------------------------------------------------------------------------------


def stray_cell_book(path, ref: str):
    """One SVR-RM line and a stray value at `ref`, as openpyxl (and Excel) write it."""
    svr_book(path, [sale()])
    wb = openpyxl.load_workbook(path)
    wb["SVR-RM"][ref] = "x"
    wb.save(path)
    return path


def test_one_stray_cell_at_the_last_excel_cell_is_refused_naming_it_not_an_abort(tmp_path):
    exc = refusal(stray_cell_book(tmp_path / "stray.xlsx", "XFD1048576"))
    assert exc.sheet == "SVR-RM" and exc.cells == ["SVR-RM!XFD1048576"]
    assert "reaches cell XFD1048576" in str(exc)


def test_a_stray_cell_within_the_limits_is_refused_too_not_read_into_600_mb(tmp_path):
    """J1048576 keeps the extent under the cell limit (10.5M cells), but a 4 KB file whose
    extent is empty but for 21 cells is a stray cell, not an export."""
    exc = refusal(stray_cell_book(tmp_path / "tall.xlsx", "J1048576"))
    assert exc.cells == ["SVR-RM!J1048576"] and "holds only 21 cells" in str(exc)


def test_a_stray_cell_the_dimension_element_does_not_declare_is_found_by_the_scan(tmp_path):
    path = svr_book(tmp_path / "ok.xlsx", [sale()])
    lying = tmp_path / "lying.xlsx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(lying, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(
                    b"</sheetData>",
                    b'<row r="900000"><c r="ZZ900000" t="inlineStr"><is><t>x</t></is></c></row></sheetData>',
                )
            dst.writestr(info, data)
    exc = refusal(lying)
    assert exc.cells == ["SVR-RM!ZZ900000"]


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path):
    """200,000 identical rows (100 MB of XML) in a few hundred KB: refused from the zip's
    directory, with the default limits, before any of it is decompressed."""
    path = svr_book(tmp_path / "bomb.xlsx", [sale()])
    with zipfile.ZipFile(path) as src:
        parts = {i.filename: src.read(i.filename) for i in src.infolist()}
    row = b"<row>" + b'<c t="inlineStr"><is><t>same value</t></is></c>' * 10 + b"</row>"  # no r=: identical bytes
    rows = row * 200_000
    sheet = parts["xl/worksheets/sheet1.xml"]
    parts["xl/worksheets/sheet1.xml"] = sheet.replace(b"</sheetData>", rows + b"</sheetData>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for name, data in parts.items():
            dst.writestr(name, data)
    exc = refusal(path)
    assert "part xl/worksheets/sheet1.xml unpacks" in str(exc) and "setting reader_max_compression_ratio" in str(exc)


def test_a_workbook_beyond_the_size_limits_is_refused_with_the_setting_to_change(tmp_path):
    path = svr_book(tmp_path / "big.xlsx", [sale(cust=f"C{i}") for i in range(50)])
    exc = refusal(path, limits=Limits(max_sheet_cells=100))
    assert "51 rows by 10 columns (510 cells)" in str(exc) and "reader_max_sheet_cells" in str(exc)
    exc = refusal(path, limits=Limits(max_uncompressed_bytes=1000))
    assert "setting reader_max_uncompressed_mb" in str(exc)
    both = svr_book(
        tmp_path / "both.xlsx",
        [sale(cust=f"C{i}") for i in range(50)],
        Consumer=[HEADER, *[sale(cust=f"C{i}") for i in range(50)]],
    )
    assert read(both, limits=Limits(max_workbook_cells=1020)).sheets["Consumer"].rows_loaded == 50
    exc = refusal(both, limits=Limits(max_workbook_cells=1000))
    assert "span 1,020 cells ('SVR-RM' 510, 'Consumer' 510)" in str(exc) and "reader_max_workbook_cells" in str(exc)


def test_nul_characters_and_overlong_ids_are_quarantined_with_their_cell(tmp_path):
    rows = [sale(cust="x_x0000_y"), sale(cust="Z" * 100_000), sale(customer="Acme_x0000_")] + [
        sale(cust=f"C{i}") for i in range(200)
    ]
    sheet = read(svr_book(tmp_path / "text.xlsx", rows)).sheets["SVR-RM"]
    q = dict(zip(sheet.quarantine["cell"].to_list(), sheet.quarantine["reason"].to_list()))
    assert set(q) == {"SVR-RM!D2", "SVR-RM!D3", "SVR-RM!E4"}
    assert "NUL character" in q["SVR-RM!D2"] and "NUL character" in q["SVR-RM!E4"]
    assert "above the 100" in q["SVR-RM!D3"] and len(q["SVR-RM!D3"]) < 200
    assert not sheet.frame["customer_id"].str.contains("\x00", literal=True).any()
