"""PostgreSQL access: the embedded default, COPY loads and atomic partition publishes.

Publishing replaces one partition inside one transaction (delete its rows, COPY the
new ones): readers never see half a partition, and re-running the same input leaves
the same rows.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import polars as pl
import psycopg

from synoforecast.lib.redaction import safe_url
from synoforecast.lib.warehouse.descriptions import describe
from synoforecast.lib.warehouse.schema import warehouse_ddl

log = logging.getLogger(__name__)


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached or used; the message says which server and why."""


def embedded_url(pgdata: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under `pgdata` and return its URL.

    pgserver keeps one server per data folder and shares it between processes
    (Dagster's webserver, daemon and run workers), so this is cheap to call again.
    """
    import pgserver  # imported lazily: deployments with a real server never need it

    pgdata.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(str(pgdata), cleanup_mode=None)
    except Exception as exc:
        raise WarehouseError(f"could not start the embedded PostgreSQL in {pgdata}: {exc}") from exc
    return server.get_uri()


@dataclass(frozen=True)
class ConnectionParts:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    def as_env(self) -> dict[str, str]:
        """Environment for dbt's profiles.yml (secrets stay out of argv and logs)."""
        return {
            "SYNOFORECAST_DBT_HOST": self.host,
            "SYNOFORECAST_DBT_PORT": str(self.port),
            "SYNOFORECAST_DBT_USER": self.user,
            "SYNOFORECAST_DBT_PASSWORD": self.password,
            "SYNOFORECAST_DBT_DBNAME": self.dbname,
        }


def parse_url(url: str) -> ConnectionParts:
    """Split a postgresql:// URL, including the socket form `...@/db?host=/dir`."""
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise WarehouseError(f"warehouse URL must start with postgresql://, got '{parsed.scheme}://'")
    query = parse_qs(parsed.query)
    host = parsed.hostname or (query.get("host", [""])[0]) or "localhost"
    return ConnectionParts(
        host=unquote(host),
        port=parsed.port or int(query.get("port", ["5432"])[0]),
        user=unquote(parsed.username or "postgres"),
        password=unquote(parsed.password or ""),
        dbname=(parsed.path or "/postgres").lstrip("/") or "postgres",
    )


@contextlib.contextmanager
def connect(url: str, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise WarehouseError(f"cannot connect to the warehouse at {safe_url(url)}: {str(exc).strip()}") from None
    try:
        yield conn
    finally:
        conn.close()


def ensure_schema(url: str) -> None:
    """Create schemas and tables the platform writes to (idempotent)."""
    with connect(url) as conn, conn.transaction():
        conn.execute("select pg_advisory_xact_lock(7215001)")  # concurrent runs create once
        for statement in warehouse_ddl():
            conn.execute(statement)
        for schema in ("forecast", "published"):  # every column the platform writes, described
            describe(conn, schema)


def _csv_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_csv(
        buffer,
        include_header=False,
        null_value="",
        quote_style="necessary",
        date_format="%Y-%m-%d",
        datetime_format="%Y-%m-%dT%H:%M:%S%.f%z",
    )
    return buffer.getvalue()


def copy_frame(conn: psycopg.Connection, table: str, frame: pl.DataFrame, chunk_rows: int = 200_000) -> int:
    """COPY a frame into `table` (columns by name), in chunks to bound memory."""
    if frame.is_empty():
        return 0
    columns = ", ".join(frame.columns)
    with conn.cursor() as cur, cur.copy(f"copy {table} ({columns}) from stdin with (format csv, null '')") as copy:
        for offset in range(0, frame.height, chunk_rows):
            copy.write(_csv_bytes(frame.slice(offset, chunk_rows)))
    return frame.height


@dataclass(frozen=True)
class PublishResult:
    table: str
    partition: str
    rows_deleted: int
    rows_written: int


def partition_lock(conn: psycopg.Connection, table: str, scope: str) -> None:
    """Serialise writers of one table partition until the transaction ends: two runs over
    overlapping quarters take turns instead of both deleting, then both inserting."""
    conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{table}|{scope}",))


def replace_rows(
    url: str,
    table: str,
    frame: pl.DataFrame,
    where: str,
    params: Sequence[object],
    run_id: str,
    partition: str,
    *,
    snapshot: str | None = None,
    fingerprint: str | None = None,
) -> PublishResult:
    """Atomically replace the rows matching `where` with `frame`, record what the partition
    now holds (ops.partition_state) and log the publish, under a per-partition advisory lock.

    `snapshot` registers the run's snapshot (the sheet assets pass it; later writers of the
    same run inherit it); `fingerprint` is the partition's content fingerprint, by default
    the run's snapshot's derived fingerprint of `partition`."""
    from synoforecast.lib.warehouse import partition_state

    scope = partition_state.scope_of(params)
    with connect(url) as conn, conn.transaction():
        partition_lock(conn, table, scope)
        if snapshot:
            partition_state.register_run(conn, run_id, snapshot)
        deleted, written = _replace_in(conn, table, frame, where, params, run_id, partition)
        partition_state.record(conn, table, scope, partition, run_id, fingerprint, snapshot)
    return PublishResult(table, partition, deleted, written)


def _replace_in(
    conn: psycopg.Connection,
    table: str,
    frame: pl.DataFrame,
    where: str,
    params: Sequence[object],
    run_id: str,
    partition: str,
) -> tuple[int, int]:
    """Delete the rows matching `where`, COPY `frame` in and log it, inside the caller's transaction."""
    deleted = conn.execute(f"delete from {table} where {where}", params).rowcount
    written = copy_frame(conn, table, frame)
    conn.execute(
        "insert into ops.publish_log (run_id, target, partition_key, rows_deleted, rows_written) "
        "values (%s, %s, %s, %s, %s)",
        (run_id, table, partition, deleted, written),
    )
    return deleted, written


def replace_many(
    url: str, writes: Sequence[tuple[str, pl.DataFrame, str, Sequence[object]]], run_id: str, partition: str
) -> dict[str, int]:
    """Several (table, frame, where, params) replacements in ONE transaction, each table locked
    for `partition`: readers see all of them or none. Returns rows written per table."""
    out = {}
    with connect(url) as conn, conn.transaction():
        for table, frame, where, params in writes:
            partition_lock(conn, table, partition)
            out[table] = _replace_in(conn, table, frame, where, params, run_id, partition)[1]
    return out


@contextlib.contextmanager
def session_lock(url: str, key: str, timeout_s: float, on_wait=None, poll_s: float = 1.0) -> Iterator[bool]:
    """Hold the advisory lock `key` for the duration of the block (True), or give up after
    `timeout_s` (False). Held by a connection of its own, so it dies with the process:
    a killed holder never wedges the next one."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise WarehouseError(f"cannot connect to the warehouse at {safe_url(url)}: {str(exc).strip()}") from None
    deadline = time.monotonic() + timeout_s
    announced = False
    try:
        while not conn.execute("select pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()[0]:
            if time.monotonic() >= deadline:
                yield False
                return
            if on_wait and not announced:
                on_wait()
                announced = True
            time.sleep(poll_s)
        try:
            yield True
        finally:
            with contextlib.suppress(psycopg.Error):  # a lost connection has released it already
                conn.execute("select pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
    finally:
        conn.close()


def query_frame(url: str, sql: str, params: Sequence[object] = ()) -> pl.DataFrame:
    """Run a query and return a polars frame (empty frame with the right columns if no rows)."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        names = [d.name for d in cur.description or []]
        rows = cur.fetchall()
    if not rows:
        return pl.DataFrame({n: [] for n in names})
    return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)


def copy_query_frame(url: str, sql: str, params: Sequence[object], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Run a query through COPY ... TO STDOUT (CSV) into a typed polars frame.

    For large reads: rows never become Python objects (query_frame's fetchall of a
    million rows takes gigabytes). `schema` names every column the query returns."""
    buffer = io.BytesIO()
    with connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"copy ({sql}) to stdout with (format csv, header true, null '')", params) as copy:
            for block in copy:
                buffer.write(block)
    if buffer.tell() == 0:
        return pl.DataFrame(schema=schema)
    buffer.seek(0)
    return pl.read_csv(buffer, schema=schema, null_values=[""], try_parse_dates=False)


def table_exists(url: str, qualified: str) -> bool:
    with connect(url) as conn:
        return conn.execute("select to_regclass(%s) is not null", (qualified,)).fetchone()[0]


def resolve_url(configured: str | None, pgdata: Path) -> str:
    """The configured warehouse (settings.configured_warehouse_url), or the embedded one
    under the data folder (started if needed)."""
    return configured or embedded_url(pgdata)


_READY: dict[str, str] = {}


def ready_url(configured: str | None, pgdata: Path) -> str:
    """resolve_url with the platform's schemas in place, checked once per process and warehouse."""
    key = configured or str(pgdata)
    if key not in _READY:
        resolved = resolve_url(configured, pgdata)
        ensure_schema(resolved)
        _READY[key] = resolved
    return _READY[key]
