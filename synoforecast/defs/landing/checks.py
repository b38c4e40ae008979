"""The landing's blocking gate: every published series, finite, and every total adding up."""

import datetime as dt

import dagster as dg

from synoforecast.defs.checks import per_partition
from synoforecast.defs.landing.assets import LANDING_CUTOFFS, LANDING_KEY, LANDING_TABLE
from synoforecast.defs.resources import WarehouseResource
from synoforecast.lib.forecasting.cohorts import COHORTS


def landing_failures(url: str, cutoff: dt.date) -> list[str]:
    """What is wrong with the landing published for `cutoff` (empty = fine): a series the
    quarterly forecasts publish for the quarter that has no landing, a NaN point or bound,
    a total that is not the exact sum of its parts (numeric comparison in PostgreSQL)."""
    from synoforecast.lib.warehouse.connection import query_frame

    problems = []
    missing = query_frame(
        url,
        f"""
        select f.cohort, f.series_id, f.metric from forecast.forecasts f
         where f.target_quarter = (select max(quarter_start) from {LANDING_TABLE} where cutoff_date = %s)
           and not exists (select 1 from {LANDING_TABLE} l where l.cutoff_date = %s and l.cohort = f.cohort
                             and l.series_id = f.series_id and l.metric = f.metric)""",
        (cutoff, cutoff),
    )
    if missing.height:
        sample = ", ".join(f"{c}/{s}/{m}" for c, s, m in missing.head(5).iter_rows())
        problems.append(f"{missing.height} forecast series without a landing ({sample})")
    bad = query_frame(
        url,
        f"""select count(*) from {LANDING_TABLE} where cutoff_date = %s and (yhat = 'NaN'
        or yhat_lo_80 = 'NaN' or yhat_hi_80 = 'NaN' or yhat_lo_95 = 'NaN' or yhat_hi_95 = 'NaN')""",
        (cutoff,),
    )
    if bad.item():
        problems.append(f"{bad.item()} row(s) with a NaN point or bound")
    for cohort in COHORTS:
        if cohort.parent is not None:
            parts = f"cohort = '{cohort.name}' and series_id <> '{cohort.parent}'"
            total = f"p.cohort = '{cohort.name}' and p.series_id = '{cohort.parent}'"
        elif cohort.top_down_to is not None:
            parts = f"cohort = '{cohort.name}'"
            total = f"p.cohort = '{cohort.top_down_to[0]}' and p.series_id = '{cohort.top_down_to[1]}'"
        else:
            continue
        off = query_frame(
            url,
            f"""
            select s.metric, p.yhat::numeric as total, s.parts from
              (select metric, sum(yhat::numeric) parts from {LANDING_TABLE} where cutoff_date = %s and {parts}
                group by metric) s
              left join {LANDING_TABLE} p on p.cutoff_date = %s and p.metric = s.metric and {total}
             where p.yhat is null or p.yhat::numeric <> s.parts""",
            (cutoff, cutoff),
        )
        for metric, t, p in off.iter_rows():
            problems.append(f"{cohort.name} {metric}: total {t} <> sum of parts {p}")
    from synoforecast.lib.forecasting.one_total import landing_disagreements

    return problems + landing_disagreements(url, cutoff)


@dg.asset_check(
    asset=LANDING_KEY,
    name="landing_published",
    blocking=True,
    partitions_def=LANDING_CUTOFFS,
    description="Every series the quarterly forecasts publish for the quarter in progress has a finite "
    "landing for both metrics, and every hierarchy adds up exactly (tiers, top customers, "
    "C2 services; regions onto the SVR-RM total), and tiers, customers and regions land on one SVR-RM total.",
)
def landing_published(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    results = {}
    for key in context.partition_keys:  # one cut-off per run; the quarter label comes with per_partition
        problems = landing_failures(warehouse.get_url(), dt.date.fromisoformat(key))
        results[key] = dg.AssetCheckResult(
            passed=not problems,
            description="; ".join(problems)[:2000] if problems else "every series landed, finite, hierarchies exact",
            metadata={"cutoff": key, "problems": dg.MetadataValue.json(problems)},
        )
    yield from per_partition(context, results)
