"""The embedded mode's Dagster storage (synoforecast/instance/sqlite_storage.py), through the project's
dagster.yaml: real runs, read back by Dagster's own SQLite storage from another process."""

import json
import shutil
import subprocess
import sys

import dagster as dg
import pytest
import sqlalchemy as db

from synoforecast.instance.sqlite_storage import (
    MAX_OPEN_DATABASES,
    PooledSqliteEventLogStorage,
    PooledSqliteRunStorage,
    open_instance,
)
from synoforecast.settings import CHECKOUT_DIR as REPO

quarters = dg.StaticPartitionsDefinition(["2025-Q1", "2025-Q2", "2025-Q3"])


@dg.asset(partitions_def=quarters, check_specs=[dg.AssetCheckSpec("positive", asset="probe")])
def probe(context: dg.AssetExecutionContext):
    yield dg.MaterializeResult(metadata={"quarter": context.partition_key})
    yield dg.AssetCheckResult(check_name="positive", passed=True)


@pytest.fixture
def home(tmp_path):
    shutil.copyfile(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    return tmp_path


@pytest.fixture
def connects():
    """Every new SQLite DB-API connection any engine opens."""
    opened = []

    def count(dbapi_connection, _record):
        opened.append(dbapi_connection)

    db.event.listen(db.engine.Engine, "connect", count)
    yield opened
    db.event.remove(db.engine.Engine, "connect", count)


def _materialize_all(instance) -> list[str]:
    run_ids = []
    for key in quarters.get_partition_keys():
        result = dg.materialize([probe], instance=instance, partition_key=key)
        assert result.success
        run_ids.append(result.run_id)
    return run_ids


def test_the_project_instance_uses_the_pooled_storage_at_normal_synchronous(home):
    with open_instance(home) as instance:
        assert isinstance(instance.run_storage, PooledSqliteRunStorage)
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        with instance.event_log_storage.index_connection() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL (Dagster's default: FULL, 2)
        with instance.run_storage.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
    assert (home / "history" / "runs.db").exists() and (home / "history" / "runs" / "index.db").exists()


def test_a_run_opens_a_few_connections_where_dagsters_storage_opens_one_per_event(home, tmp_path_factory, connects):
    with open_instance(home) as instance:
        connects.clear()
        _materialize_all(instance)
        pooled = len(connects)
        events = sum(len(instance.all_logs(r.run_id)) for r in instance.get_runs())
    plain = tmp_path_factory.mktemp("plain")  # no dagster.yaml: Dagster's own SQLite storage
    with open_instance(plain) as instance:
        connects.clear()
        _materialize_all(instance)
    assert events > 40
    assert pooled <= 20, pooled  # per database, its engine's pool: runs.db, index.db, one per run
    assert len(connects) > events, (len(connects), events)


def test_dagsters_own_storage_reads_what_the_pooled_storage_wrote(home):
    with open_instance(home) as instance:
        run_ids = _materialize_all(instance)
    plain = home.parent / "plain_reader"
    shutil.copytree(home, plain)
    (plain / "dagster.yaml").unlink()
    script = (
        "import json, sys, dagster as dg\n"
        "with dg.DagsterInstance.from_config(sys.argv[1]) as i:\n"
        "    runs = i.get_runs()\n"
        "    check = i.event_log_storage.get_latest_asset_check_execution_by_key\n"
        "    print(json.dumps({'storage': type(i.event_log_storage).__name__,\n"
        "                      'runs': sorted(r.run_id for r in runs),\n"
        "                      'statuses': sorted({r.status.value for r in runs}),\n"
        "                      'materialized': sorted(i.get_materialized_partitions(dg.AssetKey('probe')))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(plain)], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {
        "storage": "SqliteEventLogStorage",
        "runs": sorted(run_ids),
        "statuses": ["SUCCESS"],
        "materialized": ["2025-Q1", "2025-Q2", "2025-Q3"],
    }


def test_a_long_lived_process_keeps_a_bounded_number_of_databases_open(home):
    with open_instance(home) as instance:
        storage = instance.event_log_storage
        for _ in range(MAX_OPEN_DATABASES + 4):
            dg.materialize([probe], instance=instance, partition_key="2025-Q1")
        assert len(storage._engines) == MAX_OPEN_DATABASES
        assert "index" in storage._engines  # the most used database stays open
        assert len(instance.get_runs()) == MAX_OPEN_DATABASES + 4  # an evicted run's events are still there
        assert all(len(instance.all_logs(r.run_id)) > 5 for r in instance.get_runs())


def test_wipe_closes_the_run_databases_before_deleting_them(home):
    with open_instance(home) as instance:
        run_id = _materialize_all(instance)[0]
        instance.event_log_storage.wipe()
        assert instance.all_logs(run_id) == []
        assert dg.materialize([probe], instance=instance, partition_key="2025-Q2").success


def test_without_dagster_home_or_base_dir_the_storage_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(ValueError, match="DAGSTER_HOME"):
        PooledSqliteRunStorage.from_config_value(None, {})


def test_step_processes_of_a_dagster_cli_run_rebuild_the_storage_from_dagster_home(home, tmp_path_factory):
    """`dagster asset materialize` runs each step in its own process, which rebuilds the
    instance from its serialized reference: the storages find their folder through DAGSTER_HOME."""
    import os
    from pathlib import Path

    code = tmp_path_factory.mktemp("code") / "two_assets.py"
    code.write_text(
        "import os\nimport dagster as dg\n\n"
        "@dg.asset\ndef first():\n    return os.getpid()\n\n"
        "@dg.asset\ndef second(first):\n    return (first, os.getpid())\n\n"
        "defs = dg.Definitions(assets=[first, second])\n"
    )
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "asset", "materialize", "-f", str(code), "--select", "*"],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "multiprocess" in result.stderr.lower() or "Launching subprocess" in result.stderr
    with open_instance(home) as instance:
        assert [r.status for r in instance.get_runs()] == [dg.DagsterRunStatus.SUCCESS]
        for key in ("first", "second"):
            assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None


@dg.asset(partitions_def=quarters, backfill_policy=dg.BackfillPolicy.single_run())
def ranged(context: dg.AssetExecutionContext):
    return dg.MaterializeResult(metadata={"quarters": len(context.partition_keys)})


def _run_range(instance) -> str:
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    job = dg.Definitions(assets=[ranged], jobs=[dg.define_asset_job("ranged_job", [ranged])]).resolve_job_def(
        "ranged_job"
    )
    result = job.execute_in_process(
        instance=instance, tags={ASSET_PARTITION_RANGE_START_TAG: "2025-Q1", ASSET_PARTITION_RANGE_END_TAG: "2025-Q3"}
    )
    assert result.success
    return result.run_id


def _events(instance, run_id: str) -> list[tuple]:
    return sorted(
        (r.dagster_event.event_type_value, r.dagster_event.partition or "")
        for r in instance.all_logs(run_id)
        if r.dagster_event
        and r.dagster_event.is_step_materialization
        or (r.dagster_event and r.dagster_event.event_type_value == "ASSET_MATERIALIZATION_PLANNED")
    )


def test_a_partition_ranges_events_are_written_as_batches_and_read_as_dagster_writes_them(
    home, tmp_path_factory, monkeypatch
):
    batches = []
    real = PooledSqliteEventLogStorage.store_event_batch
    monkeypatch.setattr(
        PooledSqliteEventLogStorage,
        "store_event_batch",
        lambda self, events: batches.append(len(events)) or real(self, events),
    )
    with open_instance(home) as instance:
        pooled = _events(instance, _run_range(instance))
        assert sorted(instance.get_materialized_partitions(dg.AssetKey("ranged"))) == quarters.get_partition_keys()
    assert batches and max(batches) == 3  # the planned events, then the three materializations, as batches
    with open_instance(tmp_path_factory.mktemp("plain")) as instance:  # Dagster's own storage, one by one
        assert _events(instance, _run_range(instance)) == pooled
    assert [kind for kind, _ in pooled].count("ASSET_MATERIALIZATION") == 3


def test_a_batch_that_fails_midway_keeps_none_of_its_events(home, monkeypatch):
    with open_instance(home) as instance:
        run_id = _run_range(instance)
        storage = instance.event_log_storage
        materialized = [
            r for r in instance.all_logs(run_id) if r.dagster_event and r.dagster_event.is_step_materialization
        ]
        before = len(instance.all_logs(run_id))
        real, calls = storage._store_asset_event, []

        def fail_second(conn, event, event_id):
            calls.append(event_id)
            if len(calls) == 2:
                raise RuntimeError("disk full")
            return real(conn, event, event_id)

        monkeypatch.setattr(storage, "_store_asset_event", fail_second)
        with pytest.raises(RuntimeError, match="disk full"):
            storage.store_event_batch(materialized[:2])
        assert len(instance.all_logs(run_id)) == before  # the first event was rolled back with the batch
        monkeypatch.setattr(storage, "_store_asset_event", real)
        storage.store_event_batch(materialized[:2])
        assert len(instance.all_logs(run_id)) == before + 2
