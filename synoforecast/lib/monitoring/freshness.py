"""Silence is an event (design §3): the two freshness rules, pure.

* **snapshot**: the newest accepted export is dated `freshness_max_age_days` or more
  before now. An export is dated as the reader dates it: its file's modification time,
  the export date that decides its complete quarters and its order (lib/ingest/export_order.py).
  A re-drop or a re-publish of an old export therefore does not make the data fresh.
* **quarter_close**: `quarter_close_grace_days` after a quarter ended, the forecast as of
  that quarter (forecast partition Q = "as of Q", trained on Q and predicting Q+1) is not
  in `published.forecasts`, what analysts read.

Given the facts the warehouse holds (:class:`Facts`, read by lib/monitoring/freshness_state.py),
the clock and the settings, each rule gives a :class:`Finding`: ``pass``, ``breach`` or
``unknown`` (nothing to judge yet: no export accepted or nothing published), with a
human summary, a fix, and the identity of the breach. :func:`alerts_due` says which
breaches still have to be posted to which channel: once per breach, again when a breach
resolved and recurs. No Dagster, no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from synoforecast.lib.quarters import add_quarters, quarter_end, quarter_label, quarter_start

SNAPSHOT, QUARTER_CLOSE = "snapshot", "quarter_close"
RULES = (SNAPSHOT, QUARTER_CLOSE)
PASS, BREACH, UNKNOWN = "pass", "breach", "unknown"
UTC = dt.UTC


@dataclass(frozen=True)
class Export:
    """An accepted export as ops.snapshots records it."""

    sha256: str
    file: str
    export_date: dt.datetime  # the file's modification time: the date the reader gives the export
    complete_quarters: tuple[dt.date, ...] = ()

    @property
    def name(self) -> str:
        return PurePath(self.file).name or self.file

    def dated(self) -> str:
        return f"{self.name} (dated {_day(self.export_date)})"


@dataclass(frozen=True)
class Facts:
    newest: Export | None  # the accepted export with the latest export date
    published: Export | None  # the export analysts read (ops.published_snapshot)
    published_as_of: Mapping[str, frozenset[dt.date]]  # cohort -> as-of quarters in published.forecasts
    cohorts: tuple[str, ...]  # the cohorts the platform forecasts
    first_quarter: dt.date  # the first partition: no forecast can exist before it


@dataclass(frozen=True)
class Finding:
    rule: str
    status: str  # PASS / BREACH / UNKNOWN
    summary: str  # timeless (dates, not ages): the check's description changes only with the state
    headline: str  # with the age in days: the doctor's line and the alert's first line
    fix: str = ""
    title: str = ""  # the alert's title (short)
    breach: str | None = None  # same breach, same key: posted once
    subjects: Mapping[str, tuple[bool, str]] = field(default_factory=dict)  # cohort -> (passed, description)
    metadata: Mapping[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == PASS


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("freshness needs an aware datetime (UTC)")
    return moment.astimezone(UTC)


def _day(moment: dt.datetime) -> str:
    return _utc(moment).date().isoformat()


def _days(delta: dt.timedelta) -> str:
    days = delta.days
    return f"{days} day{'s' if days != 1 else ''}"


def _start_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=UTC)


# --------------------------------------------------------------------------- snapshot


def snapshot_finding(facts: Facts, now: dt.datetime, max_age_days: int) -> Finding:
    """No accepted export dated within `max_age_days` of now."""
    now, limit = _utc(now), dt.timedelta(days=max_age_days)
    newest = facts.newest
    knob = "SYNOFORECAST_FRESHNESS_MAX_AGE_DAYS"
    if newest is None:
        return Finding(
            SNAPSHOT,
            UNKNOWN,
            "No export accepted yet.",
            "No export accepted yet.",
            "drop the sale-out workbook in the inbox (SYNOFORECAST_INBOX) or run `synoforecast ingest FILE`",
            metadata={"limit_days": max_age_days},
        )
    age = now - _utc(newest.export_date)
    due = _utc(newest.export_date) + limit
    meta: dict[str, object] = {
        "newest_export": newest.name,
        "newest_sha256": newest.sha256,
        "export_date": _utc(newest.export_date).isoformat(),
        "limit_days": max_age_days,
    }
    seen = ""
    if facts.published is not None and facts.published.sha256 != newest.sha256:
        seen = f" Analysts still read {facts.published.dated()}: the newest export is not published."
        meta["published_export"] = facts.published.name
    if age < limit:
        meta["fresh_until"] = due.isoformat()
        return Finding(
            SNAPSHOT,
            PASS,
            f"Newest accepted export: {newest.dated()}; fresh until {due:%Y-%m-%d %H:%M} UTC "
            f"(limit {max_age_days} days).{seen}",
            f"newest accepted export {newest.dated()}, {_days(age)} old (limit {max_age_days})",
            metadata=meta,
        )
    meta["overdue_since"] = due.isoformat()
    return Finding(
        SNAPSHOT,
        BREACH,
        f"No export since {_day(newest.export_date)}: the newest accepted export is {newest.dated()}; "
        f"overdue since {due:%Y-%m-%d %H:%M} UTC (limit {max_age_days} days).{seen}",
        f"no export for {_days(age)}: the newest accepted export is {newest.dated()} (limit {max_age_days} days)",
        "ask sales operations for the export and check the inbox share (SYNOFORECAST_INBOX) and refused runs of "
        f"ingest_snapshot_job; then `synoforecast ingest FILE`. Limit: {knob}",
        title=f"no sale-out export for {_days(age)}",
        breach=f"{SNAPSHOT}:{newest.sha256}:{_day(newest.export_date)}",
        metadata=meta,
    )


# --------------------------------------------------------------------------- quarter close


def quarter_deadline(quarter: dt.date, grace_days: int) -> dt.datetime:
    """When the forecast as of `quarter` must be published: `grace_days` after it ended (UTC)."""
    return _start_of(add_quarters(quarter, 1)) + dt.timedelta(days=grace_days)


def due_quarter(now: dt.datetime, grace_days: int, fiscal_start_month: int = 1) -> dt.date:
    """The latest quarter whose deadline has passed at `now`."""
    quarter = add_quarters(quarter_start(_utc(now).date(), fiscal_start_month), -1)
    while quarter_deadline(quarter, grace_days) > _utc(now):
        quarter = add_quarters(quarter, -1)
    return quarter


def quarter_finding(facts: Facts, now: dt.datetime, grace_days: int, fiscal_start_month: int = 1) -> Finding:
    """The latest quarter past its grace has a published forecast, for every cohort that has any."""
    now = _utc(now)
    quarter = due_quarter(now, grace_days, fiscal_start_month)
    name = quarter_label(quarter, fiscal_start_month)
    ended = quarter_end(quarter)
    deadline = quarter_deadline(quarter, grace_days)
    meta: dict[str, object] = {
        "quarter": name,
        "quarter_start": quarter.isoformat(),
        "ended": ended.isoformat(),
        "deadline": deadline.isoformat(),
        "grace_days": grace_days,
    }
    if quarter < facts.first_quarter:
        text = f"No quarter due: {name} is before the data's first quarter."
        return Finding(
            QUARTER_CLOSE,
            PASS,
            text,
            text.rstrip("."),
            subjects={c: (True, text) for c in facts.cohorts},
            metadata=meta,
        )
    if facts.published is None:
        text = "Nothing published yet."
        return Finding(
            QUARTER_CLOSE,
            UNKNOWN,
            text,
            f"{name} due, but nothing is published yet",
            "the first pipeline run after an accepted export publishes; see its run in the UI",
            subjects={c: (False, text) for c in facts.cohorts},
            metadata=meta,
        )
    holders = [c for c in facts.cohorts if quarter in facts.published_as_of.get(c, frozenset())]
    forecasting = [c for c in facts.cohorts if facts.published_as_of.get(c)]
    missing = [c for c in facts.cohorts if c not in holders and (c in forecasting or not holders)]
    meta["missing_cohorts"] = missing
    if not missing:
        text = f"{name} ended {ended}: its forecast is published ({len(holders)} cohorts)."
        subjects = {
            c: (
                True,
                f"Forecast as of {name} published."
                if c in holders
                else f"No forecast published for this cohort in any quarter (no history); {name} is published "
                "for the others.",
            )
            for c in facts.cohorts
        }
        return Finding(QUARTER_CLOSE, PASS, text, text.rstrip("."), subjects=subjects, metadata=meta)
    why, fix = _why_unpublished(facts, quarter, name, fiscal_start_month)
    subjects = {}
    for c in facts.cohorts:
        if c in missing:
            latest = max(facts.published_as_of.get(c, frozenset()), default=None)
            since = f"; latest published: as of {quarter_label(latest, fiscal_start_month)}" if latest else ""
            subjects[c] = (
                False,
                f"No forecast as of {name} published by {deadline:%Y-%m-%d} ({name} ended {ended}, "
                f"grace {grace_days} days{since}): {why}.",
            )
        else:
            subjects[c] = (
                True,
                f"Forecast as of {name} published."
                if c in holders
                else "No forecast published for this cohort in any quarter (no history).",
            )
    which = "every cohort" if len(missing) == len(facts.cohorts) else ", ".join(missing)
    summary = (
        f"{name} ended {ended} and has no published forecast for {which} "
        f"{grace_days} days later (due {deadline:%Y-%m-%d}): {why}."
    )
    title = f"{name} closed {_days(now - _start_of(ended + dt.timedelta(days=1)))} ago without a published forecast"
    headline = f"{title} (grace {grace_days} days): {why}"
    return Finding(
        QUARTER_CLOSE,
        BREACH,
        summary,
        headline,
        fix,
        title=title,
        breach=f"{QUARTER_CLOSE}:{quarter.isoformat()}",
        subjects=subjects,
        metadata=meta,
    )


def _why_unpublished(facts: Facts, quarter: dt.date, name: str, fiscal: int) -> tuple[str, str]:
    newest, published = facts.newest, facts.published
    knob = "Grace: SYNOFORECAST_QUARTER_CLOSE_GRACE_DAYS"
    if newest is not None and quarter in newest.complete_quarters:
        if published is not None and published.sha256 == newest.sha256:
            return (
                f"the published export {newest.dated()} holds {name}, but its forecast as of {name} is not published",
                f"materialise the forecast partition {name} (UI: forecast assets, or the quarter_close_schedule) "
                f"or run `synoforecast ingest FILE` again. {knob}",
            )
        return (
            f"the newest export {newest.dated()} holds {name} but is not published "
            f"(analysts read {published.dated() if published else 'nothing'})",
            f"open its failed forecast_pipeline_job run in the UI, fix the cause, then `synoforecast ingest "
            f"{newest.name}` (publish_heal_sensor retries a run that died). {knob}",
        )
    held = sorted(newest.complete_quarters) if newest is not None else []
    upto = f"complete quarters up to {quarter_label(held[-1], fiscal)}" if held else "no complete quarter"
    return (
        f"no accepted export holds {name} completely yet (the newest, {newest.dated()}, holds {upto})"
        if newest is not None
        else f"no accepted export holds {name}",
        f"ask sales operations for an export taken after {name} closed and drop it in the inbox "
        f"(or `synoforecast ingest FILE`): it is forecast and published when accepted. {knob}",
    )


def evaluate(
    facts: Facts, now: dt.datetime, max_age_days: int, grace_days: int, fiscal_start_month: int = 1
) -> dict[str, Finding]:
    """Both rules at `now`."""
    return {
        SNAPSHOT: snapshot_finding(facts, now, max_age_days),
        QUARTER_CLOSE: quarter_finding(facts, now, grace_days, fiscal_start_month),
    }


# --------------------------------------------------------------------------- once per breach


@dataclass(frozen=True)
class AlertState:
    """A rule's active breach as last recorded (ops.freshness_alerts): the channels it reached."""

    rule: str
    breach: str
    since: dt.datetime
    posted_to: frozenset[str] = frozenset()
    posted_at: dt.datetime | None = None
    error: str | None = None


