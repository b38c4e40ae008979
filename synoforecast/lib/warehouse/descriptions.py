"""Every table, view and column the platform writes in `forecast` and `published` carries a
description in PostgreSQL's own comments, so an analyst reads the same text in psql, in a SQL
client and in Metabase (lib/activation/metabase_catalog.py pushes it there beside dbt's).

One source per text: the forecast tables' own column texts (schema.FORECAST_COMMENTS), the
columns several relations share (`COLUMN_TEXTS`), and what a view computes itself
(`VIEW_COLUMN_TEXTS`). A published copy or view without a table comment gets the comment of
the forecast table it shows. The marts are dbt's: dbt's YAML describes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from synoforecast.lib.warehouse.schema import FORECAST_COMMENTS

__all__ = ["Described", "describe", "describe_statements", "read", "undescribed"]

# columns several tables and views share, in the same meaning
COLUMN_TEXTS = {
    "cohort": "Forecast cohort (svr_rm_overall, svr_rm_top_customers, regional, consumer_trend, c2_scorecard).",
    "series_id": "Series within the cohort: total, tier, region, customer id, all_other, service.",
    "series_name": "The series' name for people (customers: their latest spelling in the export); the id if none.",
    "metric": "units (C2: seats) or revenue (USD).",
    "quarter": "The quarter (quarter start date).",
    "quarter_start": "The quarter (quarter start date).",
    "quarter_label": "The quarter as YYYY-Qn.",
    "as_of_quarter": "Last quarter of data the model saw (quarter start date).",
    "as_of_label": "as_of_quarter as YYYY-Qn.",
    "target_quarter": "Quarter being forecast (quarter start date).",
    "target_label": "target_quarter as YYYY-Qn.",
    "actual": "The series' actual in the quarter, formed as its forecast formed it.",
    "model": "Model that made the forecast (Combination, or the short-history fallback's model).",
    "yhat": "Point forecast.",
    "yhat_lo_80": "Lower bound of the 80% prediction interval.",
    "yhat_hi_80": "Upper bound of the 80% prediction interval.",
    "yhat_lo_95": "Lower bound of the 95% prediction interval.",
    "yhat_hi_95": "Upper bound of the 95% prediction interval.",
    "snapshot_sha256": "The workbook export (SHA-256 of its file) the rows were made from.",
    "cutoff_date": "The export's day: sales up to and including it are counted.",
    "elapsed_share": "Share of the quarter's calendar days elapsed at the cut-off.",
    "level": "total (the cohort's total series) or parts (tiers, customers, regions, services).",
    "series_scored": "Series with both a forecast and an actual, i.e. the series the scores average over.",
    "coverage_80": "Percent of actuals inside the 80% interval.",
    "coverage_95": "Percent of actuals inside the 95% interval.",
    "smape": "Symmetric MAPE (0-200) of the forecast against the actual.",
    "run_id": "Dagster run that wrote the row.",
    "created_at": "When the row was written.",
}

# what a view or table computes itself (relation.column)
VIEW_COLUMN_TEXTS = {
    "vintages.export_date": "The export's day: the forecast is kept as it was made from this export.",
    "vintages.landing_cutoff": "Cut-off of the export's first landing of the target quarter (NULL: none yet).",
    "vintages.landing_yhat": "That first landing's point, as it was made.",
    "vintages.landing_lo_80": "That first landing's 80% lower bound.",
    "vintages.landing_hi_80": "That first landing's 80% upper bound.",
    "vintages.recorded_at": "When the vintage was recorded (a re-run of the same export keeps the first).",
    "vintages.smape": "sMAPE (0-200) of the forecast as made, once the quarter is complete (NULL before).",
    "vintages.within_80": "Whether the actual fell inside the 80% interval as made (NULL before the quarter closes).",
    "chart_series.quarter_start": "The quarter on the chart's x axis (quarter start date).",
    "chart_series.forecast": "The forecast made the quarter before (as of the previous quarter).",
    "chart_series.forecast_lo_80": "Its 80% lower bound.",
    "chart_series.forecast_hi_80": "Its 80% upper bound.",
    "chart_series.forecast_lo_95": "Its 95% lower bound.",
    "chart_series.forecast_hi_95": "Its 95% upper bound.",
    "chart_series.quarter_to_date": "For the quarter in progress: the actual so far (NULL for complete quarters).",
    "chart_series.landing_cutoff": "For the quarter in progress: the landing's cut-off day.",
    "chart_series.landing": "For the quarter in progress: where it will land (point).",
    "chart_series.landing_lo_80": "The landing's 80% lower bound.",
    "chart_series.landing_hi_80": "The landing's 80% upper bound.",
    "chart_series.landing_lo_95": "The landing's 95% lower bound.",
    "chart_series.landing_hi_95": "The landing's 95% upper bound.",
    "accuracy.source": "backtest (re-fitted on the revised history) or vintage (the forecast as it was made).",
    "accuracy.smape": "Mean sMAPE (0-200) over the series scored.",
    "accuracy.coverage_80": "Percent of the series' actuals inside the 80% interval.",
    "accuracy.what": "The source in words.",
    "narratives.narrative": "The forecast in words: the next quarter, its change, what drives it, the landing.",
    "narratives.landing_cutoff": "Cut-off of the landing the text quotes (NULL: none).",
    "narratives.written_at": "When the text was written.",
    "actuals.actual": "The series' actual in the quarter, formed as its forecast formed it "
    "(top customers: the set flagged the quarter before).",
    "landing_evaluation.cutoff_date": "The snapshot cut-off the replays were scored for.",
    "landing_evaluation.weight_extrapolated": "Learned weight of the profile extrapolation for that week.",
    "landing_evaluation.weight_naive": "Learned weight of QTD / elapsed calendar share for that week.",
}

# views (and copies) that show the rows of a forecast table: its texts describe them
_SHOWS = {"latest": "forecasts", "latest_landing": "landing"}


def _base(relation: str) -> str:
    if relation in _SHOWS:
        return _SHOWS[relation]
    if relation.startswith("latest_"):  # latest_<cohort>
        return "forecasts"
    return relation


def column_text(relation: str, column: str) -> str | None:
    """The description `relation.column` should carry, or None when none is known."""
    base = _base(relation)
    return (
        VIEW_COLUMN_TEXTS.get(f"{relation}.{column}")
        or VIEW_COLUMN_TEXTS.get(f"{base}.{column}")
        or FORECAST_COMMENTS.get(f"{base}.{column}")
        or COLUMN_TEXTS.get(column)
    )


@dataclass
class Described:
    kind: str  # r (table), v (view), m, p
    description: str | None
    columns: dict[str, str | None] = field(default_factory=dict)  # in column order


def read(conn: psycopg.Connection, schema: str) -> dict[str, Described]:
    """relation -> its comment and its columns' comments, for every table and view of `schema`."""
    out: dict[str, Described] = {}
    for name, kind, description, column, text in conn.execute(
        """select c.relname, c.relkind::text, obj_description(c.oid, 'pg_class'), a.attname,
                  col_description(c.oid, a.attnum)
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
            where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p')
            order by c.relname, a.attnum""",
        (schema,),
    ).fetchall():
        out.setdefault(name, Described(kind, description)).columns[column] = text
    return out


