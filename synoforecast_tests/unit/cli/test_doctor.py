"""`synoforecast doctor` against a real PostgreSQL, real dbt and the HTTP stand-in."""

from __future__ import annotations

import json

import httpx
import pytest

from synoforecast.cli import doctor
from synoforecast.cli.doctor import Check, exit_code, render_table, run_checks
from synoforecast.settings import get_settings
from synoforecast_tests.support.http_standin import StandIn, fresh_standin
from synoforecast_tests.support.smtp_server import PASSWORD

KEY = "mb_doctor-secret-key"
SLACK = "/slack/services/T0/B0/doctorSECRET"


standin = fresh_standin(KEY)


@pytest.fixture
def client():
    with httpx.Client(timeout=2) as c:
        yield c


def test_everything_configured_and_working(project_env, standin, smtp_server, capsys):
    mp = project_env["monkeypatch"]
    mp.setenv("METABASE_URL", standin.url)
    mp.setenv("METABASE_API_KEY", KEY)
    mp.setenv("METABASE_CARD_IDS", "11")
    mp.setenv("SLACK_WEBHOOK_URL", standin.url + SLACK)
    for name, value in smtp_server.variables().items():
        mp.setenv(name, value)
    from synoforecast.cli.main import main

    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 0, out
    by_name = {line.split("  ")[0]: line for line in out.splitlines()}
    for name in (
        "warehouse",
        "dagster storage",
        "dbt",
        "inbox",
        "metabase health",
        "metabase credentials",
        "slack webhook",
        "teams webhook",
        "n8n webhook",
        "email",
    ):
        assert name in by_name, (name, out)
    assert " OK " in by_name["dbt"] and "dbt debug" in by_name["dbt"]
    assert " OK " in by_name["metabase credentials"] and " OK " in by_name["slack webhook"]
    assert "SKIPPED" in by_name["teams webhook"]
    assert " OK " in by_name["email"] and "STARTTLS" in by_name["email"]
    assert KEY not in out and "doctorSECRET" not in out and PASSWORD not in out
    assert smtp_server.received == []  # the email route was asked, nothing was sent
    # nothing was posted to the webhook, and Metabase saw only read-only probes
    assert standin.calls() == ["GET /api/health", "GET /api/user/current", f"GET {SLACK}"]


def test_required_failures_give_fixes_and_exit_1(project_env, tmp_path):
    mp = project_env["monkeypatch"]
    mp.setenv("SYNOFORECAST_WAREHOUSE_URL", "postgresql://nobody:pw-SECRET@127.0.0.1:1/none")
    mp.setenv("SYNOFORECAST_INBOX", str(tmp_path / "no-such-inbox"))
    get_settings.cache_clear()
    checks = run_checks()
    by = {c.name: c for c in checks}
    assert by["warehouse"].status == "fail" and "SYNOFORECAST_WAREHOUSE_URL" in by["warehouse"].fix
    assert by["dbt"].status == "skipped"
    assert by["inbox"].status == "fail" and "mkdir -p" in by["inbox"].fix
    assert by["metabase"].status == "skipped"
    assert exit_code(checks) == 1
    table = render_table(checks)
    assert "pw-SECRET" not in table and "failure(s)" in table


