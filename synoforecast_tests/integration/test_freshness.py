"""Freshness end to end: one real `synoforecast ingest` of an export dated 2026-08-20, then
`freshness_sensor` ticks on a real Dagster instance with Dagster's clock fixed
(`freeze_time`), the webhooks pointed at the local stand-in, and `synoforecast doctor`.

An export's date is its file's date, as the reader dates it (the sample writer sets it to
the export day), which is what the snapshot rule measures: the clock and the data tell one story."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time

from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast.settings import get_settings
from synoforecast_tests.conftest import fetch, isolated_project, new_database
from synoforecast_tests.support.definitions import reload_definitions

pytestmark = pytest.mark.integration

SLACK = "/slack/services/T1/B1/freshSECRET"
TEAMS = "/teams/workflows/fresh/triggers/manual/paths/invoke"
UTC = dt.UTC
START = dt.date(2023, 10, 1)
# `cutoff` dates the file on its export day, 18:00 (what an export written that evening carries)
FIRST = SampleSpec(
    rows=2500, seed=11, start=START, quarters=12, as_of=dt.date(2026, 8, 20), cutoff=dt.date(2026, 8, 20)
)
FIRST_DATED = dt.datetime(2026, 8, 20, 18, tzinfo=UTC)
SECOND = SampleSpec(
    rows=2500, seed=12, start=START, quarters=12, as_of=dt.date(2026, 8, 30), cutoff=dt.date(2026, 8, 30)
)
SECOND_DATED = dt.datetime(2026, 8, 30, 18, tzinfo=UTC)
FORECASTS = ("svr_rm_overall", "svr_rm_top_customers", "regional", "consumer_trend", "c2_scorecard")


@pytest.fixture(scope="module")
def env(pg_server, standin, tmp_path_factory):
    try:
        with isolated_project(tmp_path_factory.mktemp("freshness"), new_database(pg_server)) as project:
            mp = project["monkeypatch"]
            mp.setenv("SLACK_WEBHOOK_URL", standin.url + SLACK)
            mp.setenv("TEAMS_WEBHOOK_URL", standin.url + TEAMS)
            mp.setenv("DAGSTER_WEBSERVER_URL", "http://dagster.nas.local:3000")
            reload_definitions()  # the code location loads with these variables
            path = project["inbox"] / "sales_2026-08-20.xlsx"
            write_sample_workbook(path, FIRST)
            from synoforecast.cli.main import main

            assert main(["ingest", str(path), "--json"]) == 0
            yield project
    finally:
        reload_definitions()


def tick(when: dt.datetime):
    """One evaluation of the sensor as the daemon runs it, at `when` on Dagster's clock."""
    from synoforecast.defs.freshness import freshness_sensor
    from synoforecast.defs.resources import build_resources

    with freeze_time(when):
        context = dg.build_sensor_context(instance=dg.DagsterInstance.get(), resources=build_resources())
        started = time.perf_counter()
        result = freshness_sensor(context)
        return result, time.perf_counter() - started


def latest(asset: str, check: str) -> dg.AssetCheckEvaluation:
    key = dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), check)
    record = dg.DagsterInstance.get().get_latest_asset_check_evaluation_record(key)
    return record.event.asset_check_evaluation


def posts(standin, needle: str) -> list[tuple[str, dict]]:
    """(channel path, payload) of every post whose text holds `needle`."""
    found = []
    for request in standin.requests:
        if request.method == "POST" and needle in json.dumps(request.json, ensure_ascii=False):
            found.append((request.path, request.json))
    return found


