"""What each published partition was built from (`ops.partition_state`).

Every writer records, in the transaction that writes the rows, the snapshot and the
content fingerprint the partition now holds. Change detection (lib/ingest/quality.py
`stale_quarters`) compares the current snapshot's fingerprints with these rows, so a
run that died half-way leaves partitions that no longer match and the next ingest or
sensor tick re-runs exactly those.

Writers that do not know the fingerprint (forecast and evaluation publishes) get it from
the snapshot their run registered (`ops.run_snapshots`, written by the sheet assets):
the snapshot's cumulative "derived" fingerprint of that quarter.

Beside it, `ops.dbt_inputs` keeps what dbt last built from (lib/transform/dbt_selection.py): not a
published partition, so it lives in a table of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

UNKNOWN = "unknown"  # a write outside a snapshot run (e.g. one asset materialised by hand): never current


def scope_of(params: Sequence[object]) -> str:
    """The partition's identity within its table: the publish's WHERE parameters."""
    return "|".join(str(p) for p in params)


def register_run(conn: psycopg.Connection, run_id: str, snapshot_sha256: str) -> None:
    conn.execute(
        "insert into ops.run_snapshots (run_id, snapshot_sha256) values (%s, %s) "
        "on conflict (run_id) do update set snapshot_sha256 = excluded.snapshot_sha256",
        (run_id, snapshot_sha256),
    )


def record(
    conn: psycopg.Connection,
    target: str,
    scope: str,
    partition_key: str,
    run_id: str,
    fingerprint: str | None = None,
    snapshot_sha256: str | None = None,
) -> None:
    """Upsert the partition's state; without a fingerprint, the run's snapshot's derived one."""
    conn.execute(
        """insert into ops.partition_state (target, scope, partition_key, snapshot_sha256, fingerprint, run_id,
                                           published_at)
           select %(target)s, %(scope)s, %(key)s, coalesce(%(snap)s, r.snapshot_sha256),
                  coalesce(%(fp)s, s.fingerprints -> 'derived' ->> %(key)s, %(unknown)s), %(run)s, now()
             from (select %(run)s::text as run_id) x
             left join ops.run_snapshots r on r.run_id = x.run_id
             left join ops.snapshots s on s.sha256 = coalesce(%(snap)s, r.snapshot_sha256)
           on conflict (target, scope) do update set partition_key = excluded.partition_key,
               snapshot_sha256 = excluded.snapshot_sha256, fingerprint = excluded.fingerprint,
               run_id = excluded.run_id, published_at = excluded.published_at""",
        {
            "target": target,
            "scope": scope,
            "key": partition_key,
            "snap": snapshot_sha256,
            "fp": fingerprint,
            "unknown": UNKNOWN,
            "run": run_id,
        },
    )


def invalidate(conn: psycopg.Connection, target: str, partition_keys: Sequence[str]) -> None:
    """Forget partitions about to be rewritten by a writer that cannot record in its own
    transaction (dbt): if it dies half-way they read as stale, never as current."""
    conn.execute(
        "delete from ops.partition_state where target = %s and partition_key = any(%s)", (target, list(partition_keys))
    )


def load(conn: psycopg.Connection) -> list[tuple[str, str, str, str]]:
    """(target, scope, partition_key, fingerprint) of every recorded partition."""
    return conn.execute("select target, scope, partition_key, fingerprint from ops.partition_state").fetchall()


def load_dbt_inputs(conn: psycopg.Connection) -> dict[str, str]:
    """ops.dbt_inputs: scope -> fingerprint of what dbt last built from (lib/transform/dbt_selection.py)."""
    return dict(conn.execute("select scope, fingerprint from ops.dbt_inputs").fetchall())


def forget_dbt_inputs(conn: psycopg.Connection, scopes: Sequence[str]) -> None:
    """Before dbt rebuilds from these inputs: a build that dies half-way leaves them unrecorded,
    so the next run rebuilds them."""
    conn.execute("delete from ops.dbt_inputs where scope = any(%s)", (list(scopes),))


def record_dbt_inputs(conn: psycopg.Connection, records: dict[str, str], run_id: str) -> None:
    """After a successful dbt build: what it built from."""
    with conn.cursor() as cur:
        cur.executemany(
            "insert into ops.dbt_inputs (scope, fingerprint, run_id) values (%s, %s, %s) "
            "on conflict (scope) do update set fingerprint = excluded.fingerprint, "
            "run_id = excluded.run_id, built_at = now()",
            [(scope, fp, run_id) for scope, fp in records.items()],
        )
