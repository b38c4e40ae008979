"""The freshness rules and the once-per-breach bookkeeping (lib/monitoring/freshness.py), on a fixed clock."""

import datetime as dt

import pytest

from synoforecast.lib.monitoring import freshness
from synoforecast.lib.monitoring.freshness import (
    BREACH,
    PASS,
    QUARTER_CLOSE,
    SNAPSHOT,
    UNKNOWN,
    AlertState,
    Export,
    Facts,
)

UTC = dt.UTC
COHORTS = ("svr_rm_overall", "regional", "c2_scorecard")
Q1, Q2, Q3 = dt.date(2026, 1, 1), dt.date(2026, 4, 1), dt.date(2026, 7, 1)


def at(day: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=UTC)


def export(sha: str, day: str, complete=(Q1, Q2)) -> Export:
    return Export(sha * 64, f"/inbox/sales_{day}.xlsx", at(day, 18), tuple(complete))


def facts(newest=None, published=None, as_of=None, first=dt.date(2023, 1, 1)) -> Facts:
    as_of = {c: frozenset(q) for c, q in (as_of or {}).items()}
    return Facts(newest=newest, published=published, published_as_of=as_of, cohorts=COHORTS, first_quarter=first)


ALL_TO_Q2 = {c: {Q1, Q2} for c in COHORTS}


# --------------------------------------------------------------------------- snapshot


def test_an_export_dated_nine_days_ago_is_a_breach_eight_is_the_limit():
    e = export("a", "2026-08-20")
    f = facts(newest=e, published=e)
    fresh = freshness.snapshot_finding(f, at("2026-08-28", 17), 8)  # 7 days 23 h
    assert fresh.status == PASS and fresh.breach is None
    assert (
        "sales_2026-08-20.xlsx (dated 2026-08-20)" in fresh.summary and "fresh until 2026-08-28 18:00" in fresh.summary
    )
    late = freshness.snapshot_finding(f, at("2026-08-29", 18), 8)
    assert late.status == BREACH
    assert late.title == "no sale-out export for 9 days"
    assert "no export for 9 days" in late.headline and "limit 8 days" in late.headline
    assert "overdue since 2026-08-28 18:00 UTC" in late.summary and "SYNOFORECAST_FRESHNESS_MAX_AGE_DAYS" in late.fix
    # the description is timeless: the same breach a day later reads the same (one check event)
    later = freshness.snapshot_finding(f, at("2026-08-30", 18), 8)
    assert later.summary == late.summary and later.breach == late.breach and "10 days" in later.headline


def test_no_export_yet_is_unknown_and_an_unpublished_newest_export_is_named():
    nothing = freshness.snapshot_finding(facts(), at("2026-08-29"), 8)
    assert nothing.status == UNKNOWN and "inbox" in nothing.fix and nothing.breach is None
    old, new = export("a", "2026-08-01"), export("b", "2026-08-20")
    held = freshness.snapshot_finding(facts(newest=new, published=old), at("2026-08-22"), 8)
    assert held.status == PASS and "Analysts still read sales_2026-08-01.xlsx" in held.summary


def test_a_new_export_is_a_new_breach_key():
    a, b = export("a", "2026-08-20"), export("b", "2026-08-30")
    first = freshness.snapshot_finding(facts(newest=a), at("2026-08-29"), 8)
    second = freshness.snapshot_finding(facts(newest=b), at("2026-09-08"), 8)
    assert first.status == second.status == BREACH and first.breach != second.breach


# --------------------------------------------------------------------------- quarter close


@pytest.mark.parametrize(
    "now, due",
    [
        (at("2026-07-10", 23), Q1),  # Q2 ended 30 Jun: its grace runs until 11 Jul 00:00
        (at("2026-07-11", 0), Q2),
        (at("2026-09-30", 12), Q2),
        (at("2026-10-11", 0), Q3),
    ],
)
def test_the_due_quarter_is_the_last_one_past_its_grace(now, due):
    assert freshness.due_quarter(now, 10) == due


def test_fiscal_quarters_and_a_zero_grace():
    # fiscal year from April: FY2027-Q2 runs Jul-Sep 2026
    assert freshness.due_quarter(at("2026-10-01", 0), 0, fiscal_start_month=4) == Q3
    assert freshness.due_quarter(at("2026-08-15"), 60, fiscal_start_month=2) == dt.date(2026, 2, 1)


def test_a_closed_quarter_with_its_forecast_published_passes():
    e = export("a", "2026-08-20")
    ok = freshness.quarter_finding(facts(e, e, ALL_TO_Q2), at("2026-10-10", 23), 10)
    assert ok.status == PASS and "2026-Q2 ended 2026-06-30: its forecast is published (3 cohorts)" in ok.summary
    assert all(passed for passed, _ in ok.subjects.values())


def test_a_closed_quarter_without_an_export_holding_it():
    e = export("a", "2026-08-20")
    late = freshness.quarter_finding(facts(e, e, ALL_TO_Q2), at("2026-10-12"), 10)
    assert late.status == BREACH and late.breach == "quarter_close:2026-07-01"
    assert late.title == "2026-Q3 closed 11 days ago without a published forecast"
    assert (
        "2026-Q3 ended 2026-09-30 and has no published forecast for every cohort 10 days later "
        "(due 2026-10-11)" in late.summary
    )
    assert (
        "no accepted export holds 2026-Q3 completely yet (the newest, sales_2026-08-20.xlsx (dated "
        "2026-08-20), holds complete quarters up to 2026-Q2)" in late.summary
    )
    assert "export taken after 2026-Q3 closed" in late.fix and "SYNOFORECAST_QUARTER_CLOSE_GRACE_DAYS" in late.fix
    passed, text = late.subjects["regional"]
    assert not passed and "latest published: as of 2026-Q2" in text


