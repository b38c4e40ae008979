"""SVR-RM read in a worker process gives exactly what the serial reader gives: the same
bytes for every sheet, the same refusal (message, sheet, cells) for a broken one."""

from __future__ import annotations

import datetime as dt
import io
import pickle

import openpyxl
import pytest

from synoforecast.lib.ingest.workbook import WorkbookRefused, read_workbook
from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast_tests.unit.lib.ingest.test_workbook import HEADER, date_panic_workbook, reference, sale, write_book


def _read(path, parallel: bool):
    return read_workbook(path, reference=reference(), parallel=parallel)


def _parquet(frame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """The sample, plus a quarantined date, an exact duplicate and a total row in SVR-RM."""
    path = tmp_path_factory.mktemp("pool") / "messy.xlsx"
    write_sample_workbook(
        path, SampleSpec(rows=3000, seed=11, start=dt.date(2024, 1, 1), quarters=8, as_of=dt.date(2025, 12, 20))
    )
    wb = openpyxl.load_workbook(path)
    ws = wb["SVR-RM"]
    ws.cell(5, 1).value = "31.02.2025"
    ws.append([c.value for c in ws[7]])
    ws.append(["Grand Total", None, None, None, None, None, None, 6, "60.00", None])
    wb.save(path)
    return path


def test_parallel_read_is_byte_identical_to_the_serial_read(messy):
    serial, parallel = _read(messy, False), _read(messy, True)
    assert list(parallel.sheets) == list(serial.sheets) and len(serial.sheets) == 6
    for name, sheet in serial.sheets.items():
        other = parallel.sheets[name]
        assert _parquet(other.frame) == _parquet(sheet.frame), name
        assert _parquet(other.quarantine) == _parquet(sheet.quarantine), name
    assert serial.sheets["SVR-RM"].rows_quarantined == 1 and serial.sheets["SVR-RM"].duplicates_removed >= 1
    assert parallel.report() == serial.report()
    assert parallel.fingerprints() == serial.fingerprints() and parallel.quarter_hashes == serial.quarter_hashes


def _refusal(path, parallel: bool) -> WorkbookRefused:
    with pytest.raises(WorkbookRefused) as info:
        _read(path, parallel)
    return info.value


def _same_refusal(path) -> WorkbookRefused:
    serial, parallel = _refusal(path, False), _refusal(path, True)
    assert (str(parallel), parallel.file, parallel.sheet, parallel.column, parallel.cells) == (
        str(serial),
        serial.file,
        serial.sheet,
        serial.column,
        serial.cells,
    )
    return serial


def test_a_refusal_in_the_worker_names_the_same_cells(tmp_path):
    rows = [sale() for _ in range(20)]
    for row in rows[:5]:
        row[0] = "soon"
    path = write_book(tmp_path / "bad-dates.xlsx", {"SVR-RM": [HEADER, *rows]})
    exc = _same_refusal(path)
    assert exc.sheet == "SVR-RM" and exc.cells[:2] == ["SVR-RM!A2", "SVR-RM!A3"]


def test_the_first_refused_sheet_in_reading_order_wins_across_processes(tmp_path):
    bad = [sale() for _ in range(10)]
    for row in bad:
        row[7] = "many"
    path = write_book(tmp_path / "both.xlsx", {"SVR-RM": [HEADER, *bad], "Consumer": [HEADER, *bad]})
    assert _same_refusal(path).sheet == "SVR-RM"  # both sheets refused: SVR-RM is read first
    fine_svr = write_book(tmp_path / "consumer-only.xlsx", {"SVR-RM": [HEADER, sale()], "Consumer": [HEADER, *bad]})
    exc = _same_refusal(fine_svr)
    assert exc.sheet == "Consumer" and "Units is not a whole number" in str(exc)


def test_a_date_cell_calamine_cannot_convert_is_the_same_refusal_on_both_paths(tmp_path):
    """The cell is rewritten as text before calamine sees it, whichever process reads the sheet."""
    path = date_panic_workbook(tmp_path / "crash.xlsx")
    assert "SVR-RM!A3 (e.g. Date is not a date: '-1e+308')" in str(_same_refusal(path))


def test_a_refusal_survives_pickling_whole():
    exc = WorkbookRefused("/in/x.xlsx", "bad", sheet="SVR-RM", column="Date", cells=["SVR-RM!A2"])
    back = pickle.loads(pickle.dumps(exc))
    assert (str(back), back.file, back.reason, back.sheet, back.column, back.cells) == (
        str(exc),
        exc.file,
        exc.reason,
        exc.sheet,
        exc.column,
        exc.cells,
    )
