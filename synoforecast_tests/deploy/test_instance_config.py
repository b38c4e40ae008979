"""deploy/dagster.yaml and deploy/workspace.yaml, loaded with Dagster's own config
schema and instantiated: Postgres storage from env, queued runs with limits, run
monitoring, retries, retention, telemetry off, code from the gRPC server."""

from __future__ import annotations

import psycopg
import pytest

from synoforecast_tests.conftest import new_database
from synoforecast_tests.deploy.tools import DEPLOY

pytestmark = pytest.mark.integration

PG_ENV = {
    "DAGSTER_PG_HOST": "postgres",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "not-a-real-password",
    "DAGSTER_PG_DB": "dagster",
}


@pytest.fixture
def deploy_home(tmp_path, monkeypatch):
    """A DAGSTER_HOME holding deploy/dagster.yaml (paths under /data moved into tmp)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    text = (DEPLOY / "dagster.yaml").read_text()
    assert text.count("base_dir: /data/dagster_home/") == 2
    (home / "dagster.yaml").write_text(text.replace("/data/dagster_home", str(home)))
    for key, value in PG_ENV.items():
        monkeypatch.setenv(key, value)
    return home


def test_instance_config_passes_dagsters_schema(deploy_home):
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config, dagster_instance_config_schema
    from dagster_postgres.utils import pg_config

    config, custom_class = dagster_instance_config(str(deploy_home))
    assert custom_class is None
    result = process_config(dagster_instance_config_schema(), config)
    assert result.success, result.errors
    # the storage block resolves every connection field from the environment
    assert config["storage"]["custom"]["class"] == "PooledPostgresStorage"
    storage = process_config(pg_config(), config["storage"]["custom"]["config"])
    assert storage.success, storage.errors
    db = storage.value["postgres_db"]
    assert (db["hostname"], db["port"], db["username"], db["db_name"]) == ("postgres", 5432, "dagster", "dagster")
    assert db["password"] == "not-a-real-password"
    assert "not-a-real-password" not in (DEPLOY / "dagster.yaml").read_text()


def test_instance_config_refuses_a_broken_copy(tmp_path):
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text(
        (DEPLOY / "dagster.yaml").read_text() + "\nrun_monitoring:\n  enabled: maybe\n"
    )
    with pytest.raises(DagsterInvalidConfigError):
        dagster_instance_config(str(tmp_path))


def test_instance_instantiates_with_the_deployed_behaviour(deploy_home, pg_server):
    """Everything in deploy/dagster.yaml as written, except the storage address: the test
    server listens on a unix socket, which the hostname/port form cannot express."""
    from dagster import DagsterInstance
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.launcher import DefaultRunLauncher
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    url = new_database(pg_server)
    config, _ = dagster_instance_config(str(deploy_home))
    custom = config["storage"]["custom"]
    scheme = custom["config"]["postgres_db"]["scheme"]
    assert scheme == "postgresql+psycopg2"
    storage_url = scheme + url.removeprefix("postgresql")
    config = {**config, "storage": {"custom": {**custom, "config": {"postgres_url": storage_url}}}}
    import yaml

    (deploy_home / "dagster.yaml").write_text(yaml.safe_dump(dict(config)))
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(deploy_home)))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_launcher, DefaultRunLauncher)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert isinstance(instance.compute_log_manager, LocalComputeLogManager)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 2
        assert [(t["key"], t.get("value"), t["limit"]) for t in queue.tag_concurrency_limits] == [
            ("dagster/backfill", None, 1),
            ("synoforecast/pipeline", "true", 1),
        ]  # one pipeline run at a time
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1  # one dbt at a time
        assert instance.run_monitoring_enabled
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert not instance.telemetry_enabled
        assert instance.get_runs() == []  # storage tables created and readable
        # a real run writes events through the deployed driver (a bare postgresql:// with
        # SQLAlchemy 2.1 + psycopg 3 fails on dagster-postgres' NOTIFY with a bound parameter)
        import dagster as dg

        @dg.asset
        def probe() -> int:
            return 1

        result = dg.materialize([probe], instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("probe")) is not None
        with psycopg.connect(url) as conn:
            tables = {r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'public'")}
        assert {"runs", "event_logs", "jobs", "job_ticks"} <= tables
    finally:
        instance.dispose()


def test_workspace_points_at_the_grpc_server():
    from dagster._core.remote_origin import GrpcServerCodeLocationOrigin
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    origins = location_origins_from_yaml_paths([str(DEPLOY / "workspace.yaml")])
    assert len(origins) == 1
    origin = origins[0]
    assert isinstance(origin, GrpcServerCodeLocationOrigin)
    assert (origin.host, origin.port, origin.location_name) == ("user-code", 4000, "synoforecast")
