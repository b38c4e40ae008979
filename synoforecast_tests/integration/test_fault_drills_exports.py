"""Fault drills (issue 11), export content, against a real PostgreSQL and real Dagster runs:
an empty, shrunken or out-of-range sheet is refused before anything changes; a new Top
Customers sheet, a one-sheet change and a Consumer-only change rebuild exactly what they must
and equal a clean build; a quarter partial in one export is published when the next completes
it. The shared exports and helpers: synoforecast_tests/support/fault_drills.py."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast_tests.conftest import fetch, new_database
from synoforecast_tests.support.fault_drills import edited, fingerprint, ingest, use_warehouse

pytestmark = pytest.mark.integration


def test_a_header_only_sheet_is_refused_and_nothing_changes(drills, after_a, tmp_path):
    url = after_a
    before = fingerprint(url)
    emptied = edited(
        drills["a"], tmp_path / "emptied.xlsx", lambda wb: wb["SVR-RM"].delete_rows(2, wb["SVR-RM"].max_row)
    )
    outcome = ingest(emptied)
    assert not outcome.ok and outcome.refused
    assert "required sheet 'SVR-RM' has a header row (row 1) but no data rows" in outcome.error
    assert fingerprint(url) == before


def test_a_shrunken_sheet_stops_publication_unless_allowed(drills, after_a, tmp_path):
    url = after_a
    before = fingerprint(url)
    shrunk = edited(
        drills["a"],
        tmp_path / "consumer-cut.xlsx",
        lambda wb: wb["Consumer"].delete_rows(3, wb["Consumer"].max_row - 2),
    )  # two data rows left
    outcome = ingest(shrunk)
    assert not outcome.ok and outcome.refused
    assert "publication stopped by the snapshot_shrink check" in outcome.error
    assert "Consumer rows loaded" in outcome.error and "--allow-shrink" in outcome.error
    assert fingerprint(url) == before
    allowed = ingest(shrunk, allow_shrink=True)
    assert allowed.ok, allowed.error
    assert (
        fetch(url, "select count(*) from published.mart_consumer_quarterly")[0][0]
        < before["published.mart_consumer_quarterly"][0]
    )


def _huge_units(wb) -> None:
    for r in range(2, 60):  # above the 2% quarantine share
        wb["SVR-RM"].cell(r, 8).value = 3_000_000_000


def test_an_out_of_range_value_fails_in_dry_run_exactly_where_the_real_run_does(drills, after_a, tmp_path):
    url = after_a
    before = fingerprint(url)
    wild = edited(drills["a"], tmp_path / "wild.xlsx", _huge_units)
    dry = subprocess.run(
        [sys.executable, "-m", "synoforecast.cli.main", "ingest", str(wild), "--dry-run"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    real = subprocess.run(
        [sys.executable, "-m", "synoforecast.cli.main", "ingest", str(wild)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert dry.returncode == real.returncode == 2
    refusal = [ln for ln in real.stderr.splitlines() if not ln.startswith("synoforecast: ")]
    assert len(refusal) == 1 and refusal[0].startswith("refused: wild.xlsx: sheet 'SVR-RM'"), real.stderr
    assert "SVR-RM!H2" in refusal[0] and "out of range for the warehouse column (integer" in refusal[0]
    assert "SVR-RM!H2" in dry.stderr and "Traceback" not in real.stderr + dry.stderr
    assert fingerprint(url) == before


def test_a_new_top_customers_sheet_reaches_every_quarter_of_the_marts(drills, after_a, tmp_path):
    """Reference data changes staging for every quarter; the marts must follow in
    every quarter too (they used to be rebuilt only over the run's range, or not at all)."""
    url = after_a

    def swap_top_customer(wb) -> None:
        listed = {row[0].value for row in wb["Top Customers"].iter_rows(min_row=2)}
        other = next(r[3] for r in wb["SVR-RM"].iter_rows(min_row=2, values_only=True) if r[3] not in listed)
        wb["Top Customers"].cell(2, 1).value = other

    outcome = ingest(edited(drills["a"], tmp_path / "top-customers.xlsx", swap_top_customer))
    assert outcome.ok, outcome.error
    complete = fetch(url, "select complete_quarters from ops.snapshots where sha256 = %s", (outcome.sha256,))[0][0]
    assert outcome.partitions == [q for q in complete if q >= "2020-01-01"]
    for schema in ("marts", "published"):
        mixed = fetch(
            url,
            f"""select count(*) from {schema}.mart_svr_rm_customer_quarterly m
                               where m.is_top_customer <> exists (select 1 from staging.int_top_customers t
                                                                  where t.customer_id = m.customer_id)""",
        )[0][0]
        assert mixed == 0, schema


def test_an_export_changing_one_sheet_rebuilds_only_its_models_and_equals_a_clean_build(drills, after_a):
    """Export B changes SVR-RM lines only: dbt builds the models downstream of raw.svr_rm, reports
    the consumer and C2 models unchanged (their tests' results with them, so the blocking checks
    still gate the forecasts), and the warehouse equals B ingested into an empty one."""
    import dagster as dg

    outcome = ingest(drills["b"])
    assert outcome.ok, outcome.error
    assert fingerprint(after_a) == drills["clean"]["b"]
    pipeline_run = outcome.run_ids[1]
    instance = dg.DagsterInstance.get()
    status = {}
    for event in instance.all_logs(pipeline_run, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = event.asset_materialization
        if "status" in materialization.metadata:  # dbt's nodes
            status["/".join(materialization.asset_key.path)] = materialization.metadata["status"].value
    assert status["staging/stg_svr_rm"] == status["marts/mart_svr_rm_quarterly"] == "success"
    assert status["marts/mart_commercial_activation"] == "success"  # reads SVR-RM too
    for unchanged in (
        "staging/stg_consumer",
        "marts/mart_consumer_quarterly",
        "staging/stg_region_map",
        "reference/region_map",
    ):
        assert status[unchanged] == "unchanged", unchanged
    checks = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(pipeline_run, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    ]
    consumer = [c for c in checks if c.asset_key == dg.AssetKey(["marts", "mart_consumer_quarterly"])]
    assert consumer and all(c.passed and c.metadata["rerun"].value is False for c in consumer)
    assert all(c.passed for c in checks if c.asset_key.path[0] in ("staging", "intermediate", "marts"))
    with psycopg.connect(after_a) as conn:  # what dbt built from is recorded: the same export again builds nothing
        recorded = conn.execute("select count(*) from ops.dbt_inputs where scope like 'svr_rm|%%'").fetchone()[0]
    assert recorded >= len(outcome.partitions)


def test_a_consumer_only_change_leaves_the_svr_rm_marts_and_claims_no_warn_test_it_did_not_run(
    drills, after_a, tmp_path
):
    """Only Consumer changes: the SVR-RM marts are reported unchanged with their error-severity
    tests passed (rerun false), but their `warn` tests (sums_match) are not claimed: a warning
    does not fail a build, so the last build's success says nothing about them."""
    import dagster as dg

    def bump_consumer(wb) -> None:
        ws = wb["Consumer"]
        ws.cell(2, 8).value = ws.cell(2, 8).value + 3

    outcome = ingest(edited(drills["a"], tmp_path / "consumer.xlsx", bump_consumer))
    assert outcome.ok, outcome.error
    run = outcome.run_ids[1]
    instance = dg.DagsterInstance.get()
    status = {
        "/".join(e.asset_materialization.asset_key.path): e.asset_materialization.metadata["status"].value
        for e in instance.all_logs(run, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if "status" in e.asset_materialization.metadata
    }
    assert status["marts/mart_consumer_quarterly"] == "success"
    assert status["marts/mart_svr_rm_tier_quarterly"] == status["staging/stg_svr_rm"] == "unchanged"
    tier = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(run, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        if e.dagster_event.event_specific_data.asset_key == dg.AssetKey(["marts", "mart_svr_rm_tier_quarterly"])
    ]
    names = {c.check_name for c in tier}
    assert tier and all(c.passed and c.metadata["rerun"].value is False for c in tier)
    assert not any(n.startswith("sums_match") for n in names), names


def test_staging_tables_cleaned_for_one_quarter_match_a_clean_build_even_replacing_an_older_view(drills, after_a):
    """Export B changes one quarter of A: the run cleans only that quarter into staging.stg_*,
    and the result must equal B ingested into an empty warehouse. Here the staging tables
    were views (as releases before the tables left them), so this first build of the tables
    runs over one quarter's range and still has to clean every quarter."""
    url = after_a
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("stg_svr_rm", "stg_consumer", "stg_c2"):
            conn.execute(f"drop table staging.{table} cascade")
            conn.execute(f"create view staging.{table} as select * from raw.{table.removeprefix('stg_')}")
        # built by that older release: another project digest, so this run builds every model
        conn.execute("update ops.dbt_inputs set fingerprint = 'an older release' where scope = 'project'")
    outcome = ingest(drills["b"])
    assert outcome.ok, outcome.error
    assert outcome.partitions[0] == "2024-10-01"  # from the changed quarter on: 2024-Q3 lies outside the range
    assert fetch(url, "select count(*) from raw.svr_rm where quarter_start = '2024-07-01'")[0][0] > 0
    assert fingerprint(url) == drills["clean"]["b"]
    kinds = fetch(
        url,
        "select table_name, table_type from information_schema.tables where table_schema = 'staging' "
        "and table_name in ('stg_svr_rm', 'stg_consumer', 'stg_c2') order by 1",
    )
    assert kinds == [("stg_c2", "BASE TABLE"), ("stg_consumer", "BASE TABLE"), ("stg_svr_rm", "BASE TABLE")]


def _export_taken(path: Path, day: dt.date) -> Path:
    stamp = dt.datetime(day.year, day.month, day.day, 7, tzinfo=dt.UTC).timestamp()
    os.utime(path, (stamp, stamp))  # the export date is the file's date
    return path


def test_a_quarter_partial_in_one_export_is_published_when_the_next_export_completes_it(drills, tmp_path):
    """Export taken 29 Dec (Q4 still partial), then one taken 5 Jan: the same December rows
    plus a few January ones. Q4 completes, and must be materialised (the first release
    compared per-quarter hashes that included the partial quarter and found nothing changed)."""
    url = new_database(drills["pg_server"])
    use_warehouse(drills, url)
    december = tmp_path / "export-2025-12-29.xlsx"
    write_sample_workbook(
        december, SampleSpec(rows=900, seed=7, start=dt.date(2024, 1, 1), quarters=8, as_of=dt.date(2025, 12, 29))
    )
    _export_taken(december, dt.date(2025, 12, 29))
    first = ingest(december)
    assert first.ok, first.error
    assert "2025-10-01" not in first.partitions  # partial: not a training target yet

    def january_rows(wb) -> None:
        sheet = wb["SVR-RM"]
        last = [c.value for c in sheet[sheet.max_row]]
        for day in (2, 3):
            sheet.append([dt.datetime(2026, 1, day), *last[1:]])

    january = _export_taken(edited(december, tmp_path / "export-2026-01-05.xlsx", january_rows), dt.date(2026, 1, 5))
    second = ingest(january)
    assert second.ok, second.error
    assert "2025-10-01" in second.partitions, second.partitions
    assert fetch(url, "select count(*) from forecast.forecasts where as_of_quarter = '2025-10-01'")[0][0] > 0
    assert fetch(url, "select count(*) from published.forecasts where as_of_quarter = '2025-10-01'")[0][0] > 0
