"""Activation end to end: `synoforecast ingest` with Metabase, Slack, Teams and n8n pointed
at the local stand-in, then the activation assets alone for each failure mode, the
accuracy-drop alert, the run-failure sensor, and email through a real SMTP server
(support/smtp_server.py). One real ingest per module."""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import dagster as dg
import pytest

from synoforecast.defs.activation.assets import metabase_provisioning, metabase_refresh, summary_notification
from synoforecast.defs.activation.sensors import notify_on_run_failure
from synoforecast.defs.resources import build_resources
from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast.settings import get_settings
from synoforecast_tests.conftest import fetch, isolated_project, new_database
from synoforecast_tests.support.definitions import reload_definitions
from synoforecast_tests.support.smtp_server import PASSWORD, RECIPIENTS, USER

pytestmark = pytest.mark.integration

STANDIN_API_KEY = KEY = "mb_activation-SECRET-key"
SLACK = "/slack/services/T1/B1/slackSECRET"
TEAMS = "/teams/workflows/w1/triggers/manual/paths/invoke"
N8N = "/n8n/webhook/n8nSECRET"
LAST = "2026-04-01"
SPEC = SampleSpec(rows=2500, seed=11, start=dt.date(2023, 10, 1), quarters=12, as_of=dt.date(2026, 8, 20))
FORECAST_CHECKSUM = "select count(*), md5(string_agg(f::text, '|' order by f::text)) from forecast.forecasts f"


def _forget_definitions() -> None:
    """Load the code location again with the variables as they are now (support/definitions.py)."""
    reload_definitions()


@pytest.fixture(scope="module")
def env(pg_server, standin, tmp_path_factory):
    try:
        yield from _env(pg_server, standin, tmp_path_factory)
    finally:
        _forget_definitions()


def _env(pg_server, standin, tmp_path_factory):
    with isolated_project(tmp_path_factory.mktemp("activation"), new_database(pg_server)) as project:
        mp = project["monkeypatch"]
        for name, value in {
            "METABASE_URL": standin.url,
            "METABASE_API_KEY": KEY,
            "METABASE_CARD_IDS": "11,12",
            "METABASE_DASHBOARD_IDS": "7",
            "METABASE_MODEL_IDS": "21",
            "METABASE_DATABASE_ID": "2",
            "METABASE_HEALTH_WAIT_S": "0.05",
            "METABASE_BACKOFF_S": "0.05",
            "SLACK_WEBHOOK_URL": standin.url + SLACK,
            "TEAMS_WEBHOOK_URL": standin.url + TEAMS,
            "DAGSTER_WEBSERVER_URL": "http://dagster.nas.local:3000/",
        }.items():
            mp.setenv(name, value)
        mp.delenv("N8N_WEBHOOK_URL", raising=False)
        _forget_definitions()  # the code location loads with these variables
        standin.warehouse_url = project["url"]  # its schema sync reads the warehouse, as Metabase does
        standin.dashboards = {7: [12, 30]}
        standin.initializing_for = 2  # Metabase still starting when the refresh begins
        standin.reset()
        path = project["inbox"] / "sample.xlsx"
        write_sample_workbook(path, SPEC)
        from synoforecast.cli.main import main

        code = main(["ingest", str(path), "--json"])
        assert code == 0
        project["calls"] = standin.calls()
        project["requests"] = list(standin.requests)
        project["standin"] = standin
        standin.initializing_for = 0
        yield project


