"""Property: any valid SVR-RM rows written to a workbook come back from the reader exactly."""

import datetime as dt

import openpyxl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synoforecast.lib.ingest.workbook import Reference, read_workbook
from synoforecast_dbt import PROJECT_DIR as DBT_PROJECT_DIR

SEEDS = DBT_PROJECT_DIR / "seeds"
REFERENCE = Reference.from_seeds(SEEDS)
MODELS = sorted(m for m, tier in REFERENCE.model_tiers.items() if tier)
HEADER = ["Date", "Region", "Country", "Customer ID", "Customer", "Model", "Tier", "Units", "Revenue (USD)", "Channel"]

text = (
    st.text(
        alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters=" &-."),
        min_size=1,
        max_size=12,
    )
    .map(str.strip)
    .filter(bool)
)
row = st.fixed_dictionaries(
    {
        "date": st.dates(dt.date(2019, 1, 1), dt.date(2025, 12, 31)),
        "date_as": st.sampled_from(["cell", "iso", "slash", "dotted"]),
        "country": st.sampled_from(["DE", "US", "JP", "Germany", "FR"]),
        "customer_id": st.from_regex(r"0[0-9]{3,5}", fullmatch=True),
        "customer": text,
        "model": st.sampled_from(MODELS),
        "units": st.integers(-50, 5000),
        "cents": st.integers(-10_000_000, 100_000_000),
        "units_as_text": st.booleans(),
        "channel": st.sampled_from(["Distributor", "Reseller", "Direct", None]),
    }
)


def _date_cell(r):
    d = r["date"]
    return {"cell": d, "iso": d.isoformat(), "slash": d.strftime("%Y/%m/%d"), "dotted": d.strftime("%d.%m.%Y")}[
        r["date_as"]
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row, min_size=1, max_size=30, unique_by=lambda r: (r["customer_id"], r["date"])))
def test_valid_rows_survive_write_then_ingest_exactly(tmp_path, rows):
    path = tmp_path / "roundtrip.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "SVR-RM"
    ws.append(HEADER)
    for r in rows:
        revenue = r["cents"] / 100
        ws.append(
            [
                _date_cell(r),
                None,
                r["country"],
                r["customer_id"],
                r["customer"],
                r["model"],
                None,
                f"{r['units']:,}" if r["units_as_text"] else r["units"],
                revenue,
                r["channel"],
            ]
        )
    wb.save(path)

    sheet = read_workbook(path, reference=REFERENCE).sheets["SVR-RM"]
    assert sheet.rows_read == sheet.rows_loaded == len(rows)
    assert sheet.rows_quarantined == 0 and sheet.duplicates_removed == 0
    got = sorted(
        sheet.frame.select("customer_id", "sale_date", "model", "units", "revenue_usd", "customer").iter_rows()
    )
    expected = sorted(
        (
            r["customer_id"],
            r["date"],
            r["model"],
            r["units"],
            round(r["cents"] / 100, 2),
            " ".join(r["customer"].split()),
        )
        for r in rows
    )
    assert got == expected
    assert sheet.totals() == (sum(r["units"] for r in rows), round(sum(r["cents"] for r in rows) / 100, 2))
