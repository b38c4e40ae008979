"""dbt's staging tables over raw rows written by hand: what the cleaning makes of messy
values (macros/stage_sales.sql), and how a run over some quarters updates the tables."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from synoforecast.defs.resources import dbt_executable
from synoforecast.lib.warehouse.connection import ensure_schema, parse_url
from synoforecast.settings import DBT_PROJECT_DIR
from synoforecast_tests.conftest import fetch

pytestmark = pytest.mark.integration

COLUMNS = (
    "sale_date, region, country, customer_id, customer, model, tier, units, revenue_usd, channel, "
    "is_unknown_model, is_unknown_country, source_row, quarter_start, quarter_label, snapshot_id"
)
Q3, Q4 = "2025-07-01", "2025-10-01"
# (source_row, quarter, region, country, customer, model, tier, channel)
LINES = [
    (2, Q3, " emea ", "DE", "Acme GmbH ", " rs822+ ", None, " Direct "),  # region respelt, tier from the model
    (3, Q3, None, "de", "  ", "RS822+", " t2", None),  # region from the code, tier as reported
    (4, Q3, "", " united   kingdom ", "Brit Ltd", "RS822+", "", "Reseller"),  # region from the English name
    (5, Q3, None, "XX", "Nowhere", "UNKNOWN-1", None, "Reseller"),  # neither found: NULL, no source
    (6, Q4, "Greater  china", None, "Dragon", "rs1221+", None, "Distributor"),
    (7, Q4, "Mars", "FR", "Far Away", "RS1221+", "t1 ", "Distributor"),  # unknown region text kept as is
]
EXPECTED = {  # source_row: region, region_source, country, customer, model, tier, tier_source, channel
    2: ("EMEA", "reported", "DE", "Acme GmbH", "RS822+", "T3", "device_bays", "Direct"),
    3: ("EMEA", "region_map", "de", None, "RS822+", "T2", "reported", None),
    4: ("EMEA", "region_map", "united   kingdom", "Brit Ltd", "RS822+", "T3", "device_bays", "Reseller"),
    5: (None, None, "XX", "Nowhere", "UNKNOWN-1", None, None, "Reseller"),
    6: ("Greater China", "reported", None, "Dragon", "RS1221+", "T3", "device_bays", "Distributor"),
    7: ("Mars", "reported", "FR", "Far Away", "RS1221+", "T1", "reported", "Distributor"),
}


def insert_lines(url: str, lines, units: int = 1, snapshot_id: int = 1) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for row, quarter, region, country, customer, model, tier, channel in lines:
            conn.execute(
                f"insert into raw.svr_rm ({COLUMNS}) values (%s::date + 14, %s, %s, %s, %s, %s, %s, %s, "
                "%s * 100, %s, false, false, %s, %s::date, %s, %s)",
                (
                    quarter,
                    region,
                    country,
                    f"C{row}",
                    customer,
                    model,
                    tier,
                    units,
                    units,
                    channel,
                    row,
                    quarter,
                    quarter[:4] + ("-Q3" if quarter == Q3 else "-Q4"),
                    snapshot_id,
                ),
            )


def dbt_build(url: str, tmp: Path, quarters: tuple[str, str] | None = None) -> None:
    """`dbt build` of stg_svr_rm and what it reads, over `quarters` (default: all)."""
    env = {**os.environ, **parse_url(url).as_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for name in ("SYNOFORECAST_DBT_START_QUARTER", "SYNOFORECAST_DBT_END_QUARTER"):
        env.pop(name, None)
    if quarters:
        env["SYNOFORECAST_DBT_START_QUARTER"], env["SYNOFORECAST_DBT_END_QUARTER"] = quarters
    result = subprocess.run(
        [
            dbt_executable(),
            "build",
            "--select",
            "+stg_svr_rm",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(tmp / "target"),
            "--log-path",
            str(tmp / "logs"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def staged(url: str) -> dict[int, tuple]:
    rows = fetch(
        url,
        "select source_row, region, region_source, country, customer, model, tier, tier_source, channel "
        "from staging.stg_svr_rm",
    )
    return {r[0]: r[1:] for r in rows}


@pytest.fixture
def warehouse(pg_url):
    ensure_schema(pg_url)
    insert_lines(pg_url, LINES)
    return pg_url


def test_messy_values_are_cleaned_and_backfilled_from_the_references(warehouse, tmp_path):
    dbt_build(warehouse, tmp_path)
    assert staged(warehouse) == EXPECTED
    kind = fetch(
        warehouse,
        "select table_type from information_schema.tables where table_schema = 'staging' and table_name = 'stg_svr_rm'",
    )
    assert kind == [("BASE TABLE",)]


def test_a_run_over_one_quarter_recleans_it_and_leaves_the_others(warehouse, tmp_path):
    dbt_build(warehouse, tmp_path / "first", quarters=(Q4, Q4))  # first build: every quarter, whatever the range
    assert staged(warehouse) == EXPECTED
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("delete from raw.svr_rm")
    insert_lines(warehouse, [(8, Q4, "APAC", "JP", "New", "RS822+", None, None)], units=5, snapshot_id=2)
    insert_lines(warehouse, [(9, Q3, "APAC", "JP", "Unseen", "RS822+", None, None)], units=5, snapshot_id=2)
    dbt_build(warehouse, tmp_path / "second", quarters=(Q4, Q4))
    by_quarter = fetch(
        warehouse,
        "select quarter_start::text, array_agg(source_row order by source_row), sum(units), "
        "array_agg(distinct snapshot_id) from staging.stg_svr_rm group by 1 order by 1",
    )
    # Q4 is the raw rows of now (rows 6 and 7 gone, row 8 new); Q3, outside the range, is as it was cleaned before
    assert by_quarter == [(Q3, [2, 3, 4, 5], 4, [1]), (Q4, [8], 5, [2])]
    assert staged(warehouse)[8] == ("APAC", "reported", "JP", "New", "RS822+", "T3", "device_bays", None)