def test_no_export_for_nine_days_fails_the_check_and_is_posted_once_per_breach(env, standin):
    standin.reset()
    result, seconds = tick(FIRST_DATED + dt.timedelta(days=1))
    assert isinstance(result, dg.SkipReason) and "snapshot: pass" in result.skip_message
    assert latest("workbook_snapshot", "snapshot_freshness").passed
    assert posts(standin, "no sale-out export") == []

    # nine days without an export: several ticks, one post per channel
    silent = FIRST_DATED + dt.timedelta(days=9)
    durations = [tick(silent + dt.timedelta(minutes=m))[1] for m in (0, 5, 10, 60, 24 * 60)]
    alerts = posts(standin, "no sale-out export")
    assert [path for path, _ in alerts] == [SLACK, TEAMS]
    slack = json.dumps(alerts[0][1], ensure_ascii=False)
    assert "synoforecast: no sale-out export for 9 days" in slack
    assert "sales_2026-08-20.xlsx (dated 2026-08-20)" in slack and "limit 8 days" in slack
    assert "SYNOFORECAST_FRESHNESS_MAX_AGE_DAYS" in slack
    assert "http://dagster.nas.local:3000/assets/workbook_snapshot?view=checks" in slack
    assert "freshSECRET" not in slack
    check = latest("workbook_snapshot", "snapshot_freshness")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "No export since 2026-08-20" in check.description
    (row,) = fetch(env["url"], "select rule, posted_to from ops.freshness_alerts where rule = 'snapshot'")
    assert row == ("snapshot", ["slack", "teams"])
    assert max(durations) < 1.0, durations  # a tick reads three small tables and records at most a few events

    # a new export is accepted (the snapshot run the inbox sensor starts): the check passes, nothing is posted
    path = env["inbox"] / "sales_2026-08-30.xlsx"
    write_sample_workbook(path, SECOND)
    from synoforecast.definitions import defs
    from synoforecast.defs.ingestion.sensors import snapshot_run_request
    from synoforecast.defs.runs import SNAPSHOT_JOB
    from synoforecast.lib.ingest.inbox import file_sha256

    request = snapshot_run_request(str(path), file_sha256(path))
    run = defs.resolve_job_def(SNAPSHOT_JOB).execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=dg.DagsterInstance.get()
    )
    assert run.success
    standin.reset()
    tick(SECOND_DATED + dt.timedelta(days=1))
    check = latest("workbook_snapshot", "snapshot_freshness")
    assert check.passed and "sales_2026-08-30.xlsx (dated 2026-08-30)" in check.description
    assert "Analysts still read sales_2026-08-20.xlsx" in check.description  # accepted, not yet published
    assert posts(standin, "no sale-out export") == []
    assert fetch(env["url"], "select count(*) from ops.freshness_alerts where rule = 'snapshot'") == [(0,)]

    # a second silence is a new breach: posted again, once
    for minutes in (0, 5, 60):
        tick(SECOND_DATED + dt.timedelta(days=9, minutes=minutes))
    again = posts(standin, "no sale-out export")
    assert [path for path, _ in again] == [SLACK, TEAMS]
    assert "sales_2026-08-30.xlsx (dated 2026-08-30)" in json.dumps(again[0][1])


def test_a_closed_quarter_without_a_published_forecast_fails_and_is_posted_once(env, standin):
    # 2026-Q2's forecast is published (the export holds it): due from 11 Jul, fine until Q3's grace ends
    standin.reset()
    tick(dt.datetime(2026, 10, 10, 23, tzinfo=UTC))
    for cohort in FORECASTS:
        evaluation = latest(f"forecast/{cohort}", "quarter_close_freshness")
        assert evaluation.passed, (cohort, evaluation.description)
    assert posts(standin, "without a published forecast") == []

    # 2026-Q3 ended on 30 Sep; ten days later no export holding it has arrived, so no forecast as of Q3
    standin.server_errors = {TEAMS: 10}  # Teams down at the first tick: the tick fails and names it
    try:
        with pytest.raises(Exception, match="not posted.*teams"):
            tick(dt.datetime(2026, 10, 12, 6, tzinfo=UTC))
    finally:
        standin.server_errors = {}
    for cohort in FORECASTS:
        evaluation = latest(f"forecast/{cohort}", "quarter_close_freshness")
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
        assert "No forecast as of 2026-Q3 published by 2026-10-11" in evaluation.description
        assert "holds complete quarters up to 2026-Q2" in evaluation.description
    first = posts(standin, "without a published forecast")
    assert [p for p, _ in first if p == SLACK] == [SLACK]  # Slack got it; Teams answered 500 to every attempt
    (row,) = fetch(env["url"], "select posted_to, last_error from ops.freshness_alerts where rule = 'quarter_close'")
    assert row[0] == ["slack"] and "teams" in row[1] and "HTTP 500" in row[1]
    standin.reset()
    for hours in (1, 2, 24):  # Teams is back: it gets the alert once, Slack is not posted again
        tick(dt.datetime(2026, 10, 12, 6, tzinfo=UTC) + dt.timedelta(hours=hours))
    alerts = posts(standin, "without a published forecast")
    assert [p for p, _ in alerts] == [TEAMS]
    text = json.dumps(first[0][1], ensure_ascii=False)
    assert "synoforecast: 2026-Q3 closed 11 days ago without a published forecast" in text
    assert "export taken after 2026-Q3 closed" in text
    (row,) = fetch(
        env["url"], "select breach, posted_to, last_error from ops.freshness_alerts where rule = 'quarter_close'"
    )
    assert row == ("quarter_close:2026-07-01", ["slack", "teams"], None)


