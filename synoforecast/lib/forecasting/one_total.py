"""One SVR-RM total: the same number in every cohort that publishes one.

`svr_rm_overall` (tiers, Unknown tier included), `svr_rm_top_customers` (customers) and
`regional` (regions) all count every SVR-RM line. Their actuals come from four marts; their
forecasts and landings are reconciled onto svr_rm_overall's total (top-down). These queries
find any (quarter, metric) where they differ, compared as numeric in PostgreSQL: an analyst
must never see two SVR-RM totals.
"""

from __future__ import annotations

import datetime as dt

from synoforecast.lib.warehouse.connection import query_frame

OVERALL, CUSTOMERS, REGIONS = "svr_rm_overall", "svr_rm_top_customers", "regional"

# per (quarter, metric): the total of each cohort, from a table with cohort, series_id, metric, yhat
_TOTALS = f"""
  sum(yhat::numeric) filter (where cohort = '{OVERALL}' and series_id = 'total') as overall,
  sum(yhat::numeric) filter (where cohort = '{CUSTOMERS}' and series_id = 'total') as customers,
  sum(yhat::numeric) filter (where cohort = '{CUSTOMERS}' and series_id <> 'total') as customer_parts,
  sum(yhat::numeric) filter (where cohort = '{REGIONS}') as regions"""

_ACTUALS = """
with overall as (select quarter_start, sum(units)::numeric u, sum(revenue_usd) r from marts.mart_svr_rm_quarterly
                  where quarter_start between %(first)s and %(last)s group by 1),
     tiers as (select quarter_start, sum(units)::numeric u, sum(revenue_usd) r from marts.mart_svr_rm_tier_quarterly
                where quarter_start between %(first)s and %(last)s group by 1),
     customers as (select quarter_start, sum(units)::numeric u, sum(revenue_usd) r
                     from marts.mart_svr_rm_customer_quarterly
                    where quarter_start between %(first)s and %(last)s group by 1),
     regions as (select quarter_start, sum(units)::numeric u, sum(revenue_usd) r
                   from marts.mart_svr_rm_region_quarterly
                  where quarter_start between %(first)s and %(last)s group by 1)
select o.quarter_start, m.metric, m.overall, m.tiers, m.customers, m.regions
  from overall o
  left join tiers t using (quarter_start)
  left join customers c using (quarter_start)
  left join regions g using (quarter_start)
 cross join lateral (values ('units', o.u, t.u, c.u, g.u), ('revenue', o.r, t.r, c.r, g.r))
       as m(metric, overall, tiers, customers, regions)
 order by 1, 2"""


def _disagreements(frame, key: str, label: str) -> dict[dt.date, list[str]]:
    """{key value: ['<label> revenue: overall 10 <> customers 11, ...']} where the columns after
    `metric` (the cohorts' totals, NULL where a cohort has none) are not all equal."""
    out: dict[dt.date, list[str]] = {}
    names = [c for c in frame.columns if c not in (key, "metric")]
    for row in frame.iter_rows(named=True):
        held = {n: row[n] for n in names if row[n] is not None}
        if len(set(held.values())) > 1:
            shown = ", ".join(f"{n} {v}" for n, v in held.items())
            out.setdefault(row[key], []).append(f"{label} {row['metric']} differs: {shown}")
    return out


def actual_disagreements(url: str, first: dt.date, last: dt.date) -> dict[dt.date, list[str]]:
    """Quarters whose SVR-RM actual differs between the total, tier, customer and region marts."""
    frame = query_frame(url, _ACTUALS, {"first": first, "last": last})
    return _disagreements(frame, "quarter_start", "actual") if frame.height else {}


def forecast_disagreements(url: str, first: dt.date, last: dt.date) -> dict[dt.date, list[str]]:
    """As-of quarters whose published SVR-RM forecast total differs between the cohorts."""
    frame = query_frame(
        url,
        f"""select as_of_quarter, metric, {_TOTALS}
              from forecast.forecasts
             where cohort in (%s, %s, %s) and as_of_quarter between %s and %s
             group by 1, 2 order by 1, 2""",
        (OVERALL, CUSTOMERS, REGIONS, first, last),
    )
    return _disagreements(frame, "as_of_quarter", "forecast") if frame.height else {}


def landing_disagreements(url: str, cutoff: dt.date) -> list[str]:
    """Where the landing point at `cutoff` has more than one SVR-RM total. The quarter to date
    is not compared: svr_rm_overall's counts the tiers with a forecast for the quarter, so a
    tier first sold in the quarter in progress (its lines land in no part yet) is in the
    customers' and regions' to-date only, until its first quarter closes."""
    frame = query_frame(
        url,
        f"""select cutoff_date, metric, {_TOTALS} from forecast.landing
             where cohort in (%s, %s, %s) and cutoff_date = %s group by 1, 2""",
        (OVERALL, CUSTOMERS, REGIONS, cutoff),
    )
    return _disagreements(frame, "cutoff_date", "landing").get(cutoff, []) if frame.height else []
