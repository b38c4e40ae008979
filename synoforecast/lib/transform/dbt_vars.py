"""dbt vars for a run over a range of quarter partitions (pure: unit-tested alone)."""

from __future__ import annotations

import datetime as dt


def dbt_vars(first_quarter: dt.date, last_quarter: dt.date, top_customers_n: int) -> dict[str, object]:
    """Inclusive quarter-start bounds the incremental marts rebuild, as dbt expects them."""
    if last_quarter < first_quarter:
        raise ValueError(f"empty quarter range {first_quarter}..{last_quarter}")
    return {
        "start_quarter": first_quarter.isoformat(),
        "end_quarter": last_quarter.isoformat(),
        "top_customers_n": int(top_customers_n),
    }


QUARTER_VARS = ("start_quarter", "end_quarter")


def split_for_partial_parsing(variables: dict[str, object]) -> tuple[dict[str, object], dict[str, str]]:
    """(--vars, environment): the quarter bounds change every run, and a change of --vars makes
    dbt re-parse the whole project, so they travel as SYNOFORECAST_DBT_<NAME> environment
    variables (macros/quarter_range.sql reads those first); the rest stays in --vars."""
    env = {f"SYNOFORECAST_DBT_{k.upper()}": str(v) for k, v in variables.items() if k in QUARTER_VARS}
    return {k: v for k, v in variables.items() if k not in QUARTER_VARS}, env
