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