def _materialize(assets, env, partition=LAST):
    return dg.materialize(
        assets,
        partition_key=partition,
        resources=build_resources(),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def standin_state(env) -> dict:
    s = env["standin"]
    return {"collections": s.collections, "cards": s.cards, "dashboards": s.dashboards_store}


def _metadata(result, name):
    (mat,) = result.asset_materializations_for_node(name)
    return {k: v.value for k, v in mat.metadata.items()}


def test_ingest_refreshes_metabase_then_posts_the_summary(env):
    calls = env["calls"]
    assert calls[:3] == ["GET /api/health"] * 3  # two 503 "initializing", then ok
    metabase = [c for c in calls if c.startswith(("GET /api/", "POST /api/")) and not c.endswith("/metadata")]
    assert "GET /api/database/2/metadata" in calls  # waited for the background sync
    assert not [r for r in env["requests"] if r.path.startswith("/api/card/") and r.during_sync]
    # the questions and the dashboard are provisioned first (found by their keys, not ids) ...
    provision = metabase[: metabase.index("POST /api/database/2/sync_schema") - 1]
    assert provision[:3] == ["GET /api/health"] * 3
    assert provision.count("POST /api/card/") == 4 and provision.count("POST /api/dashboard/") == 1
    (coll,) = [c for c in standin_state(env)["collections"].values() if c["name"] == "synoforecast"]
    provisioned = sorted(c["id"] for c in standin_state(env)["cards"].values() if c["collection_id"] == coll["id"])
    # ... then the refresh re-runs them with the configured cards
    assert metabase[len(provision) :] == [
        "GET /api/health",
        "POST /api/database/2/sync_schema",
        "GET /api/collection/",
        f"GET /api/collection/{coll['id']}/items",
        "GET /api/dashboard/7",
        "POST /api/persist/card/21/refresh",
        "POST /api/cache/invalidate",
        *[f"POST /api/card/{cid}/query" for cid in provisioned],
        "POST /api/card/11/query",
        "POST /api/card/12/query",
        "POST /api/card/30/query",
    ]
    queries = [r for r in env["requests"] if r.path.startswith("/api/card/") and r.path.endswith("/query")]
    assert all(r.json == {"ignore_cache": True} and r.headers["x-api-key"] == KEY for r in queries)
    # summaries come after the refresh, one per channel
    assert calls[-2:] == [f"POST {SLACK}", f"POST {TEAMS}"]
    slack = next(r for r in env["requests"] if r.path == SLACK).json
    text = json.dumps(slack)
    for piece in (
        "svr_rm_overall",
        "c2_scorecard",
        "2026-Q3",
        "dbt tests",
        "passed",
        "sMAPE",
        "All C2",
        "http://dagster.nas.local:3000/runs/",
    ):
        assert piece in text, piece
    teams = next(r for r in env["requests"] if r.path == TEAMS).json
    assert teams["attachments"][0]["content"]["type"] == "AdaptiveCard"


def test_secrets_never_reach_run_metadata_or_logs(env):
    instance = dg.DagsterInstance.get()
    records = instance.get_event_records(dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION))
    dumped = json.dumps([str(r.event_log_entry) for r in records])
    assert "activation" in dumped
    for secret in (KEY, "slackSECRET", SLACK):
        assert secret not in dumped
    logs = [str(e.user_message) for run in instance.get_runs() for e in instance.all_logs(run.run_id)]
    assert not [m for m in logs if KEY in m or "slackSECRET" in m]


def test_unchanged_forecast_schema_is_not_resynced_but_a_new_table_is(env, standin):
    standin.reset()
    result = _materialize([metabase_refresh], env)
    assert result.success
    assert "POST /api/database/2/sync_schema" not in standin.calls()
    assert _metadata(result, "activation__metabase_refresh")["forecast_schema_changed"] is False
    with __import__("psycopg").connect(env["url"], autocommit=True) as conn:
        conn.execute("create table if not exists forecast.shape_probe (x int)")
    standin.reset()
    result = _materialize([metabase_refresh], env)
    assert result.success
    assert "POST /api/database/2/sync_schema" in standin.calls()
    state = fetch(env["url"], "select count(*) from ops.activation_state")[0][0]
    assert state == 1


def test_metabase_down_fails_the_asset_and_keeps_forecasts(env, standin):
    before = fetch(env["url"], FORECAST_CHECKSUM)
    mp = env["monkeypatch"]
    mp.setenv("METABASE_HEALTH_ATTEMPTS", "3")
    standin.forced = {"/api/health": (503, {"status": "error"})}
    standin.reset()
    try:
        result = _materialize([metabase_refresh], env)
    finally:
        standin.forced = {}
        mp.delenv("METABASE_HEALTH_ATTEMPTS")
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.event_specific_data.error.message
    assert "not healthy after 3 attempts" in message and "Published forecasts are unchanged" in message
    assert KEY not in message
    assert standin.calls() == ["GET /api/health"] * 3
    assert fetch(env["url"], FORECAST_CHECKSUM) == before


