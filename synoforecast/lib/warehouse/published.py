"""The published snapshot: what analysts and Metabase read (schema `published`).

The pipeline writes partition by partition into its working tables (`raw`, `marts`,
`forecast`); a run that dies leaves them mixed. Analysts never see that: at the end of a
run that succeeded, `switch` checks, under share locks that hold every writer off, that
every partition holds this export's content (ops.partition_state), then copies the marts
and forecasts into `published` and moves the pointer `ops.published_snapshot`, all in one
transaction. Readers see the previous complete export until the commit and the next one
after it, never a mix.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from synoforecast.lib.ingest.quality import stale_quarters
from synoforecast.lib.warehouse import partition_state
from synoforecast.lib.warehouse.analyst_views import record_vintage, views_ddl
from synoforecast.lib.warehouse.connection import connect
from synoforecast.lib.warehouse.descriptions import describe
from synoforecast.lib.warehouse.schema import PUBLISHED_SCHEMA

FORECAST_SOURCES = ("forecast.forecasts", "forecast.evaluation", "forecast.actuals")
SWITCH_LOCK = "published-snapshot-switch"


class NotPublishable(RuntimeError):
    """Some partitions do not hold the snapshot's content: the switch would publish a mix."""

    def __init__(self, snapshot: str, stale: list[str]):
        self.stale = stale
        super().__init__(
            f"not publishing snapshot {snapshot[:12]}: {len(stale)} quarter partition(s) do not hold "
            f"its content ({', '.join(stale[:8])}{' ...' if len(stale) > 8 else ''}); "
            "the published export is unchanged"
        )


@dataclass(frozen=True)
class SwitchResult:
    snapshot_sha256: str
    tables: dict[str, int]  # published table -> rows


def _sources(conn: psycopg.Connection) -> list[str]:
    marts = [
        f"marts.{name}"
        for (name,) in conn.execute(  # not dbt's __dbt_tmp/__dbt_backup leftovers
            "select table_name from information_schema.tables where table_schema = 'marts' "
            r"and table_type = 'BASE TABLE' and table_name not like '%%\_\_dbt\_%%' order by table_name"
        ).fetchall()
    ]
    present = [t for t in FORECAST_SOURCES if conn.execute("select to_regclass(%s)", (t,)).fetchone()[0]]
    return marts + present


def _columns(conn: psycopg.Connection, qualified: str) -> list[tuple[str, str]]:
    schema, table = qualified.split(".")
    return conn.execute(
        "select column_name, data_type from information_schema.columns where table_schema = %s "
        "and table_name = %s order by ordinal_position",
        (schema, table),
    ).fetchall()


def _copy(conn: psycopg.Connection, source: str) -> tuple[str, int]:
    target = f"{PUBLISHED_SCHEMA}.{source.split('.')[1]}"
    if _columns(conn, target) != _columns(conn, source):  # new table, or the model's columns changed
        conn.execute(f"drop table if exists {target} cascade")
        conn.execute(f"create table {target} (like {source} including defaults)")
    conn.execute(f"delete from {target}")
    rows = conn.execute(f"insert into {target} select * from {source}").rowcount
    return target, rows


def switch(
    url: str,
    snapshot_sha256: str,
    run_id: str,
    expected: dict[str, dict[str, str]],
    required_scopes: dict[str, int],
    cohorts: list[str],
    export_date: dt.date | None = None,
) -> SwitchResult:
    """Publish the working tables as the complete export `snapshot_sha256`, atomically, with
    the analysts' views, and keep its next-quarter forecast as made (forecast.vintages)."""
    with connect(url) as conn, conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (SWITCH_LOCK,))
        sources = _sources(conn)
        # writers (replace_rows, dbt) take ROW EXCLUSIVE: none can commit while we check and copy
        conn.execute(f"lock table {', '.join([*sources, 'ops.partition_state'])} in share mode")
        stale = stale_quarters(expected, partition_state.load(conn), required_scopes)
        if stale:
            raise NotPublishable(snapshot_sha256, stale)
        tables = dict(_copy(conn, source) for source in sources)
        if "forecast.forecasts" in sources:
            for statement in views_ddl(cohorts, conn, PUBLISHED_SCHEMA):
                conn.execute(statement)
            if export_date is not None:
                tables["forecast.vintages"] = record_vintage(conn, snapshot_sha256, export_date)
        describe(conn, PUBLISHED_SCHEMA)  # the copies and views carry their texts (a re-run: none to write)
        conn.execute(
            "insert into ops.published_snapshot (id, snapshot_sha256, run_id, published_at) values (true, %s, %s, now()) "
            "on conflict (id) do update set snapshot_sha256 = excluded.snapshot_sha256, run_id = excluded.run_id, "
            "published_at = excluded.published_at",
            (snapshot_sha256, run_id),
        )
    return SwitchResult(snapshot_sha256, tables)


def published_snapshot(url: str) -> tuple[str, str] | None:
    """(snapshot sha256, run id) of the export analysts see now."""
    with connect(url) as conn:
        row = conn.execute("select snapshot_sha256, run_id from ops.published_snapshot").fetchone()
    return (row[0], row[1]) if row else None


def publish_targets(expected: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """A manifest's expected fingerprints without its 'derived' lookup entry: what every
    partition must hold before `published` may switch to the export."""
    return {target: keys for target, keys in expected.items() if target != "derived"}