def test_metabase_problems(standin, client):
    env = {"METABASE_URL": standin.url, "METABASE_API_KEY": "wrong"}
    health, creds = doctor.check_metabase(env, client)
    assert health.status == "ok" and creds.status == "fail" and "METABASE_API_KEY" in creds.fix
    assert "wrong" not in creds.detail

    env = {"METABASE_URL": standin.url, "METABASE_USER": standin.username, "METABASE_PASSWORD": "nope-SECRET"}
    _, creds = doctor.check_metabase(env, client)
    assert creds.status == "fail" and "METABASE_PASSWORD" in creds.fix
    env["METABASE_PASSWORD"] = standin.password
    env["METABASE_DASHBOARD_IDS"] = "3"
    _, creds = doctor.check_metabase(env, client)
    assert creds.status == "ok" and creds.detail.startswith("session accepted")

    standin.initializing_for = 1
    standin.reset()
    (health, _) = doctor.check_metabase({"METABASE_URL": standin.url, "METABASE_API_KEY": KEY}, client)
    assert health.status == "warn" and "initializing" in health.detail

    with StandIn() as gone:
        dead = gone.url
    (down,) = doctor.check_metabase({"METABASE_URL": dead, "METABASE_API_KEY": KEY}, client)
    assert down.status == "fail" and "ConnectError" in down.detail

    (bad,) = doctor.check_metabase(
        {"METABASE_URL": standin.url, "METABASE_API_KEY": KEY, "METABASE_CARD_IDS": "x"}, client
    )
    assert bad.status == "fail" and "METABASE_CARD_IDS" in bad.detail
    (half,) = doctor.check_metabase({"METABASE_URL": standin.url}, client)
    assert half.status == "fail" and "no credentials" in half.detail


def test_webhook_probe_never_posts(standin, client):
    ok = doctor.check_webhook("slack", "SLACK_WEBHOOK_URL", {"SLACK_WEBHOOK_URL": standin.url + SLACK}, client)
    assert ok.status == "ok" and "405" in ok.detail and "doctorSECRET" not in ok.detail
    standin.server_errors = {SLACK: 1}
    down = doctor.check_webhook("slack", "SLACK_WEBHOOK_URL", {"SLACK_WEBHOOK_URL": standin.url + SLACK}, client)
    assert down.status == "fail" and "HTTP 500" in down.detail
    assert all(r.method == "GET" for r in standin.requests)
    bad = doctor.check_webhook("teams", "TEAMS_WEBHOOK_URL", {"TEAMS_WEBHOOK_URL": "hooks/x"}, client)
    assert bad.status == "fail"


@pytest.mark.parametrize(
    "status, body",
    [
        (404, "no_service"),
        (403, "invalid_token"),
        (410, "channel_is_archived"),
        (404, {"code": 404, "message": "The requested webhook is not registered."}),
    ],
)
def test_a_webhook_answering_4xx_is_a_failure(standin, client, status, body):
    standin.forced = {SLACK: (status, body)}
    env = {"SLACK_WEBHOOK_URL": standin.url + SLACK}
    check = doctor.check_webhook("slack", "SLACK_WEBHOOK_URL", env, client)
    assert check.status == "fail" and f"HTTP {status}" in check.detail and "SLACK_WEBHOOK_URL" in check.fix
    assert "doctorSECRET" not in check.detail


def test_a_get_that_proves_a_post_webhook_exists_is_ok(standin, client):
    n8n = doctor.check_webhook("n8n", "N8N_WEBHOOK_URL", {"N8N_WEBHOOK_URL": standin.url + "/n8n/webhook/x"}, client)
    assert n8n.status == "ok" and "404" in n8n.detail  # n8n: "Did you mean to make a POST request?"
    standin.forced = {SLACK: (400, "invalid_payload")}
    slack = doctor.check_webhook("slack", "SLACK_WEBHOOK_URL", {"SLACK_WEBHOOK_URL": standin.url + SLACK}, client)
    assert slack.status == "ok"


def test_render_and_exit_code():
    checks = [
        Check("a", "ok", "fine"),
        Check("b", "warn", "meh", "do x", required=False),
        Check("c", "skipped", "off", "optional", required=False),
    ]
    table = render_table(checks)
    assert table.splitlines()[0].split() == ["check", "status", "detail", "fix"]
    assert "do x" in table and "optional" not in table
    assert exit_code(checks) == 0
    assert exit_code(checks + [Check("d", "fail", "broken", "fix it")]) == 1
    assert json.dumps([c.__dict__ for c in checks])


