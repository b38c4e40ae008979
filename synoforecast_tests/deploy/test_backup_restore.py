"""deploy/scripts/backup.sh and restore.sh, run with bash against a real PostgreSQL 16:
a populated warehouse is dumped, restored into a fresh database, and every table's row
count and content checksum match; damaged dumps and unsafe targets are refused;
retention prunes old dumps but keeps the newest ones."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from synoforecast_tests.conftest import fetch, new_database
from synoforecast_tests.deploy.tools import DEPLOY, WAREHOUSE_SCHEMAS, pg_bin_dir, socket_dir
from synoforecast_tests.support.warehouse_prints import table_prints

pytestmark = pytest.mark.integration

SCRIPTS = DEPLOY / "scripts"


def _populate(url: str) -> None:
    """The warehouse as the platform leaves it: its DDL, raw rows for a dozen quarters,
    a mart, forecasts, the ops log, a view."""
    from synoforecast.lib.warehouse.connection import ensure_schema

    ensure_schema(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
insert into raw.svr_rm (sale_date, region, country, customer_id, customer, model, tier, units, revenue_usd,
  channel, is_unknown_model, is_unknown_country, source_row, quarter_start, quarter_label, snapshot_id)
select d, (array['EMEA','APAC','AMER'])[1 + i % 3], (array['DE','FR','JP','US'])[1 + i % 4], 'C' || (i % 250),
  'Customer ' || (i % 250), 'RS' || (1000 + i % 40), 'T' || (1 + i % 3), 1 + i % 17, round((i * 37.31)::numeric % 9999, 2),
  case when i % 5 = 0 then null else 'distribution' end, i % 97 = 0, false, i,
  date_trunc('quarter', d)::date, to_char(d, 'YYYY-"Q"Q'), 1
from (select i, date '2023-10-01' + (i % 1000) as d from generate_series(1, 60000) i) s""")
        conn.execute("""create table marts.mart_svr_rm_quarterly as
select quarter_start, tier, sum(units) as units, sum(revenue_usd) as revenue_usd
from raw.svr_rm group by 1, 2""")
        conn.execute(
            "create view marts.v_latest as select * from marts.mart_svr_rm_quarterly "
            "where quarter_start = (select max(quarter_start) from marts.mart_svr_rm_quarterly)"
        )
        conn.execute("""
insert into forecast.forecasts (cohort, as_of_quarter, as_of_label, target_quarter, target_label, series_id,
  metric, model, history_quarters, yhat, yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95, run_id)
select 'svr_rm_overall', q, 'L', (q + interval '3 months')::date, 'T', 'T' || t, 'units', 'AutoETS', 8,
  1000.5 + t * 3.25, 900, 1100, 800, 1200, 'run-1'
from generate_series(date '2024-01-01', date '2026-04-01', interval '3 months') q, generate_series(1, 3) t""")
        conn.execute("""insert into ops.snapshots (sha256, file, size_bytes, file_mtime, status)
values ('abc', 'sale-out.xlsx', 123456, now(), 'accepted')""")


def _dbname(url: str) -> str:
    from urllib.parse import urlparse

    return urlparse(url).path.lstrip("/")


@pytest.fixture(scope="module")
def scripts_env(pg_server) -> dict[str, str]:
    bin_dir = pg_bin_dir()
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PGHOST": socket_dir(pg_server.get_uri()),
        "PGUSER": "postgres",
        "PG_DUMP": str(bin_dir / "pg_dump"),
        "PG_RESTORE": str(bin_dir / "pg_restore"),
        "PSQL": str(bin_dir / "psql"),
    }


def _run(script: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args], env=env, check=False, capture_output=True, text=True, timeout=300
    )


