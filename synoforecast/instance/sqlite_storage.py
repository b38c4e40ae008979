"""Dagster's SQLite run and event-log storage, with one pooled engine per database file.

Dagster's own SQLite storages open a new engine and connection for every statement batch
(`NullPool`), and each close of a database's last connection checkpoints its WAL with an
fsync; every commit fsyncs too. A 23-quarter pipeline run stores ~7,000 events, so that
bookkeeping alone took about a quarter of the embedded run's wall time (commit 6.6 s,
close 5.7 s, engine creation 4.9 s of a profiled 125 s run). These subclasses keep each
database's engine (and its connections) for the life of the process and run SQLite at
``synchronous=NORMAL``, which in WAL mode keeps every database consistent and loses at most
the last few events of an operating-system crash or power cut (not of a killed process).
The event log also writes Dagster's batches (a run's planned assets, a step's materializations
of a partition range: two thirds of a 23-quarter run's events) in one transaction per database
(Dagster's opt-in `DAGSTER_EVENT_BATCH_SIZE`, set for the process), and keeps the schema
facts Dagster looks up again for every event.

Used by the embedded mode's `dagster.yaml`; the Synology deployment stores Dagster's
history in PostgreSQL (deploy/dagster.yaml) and does not use this module.
"""

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as db
from dagster import Field, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from dagster import DagsterInstance

MAX_OPEN_DATABASES = 16  # run shards a long-lived process (webserver, daemon) keeps open
# Dagster sends batchable events (planned assets, a partition range's materializations) to
# `store_event_batch` only when this variable is set; this storage opts its process in
EVENT_BATCH_VARIABLE, EVENT_BATCH_SIZE = "DAGSTER_EVENT_BATCH_SIZE", 1000


def _sqlite_engine(conn_string: str) -> db.engine.Engine:
    engine = db.create_engine(conn_string, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})

    @db.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def _default_base_dir(*parts: str) -> str:
    """Dagster's own layout under DAGSTER_HOME, so existing homes keep their history."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError("set DAGSTER_HOME or give the storage a base_dir")
    return os.path.join(home, *parts, "")


def _base_dir_config() -> dict:
    return {
        "base_dir": Field(
            StringSource, is_required=False, description="defaults to Dagster's own layout under DAGSTER_HOME"
        )
    }


class PooledSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage (`<DAGSTER_HOME>/history/runs.db`) on one pooled engine."""

    def __init__(self, conn_string: str, inst_data=None):
        super().__init__(conn_string, inst_data)
        self._engine = _sqlite_engine(conn_string)

    @classmethod
    def config_type(cls):
        return _base_dir_config()

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.from_local(config_value.get("base_dir") or _default_base_dir("history"), inst_data=inst_data)

    @contextmanager
    def connect(self) -> Iterator[db.engine.Connection]:
        with self._engine.connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log (`<DAGSTER_HOME>/history/runs/`), keeping the
    engines of the most recently used databases open."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, db.engine.Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._known_schema: set[str] = set()
        self._batch = threading.local()
        super().__init__(base_dir, inst_data)
        os.environ.setdefault(EVENT_BATCH_VARIABLE, str(EVENT_BATCH_SIZE))

    # Dagster asks the index database's schema for every event: `has_table` (a new engine each
    # time) for each check event, the asset-key columns for each asset event; ~1,500 questions
    # a run. Migrations only add tables and columns, so a yes is kept (a no is asked again).
    def has_table(self, table_name: str) -> bool:
        return self._known(
            f"table:{table_name}", lambda: super(PooledSqliteEventLogStorage, self).has_table(table_name)
        )

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        return self._known(
            f"asset_keys.{column_name}",
            lambda: super(PooledSqliteEventLogStorage, self)._has_asset_key_col_on_connection(conn, column_name),
        )

    def _known(self, what: str, ask) -> bool:
        if what in self._known_schema:
            return True
        found = bool(ask())
        if found:
            self._known_schema.add(what)
        return found

    @classmethod
    def config_type(cls):
        return _base_dir_config()

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(config_value.get("base_dir") or _default_base_dir("history", "runs"), inst_data=inst_data)

    def _engine(self, shard: str) -> db.engine.Engine:
        with self._engines_lock:
            engine = self._engines.pop(shard, None) or _sqlite_engine(self.conn_string_for_shard(shard))
            self._engines[shard] = engine  # most recently used last
            while len(self._engines) > MAX_OPEN_DATABASES:
                self._engines.popitem(last=False)[1].dispose()
            return engine

    def _dispose_engines(self) -> None:
        with self._engines_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def _ready_engine(self, shard: str) -> db.engine.Engine:
        engine = self._engine(shard)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.engine.Connection]:
        batch = getattr(self._batch, "open", None)
        if batch is not None:  # inside store_event_batch: the batch's transaction on this database
            if shard not in batch:
                with self._db_lock:
                    conn = self._ready_engine(shard).connect()
                batch[shard] = (conn, conn.begin())
            yield batch[shard][0]
            return
        with self._db_lock:
            with self._ready_engine(shard).connect() as conn:
                with conn.begin():
                    yield conn

    def store_event_batch(self, events) -> None:
        """A batch Dagster sends together (a run's planned assets, a step's materializations of
        a partition range) in one transaction per database, not one per statement. On an error
        nothing of the batch is kept and Dagster stores the events one by one."""
        self._batch.open = opened = {}
        try:
            for event in events:
                self.store_event(event)
            for _, transaction in opened.values():
                transaction.commit()
        except BaseException:
            for _, transaction in opened.values():
                transaction.rollback()
            raise
        finally:
            self._batch.open = None
            for conn, _ in opened.values():
                conn.close()

    def wipe(self) -> None:
        self._dispose_engines()  # before the run databases' files are deleted
        self._known_schema.clear()
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._dispose_engines()


@contextmanager
def open_instance(dagster_home) -> Iterator["DagsterInstance"]:
    """`DagsterInstance.from_config(dagster_home)` whose storages default to that folder: the
    storages above read their default folder from DAGSTER_HOME (as Dagster's processes all have
    it), so it names this home while they are built."""
    from dagster import DagsterInstance

    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    try:
        instance = DagsterInstance.from_config(str(dagster_home))
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    with instance:
        yield instance
