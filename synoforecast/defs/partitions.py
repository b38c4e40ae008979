"""The one quarterly partitioning every partitioned asset shares (design §1).

Keys are quarter-start dates; the unfinished current quarter is not a partition
(`end_offset=0`), so callers check `has_partition_key` before requesting one.
"""

import datetime as dt

import dagster as dg

from synoforecast.lib.quarters import add_quarters, parse_key, quarter_label, quarter_range, quarter_start, to_key
from synoforecast.settings import effective_partitions_start, get_settings


def quarter_cron(fiscal_start_month: int) -> str:
    """Cron of quarter starts: `0 0 1 1,4,7,10 *` for calendar quarters, shifted for a fiscal year."""
    months = sorted((fiscal_start_month - 1 + 3 * k) % 12 + 1 for k in range(4))
    return f"0 0 1 {','.join(map(str, months))} *"


def _partitions_start() -> dt.date:
    """The configured start or the data's first quarter, moved to the first day of its (fiscal) quarter."""
    settings = get_settings()
    return quarter_start(effective_partitions_start(settings), settings.fiscal_year_start_month)


quarterly_partitions = dg.TimeWindowPartitionsDefinition(
    start=to_key(_partitions_start()),
    fmt="%Y-%m-%d",
    cron_schedule=quarter_cron(get_settings().fiscal_year_start_month),
    end_offset=0,
)

single_run = dg.BackfillPolicy.single_run()

# every quarterly asset: one partition per quarter, and a range of quarters in ONE run
# (one dbt invocation, one pass of the forecast loop) when backfilling or following a snapshot
# Dependants follow their upstream automatically once an operator turns on Dagster's
# default_automation_condition_sensor (stopped by default: the snapshot sensors already
# drive the pipeline) -- and never past a blocking check that failed, in any run.
FOLLOW_UPSTREAM = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()

QUARTERLY = {
    "partitions_def": quarterly_partitions,
    "backfill_policy": single_run,
    "automation_condition": FOLLOW_UPSTREAM,
}


# forecast/landing and what follows it: one partition per snapshot cut-off (export day) with a
# quarter in progress, added when the snapshot is followed (defs/landing)
landing_cutoffs = dg.DynamicPartitionsDefinition(name="landing_cutoffs")
LANDING_GROUP = "landing"  # every asset of the landing job: the quarterly pipeline job leaves them out


def label(key: str) -> str:
    """Human label of a partition key: 2025-07-01 -> 2025-Q3."""
    return quarter_label(parse_key(key), get_settings().fiscal_year_start_month)


def partition_quarters(context: dg.AssetExecutionContext) -> list[dt.date]:
    """Quarter starts covered by this run: one partition, or a single-run range."""
    window = context.partition_time_window
    last = add_quarters(window.end.date(), -1)
    return quarter_range(window.start.date(), last)


def existing_keys(quarters: list[dt.date]) -> list[str]:
    """Partition keys that exist now (the current quarter never does)."""
    keys = [to_key(q) for q in quarters]
    return [k for k in keys if quarterly_partitions.has_partition_key(k)]
