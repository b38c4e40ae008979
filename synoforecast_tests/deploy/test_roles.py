"""postgres/initdb/10-synoforecast.sh + postgres/sql/roles.sql on a real PostgreSQL:
the platform owns the warehouse, the analyst role reads marts.* and forecast.* (also
tables created later) and nothing else, and can write nothing anywhere."""

from __future__ import annotations

import os
import subprocess
import uuid

import psycopg
import pytest

from synoforecast_tests.deploy.tools import DEPLOY, pg_bin_dir, socket_dir

pytestmark = pytest.mark.integration

ANALYST = "synoforecast_analyst"


@pytest.fixture(scope="module")
def stack_databases(pg_server):
    """Run the first-start script exactly as the postgres container does (twice: it must
    be idempotent), with unique database names on the shared test cluster."""
    suffix = uuid.uuid4().hex[:6]
    names = {
        "WAREHOUSE_DB": f"warehouse_{suffix}",
        "DAGSTER_PG_DB": f"dagster_{suffix}",
        "METABASE_DB": f"metabase_{suffix}",
    }
    env = {
        **os.environ,
        **names,
        "PATH": f"{pg_bin_dir()}:{os.environ['PATH']}",
        "PGHOST": socket_dir(pg_server.get_uri()),
        "POSTGRES_USER": "postgres",
        "SYNOFORECAST_SQL_DIR": str(DEPLOY / "postgres" / "sql"),
        "SYNOFORECAST_DB_PASSWORD": "platform-pw-0123456789",
        "ANALYST_DB_PASSWORD": "analyst-pw-0123456789",
        "DAGSTER_PG_PASSWORD": "dagster-pw-0123456789",
        "METABASE_DB_PASSWORD": "metabase-pw-0123456789",
    }
    script = DEPLOY / "postgres" / "initdb" / "10-synoforecast.sh"
    for _ in range(2):
        result = subprocess.run(
            ["bash", str(script)], env=env, check=False, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr
    missing = {k: v for k, v in env.items() if k != "ANALYST_DB_PASSWORD"}
    refused = subprocess.run(
        ["bash", str(script)], env=missing, check=False, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and "ANALYST_DB_PASSWORD" in refused.stderr

    def url(db: str, user: str) -> str:
        return pg_server.get_uri(db).replace("postgres:@", f"{user}:@", 1)

    return names, url


def test_databases_are_owned_by_their_roles(stack_databases, pg_server):
    names, _ = stack_databases
    with psycopg.connect(pg_server.get_uri()) as conn:
        owners = dict(
            conn.execute(
                "select datname, pg_get_userbyid(datdba) from pg_database where datname = any(%s)",
                [list(names.values())],
            ).fetchall()
        )
        flags = conn.execute(
            "select rolname, rolsuper, rolcreatedb, rolcreaterole from pg_roles "
            "where rolname in ('synoforecast', %s, 'analyst', 'dagster', 'metabase')",
            [ANALYST],
        ).fetchall()
    assert owners == {
        names["WAREHOUSE_DB"]: "synoforecast",
        names["DAGSTER_PG_DB"]: "dagster",
        names["METABASE_DB"]: "metabase",
    }
    assert len(flags) == 5 and all(not any(f[1:]) for f in flags), flags


def test_platform_role_builds_the_warehouse_and_analyst_reads_only_published_outputs(stack_databases):
    from synoforecast.lib.warehouse.connection import ensure_schema

    names, url = stack_databases
    warehouse = names["WAREHOUSE_DB"]
    platform_url = url(warehouse, "synoforecast")
    ensure_schema(platform_url)  # as the platform does on first write
    with psycopg.connect(platform_url, autocommit=True) as conn:
        # tables created after the grants, like a dbt mart or a forecast table
        conn.execute("create table marts.mart_probe as select 1 as quarter_units")
        conn.execute("create view marts.v_probe as select * from marts.mart_probe")
        conn.execute("create table forecast.probe as select 2 as yhat")
        conn.execute("create table public.dbt_probe as select 3 as x")
        conn.execute("create view staging.stg_probe as select 4 as x")
        conn.execute(
            "insert into forecast.forecasts (cohort, as_of_quarter, as_of_label, target_quarter, "
            "target_label, series_id, metric, model, history_quarters, yhat, run_id) values "
            "('svr_rm_overall', '2026-04-01', '2026-Q2', '2026-07-01', '2026-Q3', 'all', 'units', "
            "'AutoETS', 10, 123.0, 'r1')"
        )

    with psycopg.connect(url(warehouse, ANALYST), autocommit=True) as conn:
        assert conn.execute("select quarter_units from marts.mart_probe").fetchall() == [(1,)]
        assert conn.execute("select * from marts.v_probe").fetchall() == [(1,)]
        assert conn.execute("select yhat from forecast.probe").fetchall() == [(2,)]
        assert conn.execute("select count(*) from forecast.forecasts").fetchone() == (1,)
        assert conn.execute("show default_transaction_read_only").fetchone() == ("on",)

        def refused(sql: str) -> None:
            with pytest.raises(psycopg.errors.Error):
                conn.execute(sql)

        # reads outside the published schemas
        for table in ("raw.svr_rm", "ops.snapshots", "staging.stg_probe", "public.dbt_probe", "ops.publish_log"):
            refused(f"select * from {table}")
        # writes, even with the read-only default switched off
        conn.execute("set default_transaction_read_only = off")
        refused("insert into marts.mart_probe values (9)")
        refused("update forecast.forecasts set yhat = 0")
        refused("delete from forecast.forecasts")
        refused("truncate marts.mart_probe")
        refused("drop table marts.mart_probe")
        refused("create table marts.evil (x int)")
        refused("create table forecast.evil (x int)")
        refused("create table public.evil (x int)")
        refused("create schema evil")
        refused("create temporary table evil (x int)")
        # a GRANT without grant option is only a warning: check nothing was granted
        conn.execute("grant select on marts.mart_probe to public")
        assert conn.execute("select has_table_privilege('public', 'marts.mart_probe', 'select')").fetchone() == (False,)
        privileges = conn.execute(
            "select count(*) from information_schema.role_table_grants where grantee in (%s, 'analyst') "
            "and privilege_type <> 'SELECT'",
            [ANALYST],
        ).fetchone()
        assert privileges == (0,)


def test_analyst_cannot_reach_the_other_databases(stack_databases):
    names, url = stack_databases
    for key in ("DAGSTER_PG_DB", "METABASE_DB"):
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(url(names[key], ANALYST)).close()
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(url(names["WAREHOUSE_DB"], "dagster")).close()
