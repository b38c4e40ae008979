"""Workbook text never breaks rendering: a plot title with `$`, a Markdown cell with `|`."""

from __future__ import annotations

import datetime as dt

import polars as pl

from synoforecast.defs.forecast.assets import _plot
from synoforecast.lib.forecasting.cohorts import COHORTS_BY_NAME
from synoforecast.lib.rendering import markdown_table


def test_a_series_named_with_dollar_signs_is_plotted_as_text(tmp_path):
    """`$EMEA$ $$` failed the regional forecast step: matplotlib parsed the title as math."""
    name = "Re$gion$ $$ ^_"
    q = [dt.date(2024, 1, 1), dt.date(2024, 4, 1), dt.date(2024, 7, 1)]
    long = pl.DataFrame({"unique_id": [f"{name}::units"] * 3, "ds": q, "y": [1.0, 2.0, 3.0]})
    rows = pl.DataFrame(
        {
            "series_id": [name],
            "metric": ["units"],
            "model": ["ensemble"],
            "target_quarter": [dt.date(2024, 10, 1)],
            "target_label": ["2024-Q4"],
            "yhat": [3.5],
            "yhat_lo_80": [3.0],
            "yhat_hi_80": [4.0],
            "yhat_lo_95": [2.5],
            "yhat_hi_95": [4.5],
        }
    )
    out = _plot(tmp_path / "plot.png", COHORTS_BY_NAME["regional"], long, rows)
    assert out is not None and out.stat().st_size > 1000


def test_markdown_cells_cannot_split_a_row():
    table = markdown_table(["customer", "units"], [["A | B\nC", 1], [None, 2]])
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[2] == "| A \\| B C | 1 |" and lines[3] == "|  | 2 |"


def test_a_text_table_aligns_names_left_and_numbers_right_to_the_widest_cell():
    from synoforecast.lib.rendering import text_table

    out = text_table(("series", "units", "revenue"), [("T1", "1,673", "14,413,681"), ("Greater China", "464", None)])
    assert out.split("\n") == [
        "  series         units     revenue",
        "  T1             1,673  14,413,681",
        "  Greater China    464",
    ]


def test_a_text_table_can_rule_its_header_and_keep_every_column_left():
    from synoforecast.lib.rendering import text_table

    out = text_table(
        ("check", "status", "fix"),
        [("warehouse", "OK", ""), ("metabase", "FAIL", "start it")],
        left=3,
        indent="",
        rule=True,
    )
    assert out.split("\n") == [
        "check      status  fix",
        "---------  ------  --------",
        "warehouse  OK",
        "metabase   FAIL    start it",
    ]
