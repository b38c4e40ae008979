"""Retention of Dagster's own history on a real SQLite instance (issue 12, point 5)."""

import datetime as dt

import dagster as dg

from synoforecast.instance.history import prune_history

P = dg.StaticPartitionsDefinition(["2025-01-01", "2025-04-01"])


@dg.asset(partitions_def=P)
def sales():
    return dg.MaterializeResult()


@dg.asset_check(asset=sales, partitions_def=P)
def sales_ok():
    return dg.AssetCheckResult(passed=True)


@dg.asset
def boom():
    raise RuntimeError("failed run")


def test_prune_keeps_runs_holding_a_partitions_latest_state_and_drops_the_rest(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = dg.materialize([sales, sales_ok], partition_key="2025-01-01", instance=instance)
        latest_q1 = dg.materialize([sales, sales_ok], partition_key="2025-01-01", instance=instance)
        only_q2 = dg.materialize([sales, sales_ok], partition_key="2025-04-01", instance=instance)
        failed = dg.materialize([boom], instance=instance, raise_on_error=False)
        check = dg.AssetCheckKey(sales.key, "sales_ok")
        assert len(instance.event_log_storage.get_asset_check_execution_history(check, limit=10)) == 3

        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=40)
        report = prune_history(instance, [sales.key, boom.key], [check], older_than_days=30, now=later)

        assert sorted(report.deleted) == sorted([first.run_id, failed.run_id])
        assert report.kept_current == 2
        left = {r.run_id for r in instance.get_runs()}
        assert left == {latest_q1.run_id, only_q2.run_id}
        history = instance.event_log_storage.get_asset_check_execution_history(check, limit=10)
        assert sorted(r.run_id for r in history) == sorted([latest_q1.run_id, only_q2.run_id])
        status = instance.get_status_by_partition(sales.key, P.get_partition_keys(), P)
        assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}

        assert prune_history(instance, [sales.key], [check], now=dt.datetime.now(dt.UTC)).deleted == []


def test_the_daily_prune_job_runs_on_the_embedded_instance(tmp_path):
    from synoforecast.definitions import defs

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = defs.resolve_job_def("prune_dagster_history_job").execute_in_process(instance=instance)
        assert result.success
        logs = [e.message for e in instance.all_logs(result.run_id) if e.message]
        assert any("older than 30 days" in m for m in logs), logs
    assert {s.name: s.default_status for s in defs.schedules}[
        "prune_dagster_history"
    ] == dg.DefaultScheduleStatus.RUNNING