def _owned(relation: str) -> bool:
    """The platform's relations; the marts' copies are dbt's (its YAML describes them)."""
    return not relation.startswith("mart_")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def describe_statements(conn: psycopg.Connection, schema: str) -> list[str]:
    """`comment on` statements that bring `schema`'s platform relations to their texts; none
    when they already carry them (a second call returns [])."""
    current = read(conn, schema)
    tables = read(conn, "forecast") if schema != "forecast" else current
    out = []
    for relation, now in current.items():
        if not _owned(relation):
            continue
        kind = "view" if now.kind == "v" else "materialized view" if now.kind == "m" else "table"
        wanted = now.description or (tables.get(_base(relation)) or Described("r", None)).description
        if wanted and wanted != now.description:
            out.append(f"comment on {kind} {schema}.{relation} is {_quote(wanted)}")
        for column, text in now.columns.items():
            wanted = column_text(relation, column)
            if wanted and wanted != text:
                out.append(f"comment on column {schema}.{relation}.{column} is {_quote(wanted)}")
    return out


def describe(conn: psycopg.Connection, schema: str) -> int:
    """Apply describe_statements; returns how many comments were written."""
    statements = describe_statements(conn, schema)
    for statement in statements:
        conn.execute(statement)
    return len(statements)


def undescribed(conn: psycopg.Connection, schema: str) -> list[str]:
    """The platform's relations and columns of `schema` that have no description."""
    missing = []
    for relation, now in read(conn, schema).items():
        if not _owned(relation):
            continue
        if not now.description:
            missing.append(relation)
        missing += [f"{relation}.{c}" for c, text in now.columns.items() if not text]
    return missing