def test_backup_then_restore_reproduces_the_warehouse(pg_server, scripts_env, tmp_path):
    source = new_database(pg_server)
    source_db = _dbname(source)
    _populate(source)
    before = table_prints(source, WAREHOUSE_SCHEMAS, views=True)
    assert before["raw.svr_rm"][0] == 60000 and len(before) >= 10

    backups = tmp_path / "backups"
    env = {**scripts_env, "BACKUP_DIR": str(backups), "BACKUP_DATABASES": source_db}
    result = _run("backup.sh", env)
    assert result.returncode == 0, result.stdout + result.stderr
    dumps = sorted(backups.glob(f"{source_db}_*.dump"))
    assert len(dumps) == 1 and dumps[0].stat().st_size > 0
    assert (backups / f"{dumps[0].name}.sha256").exists() and (backups / "last_success").exists()
    assert not list(backups.glob("*.partial"))

    target_db = f"{source_db}_restored"
    result = _run("restore.sh", scripts_env, str(dumps[0]), target_db, "--create")
    assert result.returncode == 0, result.stdout + result.stderr
    restored = pg_server.get_uri(target_db)
    assert table_prints(restored, WAREHOUSE_SCHEMAS, views=True) == before
    # the view and the column defaults survive too
    assert fetch(restored, "select count(*) from marts.v_latest")[0][0] > 0
    assert fetch(restored, "select count(*) from forecast.forecasts where created_at is null")[0][0] == 0

    # restoring over a database that has tables needs an explicit --replace
    refused = _run("restore.sh", scripts_env, str(dumps[0]), target_db)
    assert refused.returncode != 0 and "not empty" in refused.stderr
    with psycopg.connect(restored, autocommit=True) as conn:
        conn.execute("delete from raw.svr_rm where source_row > 100")
    replaced = _run("restore.sh", scripts_env, str(dumps[0]), target_db, "--replace")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert table_prints(restored, WAREHOUSE_SCHEMAS, views=True) == before


def test_a_damaged_dump_is_refused_and_changes_nothing(pg_server, scripts_env, tmp_path):
    source = new_database(pg_server)
    source_db = _dbname(source)
    _populate(source)
    backups = tmp_path / "backups"
    env = {**scripts_env, "BACKUP_DIR": str(backups), "BACKUP_DATABASES": source_db}
    assert _run("backup.sh", env).returncode == 0
    dump = next(backups.glob(f"{source_db}_*.dump"))
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    result = _run("restore.sh", scripts_env, str(dump), f"{source_db}_bad", "--create")
    assert result.returncode != 0 and "checksum mismatch" in result.stderr
    assert (
        fetch(pg_server.get_uri(), "select count(*) from pg_database where datname = %s", [f"{source_db}_bad"])[0][0]
        == 0
    )


def test_backup_fails_loudly_and_leaves_no_partial_file(scripts_env, tmp_path):
    backups = tmp_path / "backups"
    env = {**scripts_env, "BACKUP_DIR": str(backups), "BACKUP_DATABASES": "no_such_database"}
    result = _run("backup.sh", env)
    assert result.returncode != 0 and "pg_dump of no_such_database failed" in result.stderr
    assert not list(backups.iterdir())  # no dump, no partial, no last_success
    missing_tool = _run("backup.sh", {**env, "PG_DUMP": str(tmp_path / "nope")})
    assert missing_tool.returncode != 0 and "pg_dump not found" in missing_tool.stderr


def test_retention_prunes_old_dumps_but_keeps_the_newest(pg_server, scripts_env, tmp_path):
    db = _dbname(new_database(pg_server))
    backups = tmp_path / "backups"
    backups.mkdir()
    old_time = time.time() - 40 * 86400
    for day in range(1, 6):  # five 40-day-old dumps
        old = backups / f"{db}_2020010{day}T000000Z.dump"
        old.write_bytes(b"old")
        Path(f"{old}.sha256").write_text("x")
        os.utime(old, (old_time + day, old_time + day))
    other = backups / "otherdb_20200101T000000Z.dump"
    other.write_bytes(b"old")
    os.utime(other, (old_time, old_time))
    env = {
        **scripts_env,
        "BACKUP_DIR": str(backups),
        "BACKUP_DATABASES": db,
        "BACKUP_RETENTION_DAYS": "14",
        "BACKUP_KEEP_MIN": "3",
    }
    result = _run("backup.sh", env)
    assert result.returncode == 0, result.stdout + result.stderr
    kept = sorted(p.name for p in backups.glob(f"{db}_*.dump"))
    # the new dump plus the two newest old ones (3 in all); the three oldest are gone
    assert len(kept) == 3
    assert kept[:2] == [f"{db}_20200104T000000Z.dump", f"{db}_20200105T000000Z.dump"]
    assert not (backups / f"{db}_20200101T000000Z.dump.sha256").exists()
    assert other.exists(), "other databases' dumps are not touched"
