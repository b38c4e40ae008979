"""Which quarter a snapshot has in progress, and when it has none."""

from __future__ import annotations

import datetime as dt

import pytest

from synoforecast.lib.landing.running_quarter import NoQuarterInProgress, quarter_in_progress


def manifest(mtime: str, quarters: list[str], complete: list[str]) -> dict:
    return {"file": "sale-out.xlsx", "file_mtime": mtime, "quarters": quarters, "complete_quarter_keys": complete}


def test_the_quarter_of_the_export_day_with_rows_is_in_progress():
    m = manifest("2026-08-12T18:00:00", ["2026-04-01", "2026-07-01"], ["2026-04-01"])
    assert quarter_in_progress(m) == (dt.date(2026, 7, 1), dt.date(2026, 8, 12))
    # a fiscal year from April: August is in the quarter that started in July as well
    assert quarter_in_progress(m, fiscal_year_start_month=4) == (dt.date(2026, 7, 1), dt.date(2026, 8, 12))


@pytest.mark.parametrize(
    "quarters,complete,says",
    [
        (["2026-04-01"], ["2026-04-01"], "holds no rows of 2026-Q3"),  # exported before any sale of the quarter
        (["2026-04-01", "2026-07-01"], ["2026-04-01", "2026-07-01"], "2026-Q3 is complete"),
    ],
)
def test_a_snapshot_without_a_quarter_in_progress_has_no_landing(quarters, complete, says):
    with pytest.raises(NoQuarterInProgress, match=says) as info:
        quarter_in_progress(manifest("2026-08-12T09:30:00", quarters, complete))
    assert "sale-out.xlsx" in str(info.value)
