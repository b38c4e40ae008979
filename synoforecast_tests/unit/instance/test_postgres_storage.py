"""deploy/dagster.yaml's PooledPostgresStorage against a real PostgreSQL: a run's events reuse
a held connection where dagster-postgres opens one per statement, and disposing the instance
closes them."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy
import yaml

from synoforecast_tests.conftest import new_database

pytestmark = pytest.mark.integration

CHECKS = 60  # one event each, like a dbt test per quarter


def _instance(tmp_path, url: str, storage: dict):
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": storage, "telemetry": {"enabled": False}}))
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def _run_with_checks(instance) -> int:
    """Materialise an asset with CHECKS check results; returns the connections opened meanwhile."""
    import dagster as dg

    @dg.asset(check_specs=[dg.AssetCheckSpec(f"c{i}", asset="probe") for i in range(CHECKS)])
    def probe():
        yield dg.Output(1)
        for i in range(CHECKS):
            yield dg.AssetCheckResult(check_name=f"c{i}", passed=True)

    opened = []
    listener = lambda *_: opened.append(1)  # noqa: E731  every new DBAPI connection of any engine
    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "connect", listener)
    try:
        assert dg.materialize([probe], instance=instance).success
    finally:
        sqlalchemy.event.remove(sqlalchemy.pool.Pool, "connect", listener)
    return len(opened)


def _backends(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"
        ).fetchone()[0]


def test_a_runs_events_reuse_held_connections_and_dispose_closes_them(tmp_path, pg_server):
    from synoforecast.instance.postgres_storage import PooledEventLogStorage

    stock_url, pooled_url = new_database(pg_server), new_database(pg_server)
    as_sqlalchemy = lambda url: "postgresql+psycopg2" + url.removeprefix("postgresql")  # noqa: E731

    stock = _instance(tmp_path / "stock", stock_url, {"postgres": {"postgres_url": as_sqlalchemy(stock_url)}})
    try:
        stock_opened = _run_with_checks(stock)
    finally:
        stock.dispose()

    pooled = _instance(
        tmp_path / "pooled",
        pooled_url,
        {
            "custom": {
                "module": "synoforecast.instance.postgres_storage",
                "class": "PooledPostgresStorage",
                "config": {"postgres_url": as_sqlalchemy(pooled_url)},
            }
        },
    )
    try:
        assert isinstance(pooled.event_log_storage, PooledEventLogStorage)
        pooled_opened = _run_with_checks(pooled)
        assert pooled.get_latest_materialization_event(__import__("dagster").AssetKey("probe")) is not None
        assert _backends(pooled_url) >= 1  # held between statements
    finally:
        pooled.dispose()
    assert _backends(pooled_url) == 0  # ... and closed with the instance
    # dagster-postgres: at least one connection per event; pooled: a handful for the whole run
    assert stock_opened > CHECKS, stock_opened
    assert pooled_opened <= 10, pooled_opened