def test_executing_the_checks_in_a_run_gives_the_sensors_answer(env, standin):
    """What "Execute" in the UI does: a run of the checks alone, at the same clock, records the
    same outcomes; the sensor's next tick then records nothing new and posts nothing new."""
    from synoforecast.definitions import defs
    from synoforecast.defs.freshness import freshness_checks

    when = dt.datetime(2026, 10, 13, 6, tzinfo=UTC)
    tick(when)
    before = {c: latest(f"forecast/{c}", "quarter_close_freshness").description for c in FORECASTS}
    job = dg.Definitions.merge(
        defs,
        dg.Definitions(
            jobs=[
                dg.define_asset_job("execute_freshness_checks", selection=dg.AssetSelection.checks(*freshness_checks))
            ]
        ),
    ).resolve_job_def("execute_freshness_checks")
    with freeze_time(when):
        run = job.execute_in_process(instance=dg.DagsterInstance.get())
    assert run.success
    outcomes = {e.check_name + ":" + e.asset_key.to_user_string(): e for e in run.get_asset_check_evaluations()}
    assert len(outcomes) == 6 and not any(e.passed for e in outcomes.values())
    for cohort in FORECASTS:
        assert outcomes[f"quarter_close_freshness:forecast/{cohort}"].description == before[cohort]
    key = dg.AssetCheckKey(dg.AssetKey(["forecast", "regional"]), "quarter_close_freshness")
    history = len(dg.DagsterInstance.get().event_log_storage.get_asset_check_execution_history(key, limit=100))
    standin.reset()
    tick(when + dt.timedelta(minutes=5))
    assert len(dg.DagsterInstance.get().event_log_storage.get_asset_check_execution_history(key, limit=100)) == history
    assert [r for r in standin.requests if r.method == "POST"] == []


def test_doctor_shows_both_rules_with_a_fix(env, standin, capsys):
    from synoforecast.cli import doctor
    from synoforecast.cli.main import main

    settings = get_settings()
    fine = {c.name: c for c in doctor.check_freshness(settings, env["url"], now=dt.datetime(2026, 8, 22, tzinfo=UTC))}
    assert fine["freshness: export"].status == "ok" and fine["freshness: quarter close"].status == "ok"
    assert "2026-Q2 ended 2026-06-30: its forecast is published" in fine["freshness: quarter close"].detail
    when = dt.datetime(2026, 10, 12, 6, tzinfo=UTC)
    late = {c.name: c for c in doctor.check_freshness(settings, env["url"], now=when)}
    export, quarter = late["freshness: export"], late["freshness: quarter close"]
    assert export.status == quarter.status == "fail"
    assert re.search(r"no export for \d\d days: the newest accepted export is sales_2026-08-\d\d.xlsx", export.detail)
    assert "SYNOFORECAST_FRESHNESS_MAX_AGE_DAYS" in export.fix
    tick(when)  # the sensor posts what it has not posted yet; the doctor says where each breach went
    late = {c.name: c for c in doctor.check_freshness(settings, env["url"], now=when)}
    quarter = late["freshness: quarter close"]
    assert "2026-Q3 closed 11 days ago without a published forecast" in quarter.detail
    assert "alert posted to slack, teams" in quarter.detail and "SYNOFORECAST_QUARTER_CLOSE_GRACE_DAYS" in quarter.fix
    # and in the command itself, on today's clock (later than both deadlines, for good)
    standin.reset()
    capsys.readouterr()
    code = main(["doctor", "--json"])
    lines = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert code == 1
    assert lines["freshness: export"]["status"] == lines["freshness: quarter close"]["status"] == "fail"
    assert lines["freshness: export"]["fix"] and lines["freshness: quarter close"]["fix"]
    assert [r for r in standin.requests if r.method == "POST"] == []  # the doctor posts nothing


def test_an_email_route_configured_later_gets_each_open_breach_once(env, standin, smtp_server):
    """Both breaches are open on 20 Oct (no export since 30 Aug, 2026-Q3 without a forecast): the
    email route set now gets each of them once, however many ticks follow."""
    mp = env["monkeypatch"]
    variables = smtp_server.variables()
    for name, value in variables.items():
        mp.setenv(name, value)
    try:
        for minutes in (0, 5, 60):
            tick(dt.datetime(2026, 10, 20, 6, tzinfo=UTC) + dt.timedelta(minutes=minutes))
    finally:
        for name in variables:
            mp.delenv(name)
    mails = {m.subject: m for m in smtp_server.received}
    assert len(smtp_server.received) == 2, sorted(mails)
    export = next(m for s, m in mails.items() if s.startswith("synoforecast: no sale-out export for"))
    quarter = mails["synoforecast: 2026-Q3 closed 19 days ago without a published forecast"]
    assert "http://dagster.nas.local:3000/assets/workbook_snapshot?view=checks" in export.text
    assert "Fix: " in export.text and "SYNOFORECAST_FRESHNESS_MAX_AGE_DAYS" in export.text
    assert quarter.rcpt_tos == ["ops@example.test", "sales@example.test"] and quarter.tls
    rows = fetch(env["url"], "select rule, posted_to from ops.freshness_alerts order by rule")
    assert all("email" in posted for _, posted in rows) and len(rows) == 2