def test_card_failing_inside_a_202_fails_the_refresh(env, standin):
    standin.fail_card_ids = {12}
    standin.reset()
    try:
        result = _materialize([metabase_refresh], env)
    finally:
        standin.fail_card_ids = set()
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "card 12" in failure.event_specific_data.error.message
    assert standin.calls().count("POST /api/card/12/query") == 1  # a 202 error is not retried


def test_provisioning_again_writes_nothing_and_heals_a_dashboard_deleted_by_hand(env, standin):
    # the first provisioning ran before Metabase had synced the warehouse: the dbt descriptions
    # reach the tables it knows now, once
    standin.reset()
    result = _materialize([metabase_provisioning], env)
    assert result.success
    meta = _metadata(result, "activation__metabase_provisioning")
    assert meta["changed"] == 0 and set(meta["objects"].values()) == {"unchanged"}
    assert meta["catalog"]["tables"]["marts.mart_svr_rm_quarterly"] == "updated"
    tid = standin.table_id("marts.mart_svr_rm_quarterly")
    assert standin.field_edits[tid * 1000]["description"].startswith("First day of the quarter")
    assert [c for c in standin.calls() if c.startswith("PUT ")] and not [
        c for c in standin.calls() if c.startswith("POST ")
    ]
    standin.reset()
    result = _materialize([metabase_provisioning], env)
    assert result.success
    meta = _metadata(result, "activation__metabase_provisioning")
    assert meta["changed"] == 0 and meta["catalog_changed"] == 0
    assert [c for c in standin.calls() if not c.startswith("GET ")] == []
    standin.dashboards_store[meta["dashboard_id"]]["archived"] = True  # moved to the trash by hand
    standin.reset()
    result = _materialize([metabase_provisioning], env)
    assert result.success
    assert _metadata(result, "activation__metabase_provisioning")["objects"]["dashboard"] == "restored"
    assert standin.dashboards_store[meta["dashboard_id"]]["archived"] is False


def test_provisioning_rejected_card_fails_naming_it_and_keeps_forecasts(env, standin):
    before = fetch(env["url"], FORECAST_CHECKSUM)
    card = next(c for c in standin.cards.values() if c["name"] == "Narratives")
    saved = dict(card)
    card["name"] = "Narratives renamed by hand"  # differs: the next run PUTs it back, and is refused
    standin.reject_cards = {"Narratives": {"dataset_query": "Invalid template tag"}}
    standin.reset()
    try:
        result = _materialize([metabase_provisioning], env)
    finally:
        standin.reject_cards = {}
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.event_specific_data.error.message
    assert "question 'Narratives' [narratives]" in message and "Invalid template tag" in message
    assert "Published forecasts are unchanged" in message and KEY not in message
    assert fetch(env["url"], FORECAST_CHECKSUM) == before
    result = _materialize([metabase_provisioning], env)  # a second run heals
    assert result.success and standin.cards[saved["id"]]["name"] == "Narratives"


METABASE_VARS = (
    "METABASE_URL",
    "METABASE_API_KEY",
    "METABASE_CARD_IDS",
    "METABASE_DASHBOARD_IDS",
    "METABASE_MODEL_IDS",
    "METABASE_DATABASE_ID",
)


def test_n8n_is_the_alternative_route(env, standin):
    mp = env["monkeypatch"]
    saved = {name: __import__("os").environ[name] for name in METABASE_VARS}
    for name in METABASE_VARS:
        mp.delenv(name)
    mp.setenv("N8N_WEBHOOK_URL", standin.url + N8N)
    standin.reset()
    try:
        result = _materialize([metabase_refresh], env)
    finally:
        for name, value in saved.items():
            mp.setenv(name, value)
        mp.delenv("N8N_WEBHOOK_URL")
    assert result.success
    assert standin.calls() == [f"POST {N8N}"]
    body = standin.requests[0].json
    assert body["event"] == "metabase_refresh" and body["partitions"] == [LAST]
    assert _metadata(result, "activation__metabase_refresh")["status"] == "requested via n8n"


