from __future__ import annotations

import csv
import re

import numpy as np
import pandas as pd
import pytest

from synoforecast.lib.forecasting import ForecastInputError, forecast_csv, read_long_csv


def write(tmp_path, text: str, name: str = "series.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """unique_id,ds,y,note
a,2024-01-01,10,first
a,2024-04-01,12.5,
b,2024-01-01,-3,returns
"""


def test_reads_valid_file_and_ignores_extra_columns(tmp_path):
    df = read_long_csv(write(tmp_path, GOOD))
    assert list(df.columns) == ["unique_id", "ds", "y"]
    assert df["unique_id"].tolist() == ["a", "a", "b"]
    assert df["ds"].tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-04-01"), pd.Timestamp("2024-01-01")]
    assert df["y"].tolist() == [10.0, 12.5, -3.0]
    assert df["y"].dtype == np.float64


def test_bom_and_column_order_do_not_matter(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffy,unique_id,ds\n1,a,2024-01-01\n".encode("utf-8"))
    df = read_long_csv(path)
    assert df.to_dict("list") == {"unique_id": ["a"], "ds": [pd.Timestamp("2024-01-01")], "y": [1.0]}


def test_missing_column_names_it_and_lists_found(tmp_path):
    path = write(tmp_path, "unique_id,date,value\na,2024-01-01,1\n")
    with pytest.raises(ForecastInputError) as err:
        read_long_csv(path)
    msg = str(err.value)
    assert "series.csv" in msg and "'ds'" in msg and "'y'" in msg
    assert "found columns: 'unique_id', 'date', 'value'" in msg


def test_bad_date_names_line_column_and_value(tmp_path):
    path = write(tmp_path, "unique_id,ds,y\na,2024-01-01,1\na,2024-04-01,2\na,2024-13-01,3\n")
    with pytest.raises(
        ForecastInputError, match=re.escape("series.csv line 4: column 'ds' value '2024-13-01' is not a date")
    ):
        read_long_csv(path)


def test_bad_number_names_line_column_and_value(tmp_path):
    rows = "".join(f"a,2020-{m:02d}-01,{m}\n" for m in range(1, 6))
    path = write(tmp_path, "unique_id,ds,y\n" + rows + "a,2020-06-01,abc\n")
    with pytest.raises(ForecastInputError) as err:
        read_long_csv(path)
    assert str(err.value).endswith("series.csv line 7: column 'y' value 'abc' is not a number")


def test_blank_y_is_an_error(tmp_path):
    path = write(tmp_path, "unique_id,ds,y\na,2024-01-01,1\na,2024-04-01,\n")
    with pytest.raises(ForecastInputError, match=r"line 3: column 'y' value '' is blank"):
        read_long_csv(path)


def test_line_numbers_survive_blank_lines_and_quoted_newlines(tmp_path):
    text = 'unique_id,ds,y,note\na,2024-01-01,1,"two\nlines"\n\nb,2024-01-01,x,\n'
    with pytest.raises(ForecastInputError, match=r"series.csv line 5: column 'y' value 'x'"):
        read_long_csv(write(tmp_path, text))


def test_duplicate_key_names_both_lines(tmp_path):
    text = "unique_id,ds,y\na,2024-01-01,1\nb,2024-01-01,2\na,2024-04-01,3\na,2024-01-01,4\n"
    with pytest.raises(ForecastInputError) as err:
        read_long_csv(write(tmp_path, text))
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "series.csv") + " line 5: duplicate (unique_id, ds)")
    assert "'a'" in msg and "2024-01-01" in msg and "already on line 2" in msg


def test_blank_unique_id_and_empty_file(tmp_path):
    with pytest.raises(ForecastInputError, match=r"line 2: column 'unique_id' value ' ' is blank"):
        read_long_csv(write(tmp_path, "unique_id,ds,y\n ,2024-01-01,1\n"))
    with pytest.raises(ForecastInputError, match="empty"):
        read_long_csv(write(tmp_path, "", name="empty.csv"))
    header_only = read_long_csv(write(tmp_path, "unique_id,ds,y\n", name="h.csv"))
    assert header_only.empty and list(header_only.columns) == ["unique_id", "ds", "y"]


def test_forecast_csv_round_trip(tmp_path):
    lines = ["unique_id,ds,y"]
    for q, d in enumerate(pd.date_range("2021-01-01", periods=12, freq="QS")):
        lines.append(f"north,{d.date()},{[100, 104, 101, 150][q % 4] + q}")
    lines += ["solo,2023-07-01,5", "pair,2023-04-01,5", "pair,2023-07-01,7"]
    src = write(tmp_path, "\n".join(lines) + "\n")
    out = tmp_path / "out" / "forecast.csv"

    frame = forecast_csv(src, out, horizon=2, levels=(95, 80))

    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["unique_id", "ds", "yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95", "model"]
    assert list(frame.columns) == rows[0]
    assert len(rows) == 1 + 3 * 2
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r[1]) for r in rows[1:])
    by_id = {(r[0], r[1]): r for r in rows[1:]}
    assert by_id[("north", "2024-01-01")][-1] == "Combination"  # 12 quarters: the full band's combination
    assert by_id[("solo", "2023-10-01")][-1] == "Naive"
    # a single point borrows its interval from the other short series' quarter-on-quarter changes
    assert float(by_id[("solo", "2023-10-01")][3]) < 5 < float(by_id[("solo", "2023-10-01")][4])
    assert by_id[("pair", "2024-01-01")][2] == "7.0"

    back = pd.read_csv(out, parse_dates=["ds"])
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert not list(tmp_path.glob("out/.*.tmp"))


def test_forecast_csv_propagates_input_errors(tmp_path):
    src = write(tmp_path, "unique_id,ds,y\na,2024-01-01,oops\n")
    out = tmp_path / "forecast.csv"
    with pytest.raises(ForecastInputError, match="line 2"):
        forecast_csv(src, out)
    assert not out.exists()
