"""The one quarterly partitioning every partitioned asset shares (design §1).

Keys are quarter-start dates; the unfinished current quarter is not a partition
(`end_offset=0`), so callers check `has_partition_key` before requesting one.
"""


import datetime as dt

import dagster as dg

from synoforecast.lib.quarters import add_quarters, parse_key, quarter_label, quarter_range, to_key
from synoforecast.settings import get_settings

QUARTER_CRON = "0 0 1 1,4,7,10 *"

quarterly_partitions = dg.TimeWindowPartitionsDefinition(
    start=to_key(get_settings().partitions_start),
    fmt="%Y-%m-%d",
    cron_schedule=QUARTER_CRON,
    end_offset=0,
)

single_run = dg.BackfillPolicy.single_run()


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
