"""What the freshness rules (lib/monitoring/freshness.py) read from the warehouse, and the alert state
they keep in it (`ops.freshness_alerts`: one row per rule in breach, with the channels that
breach reached, so it is posted once, across daemon restarts).

Reads only small tables: the newest accepted export (ops.snapshots, one row per workbook
ever accepted), the published pointer (one row) and the cohorts and as-of quarters of
`published.forecasts` (cohorts x series x metrics x quarters: a few thousand rows).
"""

from __future__ import annotations

import datetime as dt

import psycopg

from synoforecast.lib.monitoring import freshness
from synoforecast.lib.monitoring.freshness import AlertState, Export, Facts, Finding
from synoforecast.lib.quarters import quarter_start
from synoforecast.lib.warehouse.connection import connect

_EXPORT = "select sha256, file, file_mtime, complete_quarters from ops.snapshots where status = 'accepted'"


def _export(row) -> Export | None:
    if row is None:
        return None
    sha, file, mtime, complete = row
    return Export(sha, file, mtime, tuple(sorted(dt.date.fromisoformat(k) for k in (complete or []))))


def read_facts(conn: psycopg.Connection, cohorts: tuple[str, ...], first_quarter: dt.date) -> Facts:
    newest = _export(conn.execute(_EXPORT + " order by file_mtime desc, first_seen_at desc limit 1").fetchone())
    published = _export(
        conn.execute(_EXPORT + " and sha256 = (select snapshot_sha256 from ops.published_snapshot)").fetchone()
    )
    as_of: dict[str, frozenset[dt.date]] = {}
    if conn.execute("select to_regclass('published.forecasts')").fetchone()[0]:
        as_of = {
            cohort: frozenset(quarters)
            for cohort, quarters in conn.execute(
                "select cohort, array_agg(distinct as_of_quarter) from published.forecasts group by cohort"
            )
        }
    return Facts(
        newest=newest, published=published, published_as_of=as_of, cohorts=cohorts, first_quarter=first_quarter
    )


def load_facts(url: str, cohorts: tuple[str, ...], first_quarter: dt.date) -> Facts:
    with connect(url) as conn:
        return read_facts(conn, cohorts, first_quarter)


def evaluate(
    url: str,
    now: dt.datetime,
    *,
    max_age_days: int,
    grace_days: int,
    fiscal_start_month: int,
    partitions_start: dt.date,
) -> dict[str, Finding]:
    """Both rules at `now` on what the warehouse holds (`partitions_start`: the first partition,
    settings.effective_partitions_start)."""
    from synoforecast.lib.forecasting.cohorts import COHORTS

    first = quarter_start(partitions_start, fiscal_start_month)
    facts = load_facts(url, tuple(c.name for c in COHORTS), first)
    return freshness.evaluate(facts, now, max_age_days, grace_days, fiscal_start_month)


def load_alerts(url: str) -> dict[str, AlertState]:
    with connect(url) as conn:
        rows = conn.execute(
            "select rule, breach, since, posted_to, posted_at, last_error from ops.freshness_alerts"
        ).fetchall()
    return {r[0]: AlertState(r[0], r[1], r[2], frozenset(r[3] or ()), r[4], r[5]) for r in rows}


def save_alerts(url: str, states: dict[str, AlertState | None], summaries: dict[str, str]) -> None:
    """Record each rule's breach (None: the rule is not in breach any more), in one transaction."""
    with connect(url) as conn, conn.transaction():
        for rule, state in states.items():
            if state is None:
                conn.execute("delete from ops.freshness_alerts where rule = %s", (rule,))
                continue
            conn.execute(
                """insert into ops.freshness_alerts (rule, breach, summary, since, posted_to, posted_at, last_error)
                   values (%s, %s, %s, %s, %s, %s, %s)
                   on conflict (rule) do update set breach = excluded.breach, summary = excluded.summary,
                       since = excluded.since, posted_to = excluded.posted_to, posted_at = excluded.posted_at,
                       last_error = excluded.last_error""",
                (
                    rule,
                    state.breach,
                    summaries.get(rule, ""),
                    state.since,
                    sorted(state.posted_to),
                    state.posted_at,
                    state.error,
                ),
            )
