"""The sample workbook generator: contract shape, stats, realism and byte-for-byte determinism."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from synoforecast.lib.ingest.contract import SHEETS
from synoforecast.sample.generator import SampleSpec, SampleStats, quarter_label, write_sample_workbook
from synoforecast_dbt import PROJECT_DIR as DBT_PROJECT_DIR

AS_OF = dt.date(2026, 8, 14)
SPEC = SampleSpec(rows=2_000, seed=7, as_of=AS_OF)
# what the generator must write: the contract's headers, in its order
HEADERS = {sheet.name: tuple(column.header for column in sheet.columns) for sheet in SHEETS}
SALES_HEADER = HEADERS["SVR-RM"]
SEEDS = DBT_PROJECT_DIR / "seeds"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def as_date(value) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, SampleStats, dict[str, list[tuple]]]:
    path = tmp_path_factory.mktemp("sample") / "sale-out.xlsx"
    stats = write_sample_workbook(path, SPEC)
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        sheets = {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets}
    finally:
        wb.close()
    return path, stats, sheets


def data(sample, sheet: str) -> list[dict]:
    rows = sample[2][sheet]
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def by_quarter(rows: list[dict], field: str, value: str) -> dict[tuple[int, int], float]:
    totals: dict[tuple[int, int], float] = defaultdict(float)
    for r in rows:
        d = as_date(r[field])
        totals[(d.year, (d.month - 1) // 3 + 1)] += r[value]
    return totals


def test_sheets_and_headers_are_exact(sample):
    _, stats, sheets = sample
    assert list(sheets) == ["SVR-RM", "Consumer", "C2", "Top Customers", "Region Map", "Device Bays"]
    assert list(stats.sheets) == list(sheets)
    for name, header in HEADERS.items():
        assert sheets[name][0] == header, name


def test_row_counts_and_totals_match_stats(sample):
    _, stats, sheets = sample
    assert stats.sheets["SVR-RM"].rows == SPEC.rows
    assert stats.sheets["Consumer"].rows == SPEC.rows // 2
    assert stats.sheets["Top Customers"].rows == 15
    for name, rows in sheets.items():
        assert stats.sheets[name].rows == len(rows) - 1, name
    for name, units, revenue in (
        ("SVR-RM", "Units", "Revenue (USD)"),
        ("Consumer", "Units", "Revenue (USD)"),
        ("C2", "Seats", "MRR (USD)"),
    ):
        rows = data(sample, name)
        assert all(isinstance(r[units], int) for r in rows)
        assert sum(r[units] for r in rows) == stats.sheets[name].units_total
        assert all(Decimal(repr(r[revenue])) == round(Decimal(repr(r[revenue])), 2) for r in rows)
        assert float(sum(Decimal(repr(r[revenue])) for r in rows)) == stats.sheets[name].revenue_total
    for name in ("Top Customers", "Region Map", "Device Bays"):
        assert (stats.sheets[name].units_total, stats.sheets[name].revenue_total) == (0, 0.0)


def test_stats_to_dict_is_plain_data(sample):
    path, stats, _ = sample
    d = stats.to_dict()
    assert d["path"] == str(path)
    assert d["sheets"]["SVR-RM"]["rows"] == SPEC.rows
    assert d["sheets"]["SVR-RM"]["quarters"] == stats.sheets["SVR-RM"].quarters


def test_same_spec_gives_identical_bytes_and_another_seed_differs(sample, tmp_path):
    path, _, _ = sample
    again, other = tmp_path / "again.xlsx", tmp_path / "other.xlsx"
    write_sample_workbook(again, SPEC)
    write_sample_workbook(other, SampleSpec(rows=SPEC.rows, seed=SPEC.seed + 1, as_of=AS_OF))
    assert sha256(again) == sha256(path)
    assert sha256(other) != sha256(path)
    assert not list(tmp_path.glob(".*partial"))


def test_bytes_do_not_depend_on_the_process(sample, tmp_path):
    """Another interpreter with another string-hash seed (and later clock) writes the same bytes."""
    path, _, _ = sample
    out = tmp_path / "subprocess.xlsx"
    code = (
        "import datetime, sys; from synoforecast.sample.generator import SampleSpec, write_sample_workbook; "
        f"write_sample_workbook(sys.argv[1], SampleSpec(rows={SPEC.rows}, seed={SPEC.seed}, "
        f"as_of=datetime.date({AS_OF.year}, {AS_OF.month}, {AS_OF.day})))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env, timeout=120)
    assert sha256(out) == sha256(path)


def test_default_period_is_24_quarters_ending_with_the_partial_as_of_quarter(sample):
    _, stats, _ = sample
    for name in ("SVR-RM", "Consumer", "C2"):
        quarters = stats.sheets[name].quarters
        assert len(quarters) >= 20, name
        assert quarters == sorted(quarters)
        assert quarters[-1] == quarter_label(AS_OF) == "2026-Q3"
    assert stats.sheets["SVR-RM"].quarters[0] == "2020-Q4"


def test_rows_are_sorted_by_date_and_inside_the_period(sample):
    first = dt.date(2020, 10, 1)
    for name, field in (("SVR-RM", "Date"), ("Consumer", "Date"), ("C2", "Month")):
        dates = [as_date(r[field]) for r in data(sample, name)]
        assert all(isinstance(d, dt.date) for d in dates), name  # real date cells, not text
        assert dates == sorted(dates), name
        assert first <= dates[0] and dates[-1] <= AS_OF, name
    assert all(as_date(r["Month"]).day == 1 for r in data(sample, "C2"))


def test_explicit_start_and_quarters(tmp_path):
    stats = write_sample_workbook(
        tmp_path / "s.xlsx", SampleSpec(rows=300, start=dt.date(2022, 2, 10), quarters=4, as_of=AS_OF)
    )
    assert stats.sheets["SVR-RM"].quarters == ["2022-Q1", "2022-Q2", "2022-Q3", "2022-Q4"]
    assert stats.sheets["C2"].quarters[-1] <= "2022-Q4"


def test_customer_ids_are_text_with_leading_zeros(sample):
    for name in ("SVR-RM", "Consumer", "C2", "Top Customers"):
        ids = {r["Customer ID"] for r in data(sample, name)}
        assert all(isinstance(i, str) and i.isdigit() and len(i) == 5 for i in ids), name
    assert any(i.startswith("0") for i in {r["Customer ID"] for r in data(sample, "SVR-RM")})


def test_the_platform_reader_sees_the_same_cells(sample):
    """fastexcel (calamine), which ingestion uses, reads text ids, dates and blank tiers."""
    fastexcel = pytest.importorskip("fastexcel")
    path, stats, _ = sample
    reader = fastexcel.read_excel(str(path))
    frame = reader.load_sheet_by_name("SVR-RM", dtypes={"Customer ID": "string"}).to_polars()
    assert frame.columns == list(SALES_HEADER)
    assert frame.height == stats.sheets["SVR-RM"].rows
    assert frame["Units"].sum() == stats.sheets["SVR-RM"].units_total
    assert frame["Tier"].null_count() == stats.sheets["SVR-RM"].unknown_models
    ids = frame["Customer ID"].to_list()
    assert any(i.startswith("0") for i in ids)
    assert str(frame["Date"].dtype).startswith(("Date", "Datetime"))


def test_customers_are_many_and_heavy_tailed(sample):
    revenue: dict[str, float] = defaultdict(float)
    for r in data(sample, "SVR-RM"):
        revenue[r["Customer ID"]] += r["Revenue (USD)"]
    assert len(revenue) >= 30
    ranked = sorted(revenue.values(), reverse=True)
    top = ranked[: max(1, len(ranked) // 10)]
    assert sum(top) > 0.4 * sum(ranked)
    rows = data(sample, "SVR-RM")
    assert len({r["Region"] for r in rows}) >= 4
    assert {r["Channel"] for r in rows} == {"Distributor", "Reseller", "Direct", "Online"}


def test_q4_peaks_and_the_trend_rises(sample):
    rows = data(sample, "SVR-RM")
    units = by_quarter(rows, "Date", "Units")
    last = as_date(rows[-1]["Date"])
    years = [
        y
        for y in sorted({y for y, _ in units})
        if all((y, q) in units for q in (1, 2, 3, 4)) and dt.date(y, 12, 31) <= last
    ]
    assert len(years) >= 4
    peaks = [units[(y, 4)] > sum(units[(y, q)] for q in (1, 2, 3)) / 3 for y in years]
    assert sum(peaks) > len(years) / 2
    assert sum(units[(years[-1], q)] for q in (1, 2, 3, 4)) > sum(units[(years[0], q)] for q in (1, 2, 3, 4))


def test_returns_have_negative_units_and_revenue(sample):
    for name in ("SVR-RM", "Consumer"):
        rows = data(sample, name)
        returns = [r for r in rows if r["Units"] < 0]
        assert 0 < len(returns) < 0.06 * len(rows), name
        assert all(r["Revenue (USD)"] < 0 for r in returns)
        assert all(r["Units"] != 0 for r in rows)
        assert all(r["Revenue (USD)"] > 0 for r in rows if r["Units"] > 0)


def test_unknown_models_are_flagged_and_absent_from_device_bays(sample):
    _, stats, _ = sample
    bays = {r["Model"]: r for r in data(sample, "Device Bays")}
    rows = data(sample, "SVR-RM")
    unknown = [r for r in rows if r["Model"] not in bays]
    assert stats.sheets["SVR-RM"].unknown_models == len(unknown) > 0
    assert all(r["Tier"] is None for r in unknown)
    for r in rows:
        if r["Model"] in bays:
            assert r["Tier"] == bays[r["Model"]]["Tier"] in ("T1", "T2", "T3")
    consumer = data(sample, "Consumer")
    assert stats.sheets["Consumer"].unknown_models == 0
    assert all(r["Tier"] is None and bays[r["Model"]]["Tier"] is None for r in consumer)
    channels = [r["Channel"] for r in consumer]
    assert sum(c in ("Online", "Reseller") for c in channels) > 0.7 * len(channels)


def test_reference_sheets_follow_the_seeds(sample):
    import csv

    with open(SEEDS / "device_bays.csv", newline="") as fh:
        seed_models = [(r["model"], int(r["bays"]), r["tier"] or None, r["form_factor"]) for r in csv.DictReader(fh)]
    assert [tuple(r.values()) for r in data(sample, "Device Bays")] == seed_models
    with open(SEEDS / "region_map.csv", newline="") as fh:
        seed_regions = {r["country_code"]: r["region"] for r in csv.DictReader(fh)}
    region_map = {r["Country"]: r["Region"] for r in data(sample, "Region Map")}
    assert region_map.items() <= seed_regions.items()
    for name in ("SVR-RM", "Consumer"):
        for r in data(sample, name):
            assert region_map[r["Country"]] == r["Region"]
    svr = data(sample, "SVR-RM")
    revenue: dict[str, float] = defaultdict(float)
    for r in svr:
        revenue[r["Customer ID"]] += r["Revenue (USD)"]
    top = [r["Customer ID"] for r in data(sample, "Top Customers")]
    assert top == sorted(revenue, key=lambda c: -revenue[c])[:15]
    assert {r["Segment"] for r in data(sample, "Top Customers")} <= {"Enterprise", "Public Sector", "MSP", "Education"}


def test_c2_subscriptions_grow_among_svr_rm_customers(sample):
    svr = {(r["Customer ID"], r["Customer"]) for r in data(sample, "SVR-RM")}
    c2 = data(sample, "C2")
    assert {(r["Customer ID"], r["Customer"]) for r in c2} <= svr
    assert {r["Service"] for r in c2} <= {"C2 Storage", "C2 Backup", "C2 Identity", "C2 Password", "C2 Transfer"}
    assert all(r["Seats"] > 0 and r["MRR (USD)"] > 0 for r in c2)
    months = sorted({as_date(r["Month"]) for r in c2})
    first_year = {r["Customer ID"] for r in c2 if as_date(r["Month"]) < months[0].replace(year=months[0].year + 1)}
    last_year = {r["Customer ID"] for r in c2 if as_date(r["Month"]) > months[-1].replace(year=months[-1].year - 1)}
    assert len(last_year) > len(first_year)
    assert len(last_year) >= 0.3 * len({c for c, _ in svr})
    assert len({(as_date(r["Month"]), r["Customer ID"], r["Service"]) for r in c2}) == len(c2)


def test_quarter_label():
    assert quarter_label(dt.date(2025, 7, 14)) == "2025-Q3"
    assert quarter_label(dt.date(2024, 12, 31)) == "2024-Q4"
    assert quarter_label(dt.date(2024, 1, 1)) == "2024-Q1"


def test_empty_and_invalid_specs(tmp_path):
    stats = write_sample_workbook(tmp_path / "empty.xlsx", SampleSpec(rows=0, as_of=AS_OF))
    assert stats.sheets["SVR-RM"].rows == stats.sheets["Consumer"].rows == 0
    wb = openpyxl.load_workbook(tmp_path / "empty.xlsx", read_only=True)
    assert [r for r in wb["SVR-RM"].iter_rows(values_only=True)] == [SALES_HEADER]
    wb.close()
    for bad in (
        SampleSpec(rows=-1),
        SampleSpec(quarters=0),
        SampleSpec(rows=1_048_576),
        SampleSpec(start=dt.date(2030, 1, 1), as_of=AS_OF),
    ):
        with pytest.raises(ValueError):
            write_sample_workbook(tmp_path / "bad.xlsx", bad)
    assert not (tmp_path / "bad.xlsx").exists()


def test_an_export_as_of_an_earlier_day_is_the_same_history_cut_at_that_day(sample, tmp_path):
    cutoff = dt.date(2026, 5, 20)  # week 7 of 2026-Q2, in the sample's history
    path = tmp_path / "as-of.xlsx"
    stats = write_sample_workbook(path, SampleSpec(rows=SPEC.rows, seed=SPEC.seed, as_of=AS_OF, cutoff=cutoff))
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        cut = {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets}
        stamp = wb.properties.modified or wb.properties.created
    finally:
        wb.close()
    for sheet, field in (("SVR-RM", "Date"), ("Consumer", "Date"), ("C2", "Month")):
        full = sample[2][sheet]
        kept = [row for row in full[1:] if as_date(row[full[0].index(field)]) <= cutoff]
        assert kept and cut[sheet][1:] == kept, sheet  # the same rows, in the same order, none after the day
        assert len(kept) < len(full) - 1
        assert stats.sheets[sheet].rows == len(kept)
    assert as_date(stamp) == cutoff
    assert dt.date.fromtimestamp(path.stat().st_mtime) == cutoff  # the platform dates an export by its file
    with pytest.raises(ValueError, match="cutoff 2027-01-01"):
        write_sample_workbook(tmp_path / "x.xlsx", SampleSpec(rows=100, as_of=AS_OF, cutoff=dt.date(2027, 1, 1)))