def test_an_export_that_holds_the_quarter_but_is_not_published():
    old, new = export("a", "2026-08-20"), export("b", "2026-10-05", (Q1, Q2, Q3))
    late = freshness.quarter_finding(facts(new, old, ALL_TO_Q2), at("2026-10-12"), 10)
    assert late.status == BREACH
    assert (
        "the newest export sales_2026-10-05.xlsx (dated 2026-10-05) holds 2026-Q3 but is not published" in late.summary
    )
    assert "failed forecast_pipeline_job run" in late.fix


def test_one_cohort_missing_and_a_cohort_without_any_forecast():
    e = export("b", "2026-10-05", (Q1, Q2, Q3))
    as_of = {"svr_rm_overall": {Q2, Q3}, "regional": {Q2}}  # c2_scorecard: never forecast (no history)
    late = freshness.quarter_finding(facts(e, e, as_of), at("2026-10-12"), 10)
    assert late.status == BREACH and late.metadata["missing_cohorts"] == ["regional"]
    assert late.subjects["svr_rm_overall"][0] and late.subjects["c2_scorecard"][0]
    assert not late.subjects["regional"][0]
    assert "for regional" in late.summary and "holds 2026-Q3, but its forecast as of 2026-Q3 is not" in late.summary


def test_nothing_published_is_unknown_and_no_quarter_before_the_data():
    e = export("a", "2026-08-20")
    assert freshness.quarter_finding(facts(e, None), at("2026-10-12"), 10).status == UNKNOWN
    empty = freshness.quarter_finding(facts(e, e, {}), at("2026-10-12"), 10)  # published, but no forecast at all
    assert empty.status == BREACH and empty.metadata["missing_cohorts"] == list(COHORTS)
    before = freshness.quarter_finding(facts(e, e, {}, first=dt.date(2026, 10, 1)), at("2026-10-12"), 10)
    assert before.passed and "before the data's first quarter" in before.summary


# --------------------------------------------------------------------------- once per breach


def _tick(findings, state, channels, now, failing=()):
    """What a sensor tick does with the pure parts: post what is due, record what reached where."""
    due = freshness.alerts_due(findings, state, channels)
    delivered = {f.rule: [c for c in todo if c not in failing] for f, todo in due}
    errors = {f.rule: "HTTP 500" for f, todo in due if set(todo) & set(failing)}
    new = freshness.next_state(findings, state, now, delivered, errors)
    return due, {rule: s for rule, s in new.items() if s is not None}


def test_a_breach_is_posted_once_then_again_after_it_resolved_and_recurred():
    a, b = export("a", "2026-08-20"), export("b", "2026-08-30")
    channels = ["slack", "teams"]
    state: dict = {}
    posts = []
    for hours in range(0, 48, 6):  # two days of ticks in breach: one post per channel
        now = at("2026-08-29") + dt.timedelta(hours=hours)
        due, state = _tick([freshness.snapshot_finding(facts(a), now, 8)], state, channels, now)
        posts += [(f.rule, c) for f, todo in due for c in todo]
    assert posts == [(SNAPSHOT, "slack"), (SNAPSHOT, "teams")]
    assert state[SNAPSHOT].posted_to == {"slack", "teams"} and state[SNAPSHOT].since == at("2026-08-29")
    due, state = _tick([freshness.snapshot_finding(facts(b), at("2026-08-31"), 8)], state, channels, at("2026-08-31"))
    assert due == [] and state == {}  # resolved: the row goes
    due, state = _tick([freshness.snapshot_finding(facts(b), at("2026-09-08"), 8)], state, channels, at("2026-09-08"))
    assert [c for _, todo in due for c in todo] == channels  # the second silence is posted again


def test_a_channel_that_failed_is_retried_alone():
    a = export("a", "2026-08-20")
    finding = freshness.snapshot_finding(facts(a), at("2026-08-29"), 8)
    due, state = _tick([finding], {}, ["slack", "teams"], at("2026-08-29"), failing=("teams",))
    assert state[SNAPSHOT].posted_to == {"slack"} and state[SNAPSHOT].error == "HTTP 500"
    due, state = _tick([finding], state, ["slack", "teams"], at("2026-08-29", 13))
    assert [todo for _, todo in due] == [["teams"]] and state[SNAPSHOT].error is None
    assert freshness.alerts_due([finding], state, ["slack", "teams", "n8n"])[0][1] == ["n8n"]  # a channel added later


def test_unknown_keeps_the_state_and_a_new_quarter_is_a_new_breach():
    e = export("a", "2026-08-20")
    known = {
        QUARTER_CLOSE: AlertState(QUARTER_CLOSE, "quarter_close:2026-04-01", at("2026-07-11"), frozenset({"slack"}))
    }
    unknown = freshness.quarter_finding(facts(e, None), at("2026-10-12"), 10)
    assert freshness.next_state([unknown], known, at("2026-10-12"))[QUARTER_CLOSE] == known[QUARTER_CLOSE]
    q3 = freshness.quarter_finding(facts(e, e, ALL_TO_Q2), at("2026-10-12"), 10)
    assert freshness.alerts_due([q3], known, ["slack"]) == [(q3, ["slack"])]


def test_the_clock_must_be_aware():
    with pytest.raises(ValueError, match="aware"):
        freshness.snapshot_finding(facts(export("a", "2026-08-20")), dt.datetime(2026, 8, 29), 8)
