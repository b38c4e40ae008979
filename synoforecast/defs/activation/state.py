"""Small warehouse helpers of the activation domain (no Dagster import).

* ``ops.activation_state``: key/value memory of the activation steps, created
  idempotently here. It holds the fingerprint of the ``forecast`` schema that
  Metabase last synced, so ``sync_schema`` runs only when the forecast tables are
  new or changed shape.
* accuracy drops: the latest ``forecast.evaluation`` sMAPE per cohort and metric
  compared with the previous scored quarter.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from synoforecast.lib.warehouse.connection import connect

STATE_DDL = """create table if not exists ops.activation_state (
  key text primary key,
  value text not null,
  updated_at timestamptz not null default now()
)"""


def ensure_state_table(url: str) -> None:
    with connect(url) as conn, conn.transaction():
        conn.execute("create schema if not exists ops")
        conn.execute("select pg_advisory_xact_lock(7215005)")
        conn.execute(STATE_DDL)


def forecast_schema_fingerprint(url: str, schema: str = "forecast") -> str:
    """sha256 of the shape (table, column, type, position) of every table in ``schema``."""
    with connect(url) as conn:
        rows = conn.execute(
            """select table_name, column_name, data_type, ordinal_position
                 from information_schema.columns where table_schema = %s
                order by table_name, ordinal_position""",
            (schema,),
        ).fetchall()
    digest = hashlib.sha256()
    for row in rows:
        digest.update("|".join(map(str, row)).encode() + b"\n")
    return digest.hexdigest()


def forecast_schema_columns(url: str, schema: str = "forecast") -> dict[str, set[str]]:
    """{"forecast.<table>": {columns}}: what Metabase must know once its schema sync finished."""
    with connect(url) as conn:
        rows = conn.execute(
            "select table_name, column_name from information_schema.columns where table_schema = %s", (schema,)
        ).fetchall()
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(f"{schema}.{table}", set()).add(column)
    return found


def sync_state_key(metabase_url: str | None, database_id: int | None) -> str:
    """One remembered fingerprint per Metabase instance and database (no secrets in it)."""
    target = hashlib.sha256(f"{metabase_url or ''}#{database_id or ''}".encode()).hexdigest()[:16]
    return f"metabase_sync:{target}"


def get_state(url: str, key: str) -> str | None:
    ensure_state_table(url)
    with connect(url) as conn:
        row = conn.execute("select value from ops.activation_state where key = %s", (key,)).fetchone()
    return row[0] if row else None


def set_state(url: str, key: str, value: str) -> None:
    ensure_state_table(url)
    with connect(url) as conn, conn.transaction():
        conn.execute(
            """insert into ops.activation_state (key, value) values (%s, %s)
               on conflict (key) do update set value = excluded.value, updated_at = now()""",
            (key, value),
        )


# --------------------------------------------------------------------------- accuracy


@dataclass(frozen=True)
class AccuracyDrop:
    cohort: str
    metric: str
    quarter: str  # label of the latest scored quarter
    previous_quarter: str
    smape: float
    previous_smape: float

    @property
    def points(self) -> float:
        return self.smape - self.previous_smape

    def describe(self) -> str:
        return (
            f"{self.cohort} · {self.metric}: sMAPE {self.previous_smape:.1f}% ({self.previous_quarter}) "
            f"→ {self.smape:.1f}% ({self.quarter}), +{self.points:.1f} points"
        )


def find_accuracy_drops(rows: list[dict], threshold: float) -> list[AccuracyDrop]:
    """Pure: ``rows`` are evaluation rows (cohort, metric, quarter, quarter_label, smape).
    For each cohort and metric, the latest quarter is compared with the one before it."""
    series: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r.get("smape") is None:
            continue
        series.setdefault((r["cohort"], r["metric"]), []).append(r)
    drops = []
    for (cohort, metric), items in sorted(series.items()):
        items.sort(key=lambda r: r["quarter"])
        if len(items) < 2:
            continue
        prev, last = items[-2], items[-1]
        worse = float(last["smape"]) - float(prev["smape"])
        if worse > threshold:
            drops.append(
                AccuracyDrop(
                    cohort,
                    metric,
                    str(last.get("quarter_label") or last["quarter"]),
                    str(prev.get("quarter_label") or prev["quarter"]),
                    float(last["smape"]),
                    float(prev["smape"]),
                )
            )
    return drops


def accuracy_drops(url: str, as_of: str, threshold: float) -> list[AccuracyDrop]:
    """Drops for the quarter ``as_of`` (key YYYY-MM-DD) against the previous scored quarter."""
    with connect(url) as conn:
        cur = conn.execute(
            # one level per cohort: its total where it has one ('total' > 'parts'), else its parts
            """select cohort, metric, quarter, quarter_label, smape from forecast.evaluation e
                where e.level = (select max(x.level) from forecast.evaluation x where x.cohort = e.cohort)
                  and quarter <= %s::date and quarter >= (
                      select max(quarter) from forecast.evaluation p
                       where p.cohort = e.cohort and p.metric = e.metric and p.quarter < %s::date)
                  and exists (select 1 from forecast.evaluation l where l.cohort = e.cohort
                              and l.metric = e.metric and l.quarter = %s::date)""",
            (as_of, as_of, as_of),
        )
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    return find_accuracy_drops(rows, threshold)
