"""Dagster's PostgreSQL storage, holding its connections instead of opening one per statement.

dagster-postgres gives its run, event-log and schedule storages a ``NullPool`` engine ("to
prevent accumulating connections per DagsterInstance"): every statement opens a new
connection. Over TCP with scram-sha-256, as in the Synology stack, a connection costs about
25 ms on a 2-core host (pgbench -C against the stack's PostgreSQL: 25 ms per connection with
scram-sha-256, 4.7 ms with trust, load 7), and a pipeline run writes one event per dbt model
and test per quarter. The small sample's in-process run against such a server opened 7,089
connections; its dbt step took 101 s, against 13 s on the embedded SQLite storage. The idle
stack opened 27 connections a second (sensors every 5 s, health checks).

``PooledPostgresStorage`` is Dagster's combined storage with one small pool per storage
(``pool_size`` 1, a few overflow connections for concurrent threads), checked before use
(a restarted server costs one failed ping, not a failed run) and recycled hourly; an
instance's connections close when it is disposed (the code server disposes the instance of
each request). Events Dagster can batch (a run's planned assets, a partition range's
materializations) go in one statement, as in synoforecast/instance/sqlite_storage.py.

Used by the Synology deployment's ``deploy/dagster.yaml`` (``storage: custom``), configured
exactly like ``storage: postgres``.
"""

from __future__ import annotations

import os
from typing import Any

from dagster._core.storage.base_storage import DagsterStorage
from dagster._serdes import ConfigurableClassData
from dagster_postgres import (
    DagsterPostgresStorage,
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

from synoforecast.instance.sqlite_storage import EVENT_BATCH_SIZE, EVENT_BATCH_VARIABLE

POOL_SIZE = 1  # held per storage and process: 3 per process (run, event log, schedule)
MAX_OVERFLOW = 4  # concurrent threads (the daemon's, the webserver's) beyond the held one
RECYCLE_S = 3600


class _Pooled:
    """Swaps the storage's NullPool engine for a small pool; closes it with the instance."""

    postgres_url: str

    def _pool(self, token_provider) -> None:
        self._engine.dispose()  # the NullPool engine that checked the tables
        self._engine = create_pg_engine(
            self.postgres_url,
            token_provider,
            isolation_level="AUTOCOMMIT",
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
            pool_recycle=RECYCLE_S,
            pool_pre_ping=True,
        )

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._engine.dispose()


class PooledRunStorage(_Pooled, PostgresRunStorage):
    pass


class PooledEventLogStorage(_Pooled, PostgresEventLogStorage):
    pass


class PooledScheduleStorage(_Pooled, PostgresScheduleStorage):
    pass


class PooledPostgresStorage(DagsterPostgresStorage):
    """DagsterPostgresStorage whose run, event-log and schedule storages keep a small pool."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None, token_provider=None):
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        self._run_storage = PooledRunStorage(postgres_url, should_autocreate_tables, token_provider=token_provider)
        self._event_log_storage = PooledEventLogStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._schedule_storage = PooledScheduleStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage._pool(token_provider)
        os.environ.setdefault(EVENT_BATCH_VARIABLE, str(EVENT_BATCH_SIZE))
        DagsterStorage.__init__(self)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> PooledPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
