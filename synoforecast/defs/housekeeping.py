"""Housekeeping of the embedded instance: a daily prune of Dagster's own run history
(synoforecast/instance/history.py). Ticks are purged by the daemon (dagster.yaml `retention:`)."""

from collections.abc import Callable
from typing import Any

import dagster as dg

from synoforecast.settings import get_settings


def build_defs(asset_graph: Callable[[], Any]) -> dg.Definitions:
    """The daily prune, for the code location whose asset graph `asset_graph()` returns (the
    caller that assembles the definitions passes it: this module never imports them)."""

    @dg.op(
        name="prune_dagster_history_op",
        description="Deletes finished runs older than history_retention_days that hold no current partition "
        "state (embedded SQLite instance only; a PostgreSQL deployment keeps its history, see RUNBOOK).",
    )
    def prune_op(context: dg.OpExecutionContext) -> None:
        storage = type(context.instance.run_storage).__name__
        if not storage.startswith("Sqlite"):
            context.log.info(f"run storage {storage}: not the embedded instance, nothing pruned")
            return
        from synoforecast.instance.history import prune_history  # Dagster's storage internals: not at definition time

        graph = asset_graph()
        days = get_settings().history_retention_days
        report = prune_history(
            context.instance, graph.get_all_asset_keys(), graph.asset_check_keys, older_than_days=days
        )
        context.log.info(
            f"deleted {len(report.deleted)} run(s) older than {days} days; kept {report.kept_current} "
            "old run(s) that hold the latest materialisation or check result of a partition"
        )

    @dg.job(name="prune_dagster_history_job", description="Prunes Dagster's own history (embedded instance).")
    def prune_job():
        prune_op()

    schedule = dg.ScheduleDefinition(
        name="prune_dagster_history",
        job=prune_job,
        cron_schedule="30 3 * * *",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily: prune runs older than history_retention_days (embedded).",
    )
    return dg.Definitions(jobs=[prune_job], schedules=[schedule])