def test_accuracy_drop_posts_an_alert(env, standin):
    url = env["url"]
    # the alert compares a cohort's total level (forecast.evaluation has one row per level)
    rows = fetch(
        url,
        "select quarter, smape from forecast.evaluation where cohort = 'svr_rm_overall' "
        "and metric = 'units' and level = 'total' and smape is not null order by quarter desc limit 2",
    )
    assert rows[0][0] == dt.date(2026, 4, 1), rows
    env["monkeypatch"].setenv("SYNOFORECAST_ACCURACY_DROP_POINTS", "5")
    get_settings.cache_clear()  # one settings model: AccuracyThresholdsResource reads it
    with __import__("psycopg").connect(url, autocommit=True) as conn:
        conn.execute(
            "update forecast.evaluation set smape = %s where cohort = 'svr_rm_overall' "
            "and metric = 'units' and level = 'total' and quarter = '2026-04-01'",
            (rows[1][1] + 30,),
        )
    standin.reset()
    result = _materialize([summary_notification], env)
    assert result.success
    slack = [r.json for r in standin.requests_to(SLACK)]
    assert len(slack) == 1  # one message per run: the summary carries the alert
    alert = json.dumps(slack[0], ensure_ascii=False)
    assert "accuracy dropped" in slack[0]["blocks"][0]["text"]["text"]
    assert "more than 5 sMAPE points in 2026-Q2" in alert and "svr_rm_overall · units" in alert
    assert "+30.0 points" in alert and "svr_rm_overall" in alert
    teams = json.dumps(standin.requests_to(TEAMS)[0].json, ensure_ascii=False)
    assert "svr_rm_overall · units" in teams
    meta = _metadata(result, "activation__summary_notification")
    assert any("svr_rm_overall · units" in d for d in meta["accuracy_drops"])


def _failed_run(job_name: str, error: str):
    """A real failed run and the run-failure sensor's context for it."""

    @dg.op
    def explode():
        raise RuntimeError(error)

    @dg.job(name=job_name)
    def doomed():
        explode()

    instance = dg.DagsterInstance.ephemeral()
    result = doomed.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="notify_on_run_failure",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources=build_resources(),
    ).for_run_failure()
    return result, context


def test_run_failure_sensor_posts_with_a_link(env, standin):
    result, context = _failed_run("doomed_job", "warehouse went away")
    standin.reset()
    notify_on_run_failure(context)
    assert standin.calls() == [f"POST {SLACK}", f"POST {TEAMS}"]
    slack = json.dumps(standin.requests[0].json)
    assert "run failed: doomed_job" in slack and "warehouse went away" in slack
    assert f"http://dagster.nas.local:3000/runs/{result.run_id}" in slack
    teams = standin.requests[1].json["attachments"][0]["content"]
    assert teams["actions"][0]["url"] == f"http://dagster.nas.local:3000/runs/{result.run_id}"


# ------------------------------------------------------------------ issue 12: no swallowed failures


def _failure_message(result) -> str:
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return failure.event_specific_data.error.message


def test_metabase_url_without_a_key_fails_instead_of_skipping(env, standin):
    mp = env["monkeypatch"]
    mp.delenv("METABASE_API_KEY")
    standin.reset()
    try:
        result = _materialize([metabase_refresh], env)
    finally:
        mp.setenv("METABASE_API_KEY", KEY)
    assert not result.success
    assert "METABASE_URL is set but no credentials" in _failure_message(result)
    assert standin.calls() == []


def test_a_summary_that_missed_a_channel_fails_and_names_it(env, standin):
    standin.forced = {TEAMS: (404, {"error": {"code": "TriggerNotFound"}})}
    standin.reset()
    try:
        result = _materialize([summary_notification], env)
    finally:
        standin.forced = {}
    assert not result.success
    message = _failure_message(result)
    assert "summary not delivered to teams" in message and "HTTP 404" in message
    assert "delivered to slack" in message
    assert "SECRET" not in message and TEAMS not in message


def test_a_run_failure_alert_that_was_not_delivered_fails_the_tick(env, standin):
    _, context = _failed_run("doomed_again", "disk full")
    standin.server_errors = {SLACK: 10}
    standin.reset()
    try:
        with pytest.raises(Exception, match="not posted to slack"):
            notify_on_run_failure(context)
    finally:
        standin.server_errors = {}
    assert f"POST {TEAMS}" in standin.calls()  # the other channel still got it


