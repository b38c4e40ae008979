"""The compact snapshot id on raw rows (issue 13): one id per workbook sha256, and an older
warehouse whose raw rows carry the 64-character sha256 is migrated in place."""

from __future__ import annotations

import psycopg
import pytest

from synoforecast.lib.warehouse.connection import ensure_schema
from synoforecast.lib.warehouse.schema import OPS_DDL, RAW_TABLES, create_table_sql
from synoforecast_tests.conftest import fetch

pytestmark = pytest.mark.integration

A, B, UNKNOWN = "a" * 64, "b" * 64, "c" * 64


def _old_warehouse(url: str) -> None:
    """raw.svr_rm and ops.snapshots as the release before issue 13 created them, with a
    staging view on the old column."""
    old_columns = [(n, "text not null") if n == "snapshot_id" else (n, k) for n, k in RAW_TABLES["svr_rm"]]
    old_columns = [("snapshot_sha256", k) if n == "snapshot_id" else (n, k) for n, k in old_columns]
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in ("raw", "ops", "staging"):
            conn.execute(f"create schema {schema}")
        conn.execute(create_table_sql("raw", "svr_rm", old_columns))
        conn.execute(OPS_DDL[0])  # ops.snapshots without snapshot_id
        for sha in (B, A):
            conn.execute(
                "insert into ops.snapshots (sha256, file, size_bytes, file_mtime, status) "
                "values (%s, 'x.xlsx', 1, now(), 'accepted')",
                (sha,),
            )
        for row, sha in enumerate([A, A, A, B, B, UNKNOWN]):
            conn.execute(
                "insert into raw.svr_rm (sale_date, customer_id, model, units, revenue_usd, is_unknown_model, "
                "is_unknown_country, source_row, quarter_start, quarter_label, snapshot_sha256) values "
                "('2025-07-14', 'C1', 'RS822+', 1, 10, false, false, %s, '2025-07-01', '2025-Q3', %s)",
                (row + 2, sha),
            )
        conn.execute("create view staging.stg_svr_rm as select snapshot_sha256 from raw.svr_rm")


def test_an_older_warehouse_gets_one_compact_id_per_snapshot(pg_url):
    _old_warehouse(pg_url)
    ensure_schema(pg_url)
    ensure_schema(pg_url)  # idempotent: the second run finds nothing to migrate
    columns = fetch(
        pg_url,
        "select column_name, data_type, is_nullable from information_schema.columns "
        "where table_schema = 'raw' and table_name = 'svr_rm' and column_name like 'snapshot%%'",
    )
    assert columns == [("snapshot_id", "integer", "NO")]
    ids = dict(fetch(pg_url, "select sha256, snapshot_id from ops.snapshots"))
    assert len(set(ids.values())) == 2 and 0 not in ids.values()
    by_row = fetch(pg_url, "select source_row, snapshot_id from raw.svr_rm order by source_row")
    assert [sid for _, sid in by_row] == [ids[A]] * 3 + [ids[B]] * 2 + [0]  # 0: a sha256 ops never knew
    # the staging view on the old column went with it: the next dbt build recreates it
    assert fetch(pg_url, "select to_regclass('staging.stg_svr_rm') is null") == [(True,)]
    # new snapshots keep getting fresh ids, and an upsert of a known sha256 keeps its id
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "insert into ops.snapshots (sha256, file, size_bytes, file_mtime, status) "
            "values (%s, 'y.xlsx', 1, now(), 'accepted')",
            ("d" * 64,),
        )
        conn.execute(
            "insert into ops.snapshots (sha256, file, size_bytes, file_mtime, status) values "
            "(%s, 'z.xlsx', 1, now(), 'accepted') on conflict (sha256) do update set file = excluded.file",
            (A,),
        )
    after = dict(fetch(pg_url, "select sha256, snapshot_id from ops.snapshots"))
    assert after[A] == ids[A] and after[B] == ids[B] and after["d" * 64] not in ids.values()


def test_a_fresh_warehouse_has_no_sha256_on_raw_rows_and_no_redundant_quarter_index(pg_url):
    ensure_schema(pg_url)
    text_columns = fetch(
        pg_url,
        "select table_name from information_schema.columns where table_schema = 'raw' "
        "and column_name = 'snapshot_sha256'",
    )
    assert text_columns == []
    indexes = {r[0] for r in fetch(pg_url, "select indexname from pg_indexes where schemaname = 'raw'")}
    assert {"svr_rm_grain_uq", "consumer_grain_uq", "c2_grain_uq", "region_map_quarter_idx"} <= indexes
    assert not {"svr_rm_quarter_idx", "consumer_quarter_idx", "c2_quarter_idx"} & indexes