def alerts_due(
    findings: Iterable[Finding], state: Mapping[str, AlertState], channels: Sequence[str]
) -> list[tuple[Finding, list[str]]]:
    """(breach, channels it still has to reach): a breach already posted to a channel is not
    posted there again; a new breach (another key, or the same one after it resolved) is."""
    due = []
    for finding in findings:
        if finding.status != BREACH:
            continue
        known = state.get(finding.rule)
        sent = known.posted_to if known is not None and known.breach == finding.breach else frozenset()
        todo = [c for c in channels if c not in sent]
        if todo:
            due.append((finding, todo))
    return due


def next_state(
    findings: Iterable[Finding],
    state: Mapping[str, AlertState],
    now: dt.datetime,
    delivered: Mapping[str, Iterable[str]] | None = None,
    errors: Mapping[str, str] | None = None,
) -> dict[str, AlertState | None]:
    """The state to record per rule: a breach with the channels it reached (None: no breach,
    the row goes). A rule that cannot be judged (UNKNOWN) keeps what it had."""
    delivered, errors = delivered or {}, errors or {}
    out: dict[str, AlertState | None] = {}
    for finding in findings:
        known = state.get(finding.rule)
        if finding.status == UNKNOWN:
            out[finding.rule] = known
            continue
        if finding.status == PASS:
            out[finding.rule] = None
            continue
        same = known is not None and known.breach == finding.breach
        reached = frozenset(delivered.get(finding.rule, ()))
        posted = (known.posted_to if same else frozenset()) | reached
        out[finding.rule] = AlertState(
            rule=finding.rule,
            breach=finding.breach or "",
            since=known.since if same else _utc(now),
            posted_to=posted,
            posted_at=_utc(now) if reached else (known.posted_at if same else None),
            error=errors.get(finding.rule),
        )
    return out


def alert_details(finding: Finding, link: str | None = None) -> list[str]:
    """The lines of a breach's alert: what, what to do, where to look."""
    lines = [finding.summary, f"Fix: {finding.fix}"] if finding.fix else [finding.summary]
    if link:
        lines.append(f"Dagster: {link}")
    return lines