def test_metabase_sync_is_awaited_before_cards_rerun(env, standin):
    with __import__("psycopg").connect(env["url"], autocommit=True) as conn:
        conn.execute("create table if not exists forecast.sync_probe (y int)")
    standin.sync_s = 1.0
    standin.reset()
    try:
        result = _materialize([metabase_refresh], env)
    finally:
        standin.sync_s = 0.3
    assert result.success
    assert "POST /api/database/2/sync_schema" in standin.calls()
    queries = standin.requests_to("/api/card/")
    assert queries and not [q for q in queries if q.during_sync]
    assert "forecast.sync_probe" in standin.synced
    assert _metadata(result, "activation__metabase_refresh")["sync_wait_s"] >= 0.8


# ------------------------------------------------------------------ issue 29: email


@contextlib.contextmanager
def _email_to(env, server, **overrides):
    """The SMTP_* variables pointing at `server` for one test; the module's other tests run without email."""
    mp = env["monkeypatch"]
    variables = server.variables(**overrides)
    for name, value in variables.items():
        mp.setenv(name, value)
    try:
        yield
    finally:
        for name in variables:
            mp.delenv(name, raising=False)


def test_the_summary_is_emailed_to_every_recipient_beside_the_webhooks(env, standin, smtp_server):
    standin.reset()
    with _email_to(env, smtp_server):
        result = _materialize([summary_notification], env)
    assert result.success
    assert _metadata(result, "activation__summary_notification")["channels"] == {
        "slack": "sent",
        "teams": "sent",
        "email": "sent",
    }
    assert standin.calls() == [f"POST {SLACK}", f"POST {TEAMS}"]
    (mail,) = smtp_server.received
    assert mail.tls and mail.login == USER
    assert mail.rcpt_tos == ["ops@example.test", "sales@example.test"] and mail.message["To"] == ", ".join(RECIPIENTS)
    assert "synoforecast: forecasts for 2026-Q3" in mail.subject
    for piece in (
        "As of: 2026-Q2",
        "dbt tests:",
        "passed",
        "Forecasts:",
        "svr_rm_overall / SVR-RM total",
        "sMAPE",
        "All C2",
        f"Run: http://dagster.nas.local:3000/runs/{result.run_id}",
    ):
        assert piece in mail.text, piece
    assert PASSWORD not in json.dumps([str(e) for e in result.all_events])


def test_a_failed_run_is_emailed_with_its_error_and_link(env, standin, smtp_server):
    with _email_to(env, smtp_server):
        result, context = _failed_run("doomed_by_mail", "warehouse went away")
        standin.reset()
        notify_on_run_failure(context)
    assert standin.calls() == [f"POST {SLACK}", f"POST {TEAMS}"]
    (mail,) = smtp_server.received
    assert mail.subject == "synoforecast run failed: doomed_by_mail"
    assert mail.rcpt_tos == ["ops@example.test", "sales@example.test"] and mail.tls
    assert "- step explode: RuntimeError: warehouse went away" in mail.text
    assert f"Run: http://dagster.nas.local:3000/runs/{result.run_id}" in mail.text


def test_a_refused_email_login_fails_the_tick_naming_email_and_the_webhooks_still_get_the_alert(
    env, standin, smtp_server
):
    with _email_to(env, smtp_server, SMTP_PASSWORD="wrong-pw-SECRET"):
        _, context = _failed_run("doomed_wrong_password", "disk full")
        standin.reset()
        with pytest.raises(Exception, match="not posted to email") as err:
            notify_on_run_failure(context)
    assert "authentication as 'forecast' refused" in str(err.value) and "535" in str(err.value)
    assert "wrong-pw-SECRET" not in str(err.value)
    assert standin.calls() == [f"POST {SLACK}", f"POST {TEAMS}"]
    assert smtp_server.received == []


def test_half_an_email_configuration_fails_the_summary_naming_what_is_missing(env, standin, smtp_server):
    standin.reset()
    with _email_to(env, smtp_server, SMTP_FROM=None, SMTP_TO=None):
        result = _materialize([summary_notification], env)
    assert not result.success
    message = _failure_message(result)
    assert "configuration is invalid: SMTP_HOST is set but SMTP_FROM and SMTP_TO are not" in message
    assert PASSWORD not in message
    assert smtp_server.received == [] and standin.calls() == []
