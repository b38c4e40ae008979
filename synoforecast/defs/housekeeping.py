"""Housekeeping of the embedded instance: a daily prune of Dagster's own run history
(synoforecast/instance/history.py). Ticks are purged by the daemon (dagster.yaml `retention:`)."""

import dagster as dg

from synoforecast.settings import get_settings


@dg.op(description="Deletes finished runs older than history_retention_days that hold no current partition state "
                   "(embedded SQLite instance only; a PostgreSQL deployment keeps its history, see RUNBOOK).")
def prune_dagster_history_op(context: dg.OpExecutionContext) -> None:
    storage = type(context.instance.run_storage).__name__
    if not storage.startswith("Sqlite"):
        context.log.info(f"run storage {storage}: not the embedded instance, nothing pruned")
        return
    from synoforecast.definitions import defs  # at run time: the whole graph this job belongs to
    from synoforecast.instance.history import prune_history  # Dagster's storage internals: not at definition time

    graph = defs.resolve_asset_graph()
    days = get_settings().history_retention_days
    report = prune_history(context.instance, graph.get_all_asset_keys(), graph.asset_check_keys, older_than_days=days)
    context.log.info(f"deleted {len(report.deleted)} run(s) older than {days} days; kept {report.kept_current} "
                     "old run(s) that hold the latest materialisation or check result of a partition")


@dg.job(description="Prunes Dagster's own history (embedded instance).")
def prune_dagster_history_job():
    prune_dagster_history_op()


prune_schedule = dg.ScheduleDefinition(name="prune_dagster_history", job=prune_dagster_history_job,
                                       cron_schedule="30 3 * * *", default_status=dg.DefaultScheduleStatus.RUNNING,
                                       description="Daily: prune runs older than history_retention_days (embedded).")

defs = dg.Definitions(jobs=[prune_dagster_history_job], schedules=[prune_schedule])
