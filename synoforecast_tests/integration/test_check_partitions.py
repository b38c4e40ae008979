"""What the UI shows about quality gates is what happened (issue 12, points 1 and 2).

One real ingest of a sample (real PostgreSQL, dbt, Dagster instance), then the instance's
check-execution records: every partitioned contract check is recorded on each quarter of
the run (not once without a partition, which the UI shows as "Skipped"), a gate broken
in one quarter fails on that quarter only, the sample raises no false alarm, and the
partitions begin at the data's first quarter."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import dagster as dg
import psycopg
import pytest

from synoforecast.lib.ingest.contract import SHEETS
from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast.settings import effective_partitions_start, get_settings
from synoforecast_tests.conftest import isolated_project, new_database

pytestmark = pytest.mark.integration

SPEC = SampleSpec(
    rows=2000, seed=5, start=dt.date(2023, 10, 1), quarters=12, as_of=dt.date(2026, 8, 20), cutoff=dt.date(2026, 8, 20)
)  # exported that day: 2026-Q3 in progress (its landing)
BROKEN_QUARTER = "2025-01-01"


@pytest.fixture(scope="module")
def ingested(pg_server, tmp_path_factory):
    from synoforecast.cli.runner import ingest_workbook

    with isolated_project(tmp_path_factory.mktemp("checks"), new_database(pg_server)) as env:
        path = env["inbox"] / "sale-out.xlsx"
        write_sample_workbook(path, SPEC)
        outcome = ingest_workbook(path, progress=lambda _m: None, quiet=True)
        assert outcome.ok, outcome.error
        yield {**env, "outcome": outcome, "path": path}


def _history(check_key: dg.AssetCheckKey):
    return dg.DagsterInstance.get().event_log_storage.get_asset_check_execution_history(check_key, limit=1000)


def _contract_keys() -> list[dg.AssetCheckKey]:
    return [dg.AssetCheckKey(dg.AssetKey(["raw", s.table]), f"{s.table}_contract") for s in SHEETS]


def test_each_contract_check_is_recorded_on_every_quarter_of_the_run(ingested):
    quarters = ingested["outcome"].partitions
    assert len(quarters) == 11
    for key in _contract_keys():
        records = _history(key)
        assert records, key
        assert [r for r in records if r.partition is None] == [], f"{key.name}: evaluations without a partition"
        assert sorted(r.partition for r in records) == quarters, key.name
        assert {r.status.value for r in records} == {"SUCCEEDED"}, key.name
        evaluation = records[0].event.dagster_event.event_specific_data
        assert evaluation.metadata["quarter"].value.startswith("20") and "-Q" in evaluation.metadata["quarter"].value
        assert evaluation.target_materialization_data is not None  # judged the partition's materialisation


def _mart_check_keys() -> list[dg.AssetCheckKey]:
    from synoforecast.definitions import defs

    return [
        key
        for spec in defs.resolve_all_asset_specs()
        if spec.key.path[0] == "marts" and spec.partitions_def is not None
        for key in defs.resolve_asset_graph().get_check_keys_for_assets({spec.key})
    ]


def test_every_dbt_test_on_a_partitioned_mart_is_recorded_on_each_quarter_of_the_run(ingested):
    """dbt tests run once over the run's quarters: their result is recorded for each of them,
    never once without a partition (which the UI showed as "Partition —" on every mart check)."""
    quarters = ingested["outcome"].partitions
    keys = _mart_check_keys()
    assert len(keys) >= 10, keys
    for key in keys:
        records = _history(key)
        assert records, key
        assert [r for r in records if r.partition is None] == [], f"{key}: evaluations without a partition"
        assert sorted(r.partition for r in records) == quarters, key
        assert {r.status.value for r in records} == {"SUCCEEDED"}, key
        instance = dg.DagsterInstance.get()
        for record in records:  # each judged its own quarter's materialisation (looked up once per quarter)
            judged = record.event.dagster_event.event_specific_data.target_materialization_data
            (latest,) = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key.asset_key, asset_partitions=[record.partition]), limit=1
            ).records
            assert (judged.run_id, judged.storage_id) == (latest.event_log_entry.run_id, latest.storage_id), key


def test_partition_status_in_the_instance_is_passed_per_quarter(ingested):
    key = dg.AssetCheckKey(dg.AssetKey(["raw", "svr_rm"]), "svr_rm_contract")
    infos = dg.DagsterInstance.get().event_log_storage.get_asset_check_partition_info([key])
    assert {i.partition_key: i.latest_execution_status.value for i in infos} == {
        q: "SUCCEEDED" for q in ingested["outcome"].partitions
    }


def test_a_broken_quarter_fails_its_gate_on_that_quarter_only(ingested):
    from synoforecast.definitions import defs

    with psycopg.connect(ingested["url"], autocommit=True) as conn:
        conn.execute(
            "update raw.svr_rm set tier = 'T9' where quarter_start = %s and ctid in "
            "(select ctid from raw.svr_rm where quarter_start = %s limit 3)",
            (BROKEN_QUARTER, BROKEN_QUARTER),
        )
    key = dg.AssetCheckKey(dg.AssetKey(["raw", "svr_rm"]), "svr_rm_contract")
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_check_selection={key}, asset_selection=set())
    quarters = ingested["outcome"].partitions
    result = job.execute_in_process(
        instance=dg.DagsterInstance.get(),
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": quarters[0], "dagster/asset_partition_range_end": quarters[-1]},
    )
    assert not result.success  # blocking: the failed quarter fails the step
    latest = {}
    for record in sorted(_history(key), key=lambda r: r.id):
        latest[record.partition] = record.status.value
    assert latest.pop(BROKEN_QUARTER) == "FAILED"
    assert set(latest.values()) == {"SUCCEEDED"}
    failed = next(r for r in _history(key) if r.partition == BROKEN_QUARTER)
    evaluation = failed.event.dagster_event.event_specific_data
    assert evaluation.metadata["quarter"].value == "2025-Q1"
    assert any("T9" in p for p in evaluation.metadata["problems"].value)


def test_the_platforms_own_sample_raises_no_false_alarm(ingested):
    key = dg.AssetCheckKey(dg.AssetKey(["workbook_snapshot"]), "snapshot_null_share")
    (record, *_) = _history(key)
    evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.passed, evaluation.description  # Consumer.tier is blank by design


def test_partitions_begin_at_the_datas_first_quarter(ingested):
    assert effective_partitions_start(get_settings()) == dt.date(2023, 10, 1)
    code = "from synoforecast.defs.partitions import quarterly_partitions as p; print(p.get_first_partition_key())"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ}, check=True
    )
    assert done.stdout.strip() == "2023-10-01"


def _doc_queries(path) -> list[str]:
    import re

    return re.findall(r"```sql\n(.*?)```", path.read_text(), flags=re.S)


def test_every_query_in_the_analysts_doc_runs_as_an_analyst(ingested, repo_root):
    """docs/analysts.md: each example runs as a login member of `analyst`, except the ones
    marked `-- platform role`, which must then be refused to the analyst (the doc says why)."""
    from synoforecast.lib.warehouse.connection import parse_url

    queries = _doc_queries(repo_root / "docs" / "analysts.md")
    assert len(queries) >= 5
    with psycopg.connect(ingested["url"], autocommit=True) as conn:
        conn.execute("drop role if exists jane")
        conn.execute("create role jane login password 'jane-pw' in role analyst")
    parts = parse_url(ingested["url"])
    as_jane = psycopg.connect(
        host=parts.host, port=parts.port, dbname=parts.dbname, user="jane", password="jane-pw", autocommit=True
    )
    with as_jane:
        for sql in queries:
            if sql.startswith("-- platform role"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    as_jane.execute(sql)
                continue
            rows = as_jane.execute(sql).fetchall()
            assert rows, sql


def test_reingesting_the_same_bytes_refreshes_the_snapshot_row(ingested):
    import shutil

    from synoforecast.cli.runner import ingest_workbook
    from synoforecast_tests.conftest import fetch

    copy = ingested["path"].with_name("sale-out-again.xlsx")
    shutil.copyfile(ingested["path"], copy)
    later = ingested["path"].stat().st_mtime + 86_400
    os.utime(copy, (later, later))
    outcome = ingest_workbook(copy, progress=lambda _m: None, quiet=True)
    assert outcome.ok, outcome.error
    (row,) = fetch(
        ingested["url"],
        "select file, extract(epoch from file_mtime), sheets, last_run_id from ops.snapshots where sha256 = %s",
        (outcome.sha256,),
    )
    assert row[0] == str(copy)
    assert abs(float(row[1]) - later) < 1  # was: the first file's mtime, for ever
    assert row[3] == outcome.run_ids[0]
    assert row[2]["SVR-RM"]["rows_loaded"] > 0


def test_forecast_gates_are_recorded_per_quarter_and_an_incoherent_total_fails_its_quarter(ingested):
    from synoforecast.definitions import defs

    quarters = ingested["outcome"].partitions
    cohorts = ("svr_rm_overall", "svr_rm_top_customers", "regional", "consumer_trend", "c2_scorecard")
    keys = [dg.AssetCheckKey(dg.AssetKey(["forecast", c]), f"{c}_published") for c in cohorts]
    keys.append(dg.AssetCheckKey(dg.AssetKey(["forecast", "forecast_evaluation"]), "forecast_accuracy"))
    for key in keys:
        records = _history(key)
        assert records and all(r.partition is not None for r in records), key.name
        assert sorted({r.partition for r in records}) == quarters, key.name
    # All C2 published 7,602 seats above the sum of its services in one quarter: that quarter fails
    broken = quarters[-2]
    with psycopg.connect(ingested["url"], autocommit=True) as conn:
        conn.execute(
            "update forecast.forecasts set yhat = yhat + 7602 where cohort = 'c2_scorecard' "
            "and series_id = 'All C2' and metric = 'units' and as_of_quarter = %s",
            (broken,),
        )
    key = keys[4]
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_check_selection={key}, asset_selection=set())
    result = job.execute_in_process(
        instance=dg.DagsterInstance.get(),
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": quarters[0], "dagster/asset_partition_range_end": quarters[-1]},
    )
    assert not result.success  # blocking
    latest = {}
    for record in sorted(_history(key), key=lambda r: r.id):
        latest[record.partition] = record
    failed = latest.pop(broken)
    assert failed.status.value == "FAILED" and {r.status.value for r in latest.values()} == {"SUCCEEDED"}
    evaluation = failed.event.dagster_event.event_specific_data
    assert "units: total" in evaluation.description and "<> sum of parts" in evaluation.description
