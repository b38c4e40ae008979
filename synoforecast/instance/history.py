"""Retention of Dagster's own history for the embedded (SQLite) instance (issue 12, point 5).

Every run keeps its event log, and every check evaluation its row: after ~45 demo-sized
runs `DAGSTER_HOME` held 301 MB. Open-source Dagster purges sensor and schedule ticks
(dagster.yaml `retention:`), not runs, so this prunes runs older than the retention
period, EXCEPT a run that still holds the latest materialisation of an asset partition or
the latest evaluation of a check partition: deleting those would turn a quarter the UI
shows as materialised and Passed into "missing" and "not evaluated".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable  # not public: see _forget_checks

DEFAULT_RETENTION_DAYS = 30
PAGE = 1000


@dataclass
class PruneReport:
    deleted: list[str] = field(default_factory=list)
    kept_current: int = 0  # old runs kept: they hold the latest state of a partition


def runs_holding_current_state(
    instance: dg.DagsterInstance, asset_keys: Iterable[dg.AssetKey], check_keys: Iterable[dg.AssetCheckKey]
) -> set[str]:
    """Run ids of the latest materialisation per asset partition and the latest evaluation per check partition."""
    keep: set[str] = set()
    for key in asset_keys:
        seen: set[str | None] = set()
        cursor = None
        while True:  # newest first, in pages (storage caps one fetch at 10,000 records)
            page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=PAGE, cursor=cursor)
            for record in page.records:
                if record.partition_key not in seen:
                    seen.add(record.partition_key)
                    keep.add(record.run_id)
            if not page.has_more:
                break
            cursor = page.cursor
    for check_key in check_keys:
        seen = set()
        cursor = None
        while True:
            page = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=PAGE, cursor=cursor)
            for record in page:
                if record.partition not in seen:
                    seen.add(record.partition)
                    keep.add(record.run_id)
            if len(page) < PAGE:
                break
            cursor = page[-1].id
    return keep


def prune_history(
    instance: dg.DagsterInstance,
    asset_keys: Iterable[dg.AssetKey],
    check_keys: Iterable[dg.AssetCheckKey],
    older_than_days: int = DEFAULT_RETENTION_DAYS,
    now: dt.datetime | None = None,
) -> PruneReport:
    """Delete finished runs older than ``older_than_days`` that hold no current state."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=older_than_days)
    keep = runs_holding_current_state(instance, asset_keys, check_keys)
    report = PruneReport()
    finished = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
        created_before=cutoff,
    )
    for record in instance.get_run_records(filters=finished):
        run_id = record.dagster_run.run_id
        if run_id in keep:
            report.kept_current += 1
            continue
        instance.delete_run(run_id)
        _forget_checks(instance, run_id)
        report.deleted.append(run_id)
    return report


def _forget_checks(instance: dg.DagsterInstance, run_id: str) -> None:
    """`delete_run` (1.13) keeps the run's rows in `asset_check_executions`, the table that had
    grown to 127 MB; drop them too (the run's events, which they point at, are gone)."""
    storage = instance.event_log_storage
    if hasattr(storage, "index_connection"):  # SQL storages (SQLite, PostgreSQL)
        with storage.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.delete().where(AssetCheckExecutionsTable.c.run_id == run_id))
