"""What analysts open in `published`: names beside ids, chart-ready series, forecasts as they
were made (vintages) and their accuracy next to the backtest's.

Built in the publish switch's transaction (lib/warehouse/published.py) over the published
copies, so every view shows the one export `ops.published_snapshot` names. The landing and
the vintages are views over their forecast tables limited to that export, or kept as made.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import psycopg

from synoforecast.lib.warehouse.connection import query_frame

# how each cohort's series are named, per mart they come from; customers by their latest spelling
_FIXED = """select 'svr_rm_top_customers'::text as cohort, 'all_other'::text as series_id,
       'All other customers'::text as series_name
union all select 'svr_rm_top_customers', 'total', 'SVR-RM total'
union all select 'svr_rm_overall', 'total', 'SVR-RM total'
union all select 'consumer_trend', 'total', 'Consumer total'"""
_BY_MART = {
    "mart_svr_rm_customer_quarterly": """select 'svr_rm_top_customers', customer_id::text, customer::text
  from (select distinct on (customer_id) customer_id, customer from {m}.mart_svr_rm_customer_quarterly
         where customer is not null order by customer_id, quarter_start desc) c""",
    "mart_svr_rm_tier_quarterly": """select distinct 'svr_rm_overall', tier,
       case when tier = 'Unknown' then 'Unknown tier' else tier end from {m}.mart_svr_rm_tier_quarterly""",
    "mart_svr_rm_region_quarterly": """select distinct 'regional', region,
       case when region = 'Unknown' then 'Unknown region' else region end from {m}.mart_svr_rm_region_quarterly""",
    "mart_c2_adoption_quarterly": """select distinct 'c2_scorecard', service,
       case when service = 'All C2' then 'All C2 services' else service end from {m}.mart_c2_adoption_quarterly""",
}

NAMED_MARTS = tuple(_BY_MART)


def series_names_sql(marts_schema: str, present: set[str] | frozenset[str] = frozenset(NAMED_MARTS)) -> str:
    """(cohort, series_id, series_name) for every series a cohort publishes, from the marts of
    `marts_schema` that are `present` (a project without a mart names that cohort's ids by id)."""
    parts = [_FIXED] + [sql.format(m=marts_schema) for mart, sql in _BY_MART.items() if mart in present]
    return "\nunion all\n".join(parts)


def _present(url_or_conn, schema: str) -> set[str]:
    sql = "select table_name from information_schema.tables where table_schema = %s and table_name = any(%s)"
    if isinstance(url_or_conn, str):
        return set(query_frame(url_or_conn, sql, (schema, list(NAMED_MARTS)))["table_name"].to_list())
    return {name for (name,) in url_or_conn.execute(sql, (schema, list(NAMED_MARTS))).fetchall()}


def series_names(url: str) -> dict[tuple[str, str], str]:
    """{(cohort, series_id): name} from the working marts."""
    sql = series_names_sql("marts", _present(url, "marts"))
    return {(c, s): n for c, s, n in query_frame(url, sql).iter_rows()}


def with_names(url: str, frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` (with cohort and series_id) with a series_name column: the series' name, else its id."""
    if frame.is_empty() or "series_id" not in frame.columns:
        return frame
    names = series_names(url)
    return frame.with_columns(
        series_name=pl.struct("cohort", "series_id").map_elements(
            lambda r: names.get((r["cohort"], r["series_id"]), r["series_id"]), return_dtype=pl.String
        )
    )


def record_vintage(conn: psycopg.Connection, snapshot_sha256: str, export_date: dt.date) -> int:
    """Keep this export's forecast for the next quarter (each cohort's newest as-of quarter) as
    it is now; a re-run of the same export keeps the first record. Returns rows recorded."""
    return conn.execute(
        """insert into forecast.vintages (snapshot_sha256, export_date, cohort, series_id, metric, as_of_quarter,
                  target_quarter, target_label, model, yhat, yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95)
           select %s, %s, f.cohort, f.series_id, f.metric, f.as_of_quarter, f.target_quarter, f.target_label,
                  f.model, f.yhat, f.yhat_lo_80, f.yhat_hi_80, f.yhat_lo_95, f.yhat_hi_95
             from forecast.forecasts f
            where f.as_of_quarter = (select max(g.as_of_quarter) from forecast.forecasts g where g.cohort = f.cohort)
           on conflict do nothing""",
        (snapshot_sha256, export_date),
    ).rowcount


def record_vintage_landing(conn: psycopg.Connection, snapshot_sha256: str, cutoff: dt.date) -> int:
    """Add the landing of the export's quarter in progress to its vintage, once (as made)."""
    return conn.execute(
        """update forecast.vintages v
              set landing_cutoff = l.cutoff_date, landing_yhat = l.yhat,
                  landing_lo_80 = l.yhat_lo_80, landing_hi_80 = l.yhat_hi_80
             from forecast.landing l
            where v.snapshot_sha256 = %s and l.cutoff_date = %s and l.snapshot_sha256 = v.snapshot_sha256
              and (l.cohort, l.series_id, l.metric, l.quarter_start)
                  = (v.cohort, v.series_id, v.metric, v.target_quarter)
              and v.landing_cutoff is null""",
        (snapshot_sha256, cutoff),
    ).rowcount


_LEVEL = "case when {s} in ('total', 'All C2') then 'total' else 'parts' end"
_SMAPE = "avg(case when abs({a}) + abs({f}) = 0 then 0 else 200 * abs({f} - {a}) / (abs({a}) + abs({f})) end)"


def views_ddl(cohorts: list[str], conn: psycopg.Connection, schema: str = "published") -> list[str]:
    """The analysts' names and views in `schema`, over its copies of the marts, forecasts and
    actuals (the switch has just written them) and over the forecast tables for landing and
    vintages. Replaced in place: a view an analyst built on one of them survives."""
    p = schema
    named = f"left join {p}.series_names n on n.cohort = {{t}}.cohort and n.series_id = {{t}}.series_id"
    per_cohort = [
        statement
        for c in cohorts
        for statement in (
            f"create or replace view {p}.latest_{c} as select * from {p}.latest where cohort = '{c}'",
            f"comment on view {p}.latest_{c} is 'Newest forecast of cohort {c}, with names.'",
        )
    ]
    return [
        f"create table if not exists {p}.series_names (cohort text not null, series_id text not null, "
        "series_name text not null)",
        f"delete from {p}.series_names",
        f"insert into {p}.series_names {series_names_sql(p, _present(conn, p))}",
        f"comment on table {p}.series_names is 'A person''s name for every forecast series id (customers: "
        "their latest spelling in the export).'",
        f"""create or replace view {p}.latest as
select f.*, coalesce(n.series_name, f.series_id) as series_name from {p}.forecasts f
{named.format(t="f")}
 where f.as_of_quarter = (select max(g.as_of_quarter) from {p}.forecasts g where g.cohort = f.cohort)""",
        f"comment on view {p}.latest is 'Newest forecast of every cohort (its latest as-of quarter), with names.'",
        *per_cohort,
        f"""create or replace view {p}.landing as
select l.*, coalesce(n.series_name, l.series_id) as series_name from forecast.landing l
  join ops.published_snapshot s on s.snapshot_sha256 = l.snapshot_sha256
{named.format(t="l")}""",
        f"comment on view {p}.landing is 'The landing of the quarter in progress, per cut-off of the published "
        "export, with names.'",
        f"""create or replace view {p}.latest_landing as
select * from {p}.landing where cutoff_date = (select max(cutoff_date) from {p}.landing)""",
        f"comment on view {p}.latest_landing is 'The landing at the published export''s newest cut-off.'",
        f"""create or replace view {p}.chart_series as
select f.cohort, f.series_id, coalesce(n.series_name, f.series_id) as series_name, f.metric,
       f.target_quarter as quarter_start, f.target_label as quarter_label,
       a.actual, f.yhat as forecast, f.yhat_lo_80 as forecast_lo_80, f.yhat_hi_80 as forecast_hi_80,
       f.yhat_lo_95 as forecast_lo_95, f.yhat_hi_95 as forecast_hi_95,
       l.qtd_actual as quarter_to_date, l.cutoff_date as landing_cutoff, l.yhat as landing,
       l.yhat_lo_80 as landing_lo_80, l.yhat_hi_80 as landing_hi_80,
       l.yhat_lo_95 as landing_lo_95, l.yhat_hi_95 as landing_hi_95
  from {p}.forecasts f
  left join {p}.actuals a on a.cohort = f.cohort and a.series_id = f.series_id and a.metric = f.metric
                         and a.quarter_start = f.target_quarter
  left join {p}.latest_landing l on l.cohort = f.cohort and l.series_id = f.series_id and l.metric = f.metric
                                and l.quarter_start = f.target_quarter
{named.format(t="f")}""",
        f"comment on view {p}.chart_series is 'One row per cohort, series, metric and quarter: the actual, the "
        "forecast made the quarter before with its 80/95% bands, and for the quarter in progress the landing "
        "and its bands. A line chart needs no SQL.'",
        f"""create or replace view {p}.vintages as
select v.*, coalesce(n.series_name, v.series_id) as series_name, a.actual,
       case when a.actual is null then null
            when abs(a.actual) + abs(v.yhat) = 0 then 0
            else 200 * abs(v.yhat - a.actual) / (abs(a.actual) + abs(v.yhat)) end as smape,
       a.actual between v.yhat_lo_80 and v.yhat_hi_80 as within_80
  from forecast.vintages v
  left join {p}.actuals a on a.cohort = v.cohort and a.series_id = v.series_id and a.metric = v.metric
                         and a.quarter_start = v.target_quarter
{named.format(t="v")}""",
        f"comment on view {p}.vintages is 'Every published export''s next-quarter forecast and landing as they "
        "were made, scored against the actual once the quarter is complete.'",
        f"""create or replace view {p}.accuracy as
select 'backtest' as source, cohort, quarter, quarter_label, metric, level, series_scored, smape, coverage_80,
       'forecast re-fitted on the current (revised) history, made as of the quarter before' as what
  from {p}.evaluation
union all
select 'vintage', v.cohort, v.target_quarter, v.target_label, v.metric, {_LEVEL.format(s="v.series_id")},
       count(*)::int, {_SMAPE.format(a="a.actual", f="v.yhat")},
       100.0 * avg((a.actual between v.yhat_lo_80 and v.yhat_hi_80)::int),
       'forecast as made from the first export after the quarter before closed'
  from forecast.vintages v
  join {p}.actuals a on a.cohort = v.cohort and a.series_id = v.series_id and a.metric = v.metric
                    and a.quarter_start = v.target_quarter
 where v.export_date = (select min(w.export_date) from forecast.vintages w
                         where w.cohort = v.cohort and w.target_quarter = v.target_quarter)
 group by v.cohort, v.target_quarter, v.target_label, v.metric, {_LEVEL.format(s="v.series_id")}""",
        f"comment on view {p}.accuracy is 'Accuracy per cohort, quarter, metric and level: source ''backtest'' "
        "(re-fitted on revised history: flatters) next to source ''vintage'' (the forecast as it was made).'",
    ]