def test_a_line_per_freshness_rule_on_a_fixed_clock():
    """doctor.freshness_lines: what lib/monitoring/freshness finds at a given clock, and where the breach was posted."""
    import datetime as dt

    from synoforecast.lib.monitoring import freshness
    from synoforecast.lib.monitoring.freshness import AlertState, Export, Facts

    utc = dt.UTC
    q1, q2 = dt.date(2026, 1, 1), dt.date(2026, 4, 1)
    export = Export("a" * 64, "/inbox/sales.xlsx", dt.datetime(2026, 8, 20, 18, tzinfo=utc), (q1, q2))
    facts = Facts(
        newest=export,
        published=export,
        published_as_of={"svr_rm_overall": frozenset({q1, q2})},
        cohorts=("svr_rm_overall",),
        first_quarter=dt.date(2024, 1, 1),
    )

    fine = doctor.freshness_lines(freshness.evaluate(facts, dt.datetime(2026, 8, 22, tzinfo=utc), 8, 10), {})
    assert [(c.name, c.status) for c in fine] == [("freshness: export", "ok"), ("freshness: quarter close", "ok")]
    assert exit_code(fine) == 0

    late = freshness.evaluate(facts, dt.datetime(2026, 10, 12, 6, tzinfo=utc), 8, 10)
    posted = {
        "quarter_close": AlertState(
            "quarter_close",
            late["quarter_close"].breach,
            dt.datetime(2026, 10, 11, tzinfo=utc),
            frozenset({"slack"}),
            dt.datetime(2026, 10, 11, 0, 5, tzinfo=utc),
            "teams: HTTP 500",
        )
    }
    export_line, quarter_line = doctor.freshness_lines(late, posted)
    assert export_line.status == "fail" and not export_line.required
    assert "no export for 52 days" in export_line.detail and "not posted yet" in export_line.detail
    assert "SYNOFORECAST_FRESHNESS_MAX_AGE_DAYS" in export_line.fix
    assert (
        quarter_line.status == "fail"
        and "2026-Q3 closed 11 days ago without a published forecast" in quarter_line.detail
    )
    assert "alert posted to slack on 2026-10-11 00:05 UTC; NOT delivered: teams: HTTP 500" in quarter_line.detail
    assert "SYNOFORECAST_QUARTER_CLOSE_GRACE_DAYS" in quarter_line.fix
    table = render_table([export_line, quarter_line])
    assert "freshness: quarter close" in table and "ask sales operations" in table
    assert exit_code([export_line, quarter_line]) == 1

    nothing = doctor.freshness_lines(
        freshness.evaluate(
            Facts(None, None, {}, ("svr_rm_overall",), q1), dt.datetime(2026, 10, 12, tzinfo=utc), 8, 10
        ),
        {},
    )
    assert [c.status for c in nothing] == ["warn", "warn"] and exit_code(nothing) == 0


def test_email_probe_sends_nothing_and_names_what_fails(smtp_server):
    ok = doctor.check_email(smtp_server.variables())
    assert ok.status == "ok" and "2 recipient(s) accepted (nothing sent)" in ok.detail
    assert smtp_server.received == [] and smtp_server.data_attempts == 0
    bad = doctor.check_email(smtp_server.variables(SMTP_PASSWORD="wrong-pw-SECRET"))
    assert bad.status == "fail" and "535" in bad.detail and "wrong-pw-SECRET" not in bad.detail + bad.fix
    unverified = doctor.check_email(smtp_server.variables(SMTP_CA_FILE=None))
    assert unverified.status == "fail" and "self-signed certificate" in unverified.detail
    half = doctor.check_email({"SMTP_HOST": "smtp.example.test", "SMTP_USERNAME": "forecast"})
    assert half.status == "fail" and "SMTP_FROM and SMTP_TO are not" in half.detail and not half.required
    off = doctor.check_email({})
    assert off.status == "skipped" and "SMTP_HOST unset" in off.detail
