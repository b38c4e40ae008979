"""Summary rendering and webhook delivery against the local stand-in."""

from __future__ import annotations

import json
import math

import pytest

from synoforecast.lib.activation.notify import (
    NotifyConfig,
    NotifyError,
    render_text,
    request_refresh_via_n8n,
    send_alert,
    send_summary,
    slack_payload,
    teams_payload,
)
from synoforecast_tests.support.http_standin import StandIn, fresh_standin

SLACK_PATH = "/slack/services/T000/B000/XXXXsecretTOKEN"
TEAMS_PATH = "/teams/workflows/abc123/triggers/manual/paths/invoke"
N8N_PATH = "/n8n/webhook/5f0c-secret"

SUMMARY = {
    "title": "synoforecast: forecasts for 2026-Q4",
    "as_of": "2026-Q3",
    "snapshot": {"file": "x.xlsx", "sha256": "ab" * 32, "rows_loaded": 12345},
    "dbt": {"passed": 40, "failed": 0},
    "forecasts": [
        {
            "cohort": "svr_rm_overall",
            "series_id": "total",
            "metric": "units",
            "target": "2026-Q4",
            "yhat": 1234.5,
            "last_actual": 1100.0,
            "change_pct": 12.2,
            "smape": 8.1,
        }
    ],
    "c2": {"All C2": {"subscribers": 40, "adoption_rate": 0.41}},
    "run_url": "http://dagster:3000/runs/abc-123",
}


standin = fresh_standin()


def cfg_for(s: StandIn, **kw) -> NotifyConfig:
    base = dict(
        slack_webhook_url=s.url + SLACK_PATH,
        teams_webhook_url=s.url + TEAMS_PATH,
        n8n_webhook_url=s.url + N8N_PATH,
        timeout_s=2.0,
        retries=2,
        backoff_s=0.01,
    )
    base.update(kw)
    return NotifyConfig(**base)


# ------------------------------------------------------------------ configuration


def test_channels():
    cfg = NotifyConfig(
        slack_webhook_url="https://hooks.slack.com/services/T/B/X", n8n_webhook_url="https://n8n.example/webhook/1"
    )
    assert cfg.channels() == ["slack", "n8n"]


@pytest.mark.parametrize("url", ["hooks.slack.com/services/T/B/SECRET", "https://", "ftp://x/SECRET"])
def test_a_webhook_url_that_cannot_work_is_an_error_not_unconfigured(url):
    with pytest.raises(NotifyError, match="SLACK_WEBHOOK_URL is set but is not an http") as err:
        NotifyConfig(slack_webhook_url=url)
    assert "SECRET" not in str(err.value)


def test_not_configured_sends_nothing():
    cfg = NotifyConfig()
    assert cfg.channels() == []
    assert send_summary(SUMMARY, cfg) == {}


def test_repr_hides_webhook_urls():
    cfg = NotifyConfig(slack_webhook_url="https://hooks.slack.com/services/T/B/SECRET")
    text = repr(cfg) + str(cfg)
    assert "SECRET" not in text and "hooks.slack.com" not in text
    assert "slack_webhook_url='<set>'" in text and "teams_webhook_url=None" in text


# ------------------------------------------------------------------ rendering


def test_render_text_is_readable():
    text = render_text(SUMMARY)
    assert text.splitlines()[0] == "synoforecast: forecasts for 2026-Q4"
    for piece in (
        "2026-Q3",
        "x.xlsx",
        "12,345 rows",
        "40 passed, 0 failed",
        "svr_rm_overall",
        "1,234.5",
        "+12.2%",
        "sMAPE 8.1%",
        "All C2",
        "adoption 41.0%",
        "http://dagster:3000/runs/abc-123",
    ):
        assert piece in text, piece


@pytest.mark.parametrize(
    "summary",
    [
        {},
        {"title": None, "forecasts": None, "c2": None, "snapshot": "weird"},
        {"forecasts": [{}, {"yhat": float("nan"), "change_pct": None}, "not-a-dict"]},
        {"c2": {"x": 3, "y": {"subscribers": None, "other_stat": 1.25}}},
    ],
)
def test_rendering_is_robust(summary):
    assert render_text(summary)
    assert slack_payload(summary)["text"]
    assert teams_payload(summary)["attachments"][0]["content"]["body"]


def test_top_customer_total_shows_its_last_actual():
    """The top-customer `total` is a derived series: its last actual comes from the same grouping
    as the forecast (``actuals_at``), so the summary no longer says "last n/a" for it."""
    import datetime as dt

    import polars as pl

    from synoforecast.lib.forecasting.cohorts import COHORTS_BY_NAME, TOTAL, actuals_at

    q2, q3 = dt.date(2026, 4, 1), dt.date(2026, 7, 1)
    history = pl.DataFrame(
        [
            ("C1", q2, 10.0, 1000.0, True),
            ("C1", q3, 12.0, 1200.0, True),
            ("C2", q2, 3.0, 300.5, False),
            ("C2", q3, 4.0, 400.25, False),
        ],
        schema=["series_id", "quarter_start", "units", "revenue", "is_top_customer"],
        orient="row",
    )
    last = actuals_at(COHORTS_BY_NAME["svr_rm_top_customers"], history, q3)
    summary = {
        "forecasts": [
            {
                "cohort": "svr_rm_top_customers",
                "series_id": TOTAL,
                "metric": metric,
                "target": "2026-Q4",
                "yhat": yhat,
                "last_actual": last[(TOTAL, metric)],
            }
            for metric, yhat in (("units", 17.0), ("revenue", 1700.0))
        ]
    }
    text = render_text(summary)
    assert "svr_rm_top_customers / total · units → 2026-Q4: 17.0 (last 16.0)" in text
    assert "svr_rm_top_customers / total · revenue → 2026-Q4: 1,700.0 (last 1,600.2)" in text
    assert "n/a" not in text
    assert "last 16.0" in json.dumps(slack_payload(summary)) and "last 16.0" in json.dumps(teams_payload(summary))


def test_long_forecast_lists_are_capped():
    many = {"forecasts": [dict(SUMMARY["forecasts"][0], series_id=f"s{i}") for i in range(500)]}
    assert "and 460 more" in render_text(many)
    payload = slack_payload(many)
    assert len(payload["blocks"]) <= 50
    for block in payload["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    assert len(json.dumps(teams_payload(many))) < 28_000


def test_slack_payload_shape():
    p = slack_payload(SUMMARY)
    assert set(p) == {"text", "blocks"}
    assert p["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": SUMMARY["title"], "emoji": True}}
    sections = [b for b in p["blocks"] if b["type"] == "section"]
    assert sections and all(b["text"]["type"] == "mrkdwn" for b in sections)
    assert any("`svr_rm_overall / total · units`" in b["text"]["text"] for b in sections)
    assert p["blocks"][-1]["elements"][0]["text"] == "<http://dagster:3000/runs/abc-123|Open the run in Dagster>"


def test_slack_escapes_control_characters():
    p = slack_payload({"title": "t", "c2": {"<A & B>": 1}})
    assert "&lt;A &amp; B&gt;" in json.dumps(p)


def test_teams_payload_shape():
    p = teams_payload(SUMMARY)
    assert p["type"] == "message"
    (att,) = p["attachments"]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0]["text"] == SUMMARY["title"]
    types = {b["type"] for b in card["body"]}
    assert types <= {"TextBlock", "FactSet"}
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the run", "url": SUMMARY["run_url"]}]


# ------------------------------------------------------------------ delivery


def test_send_to_all_channels(standin):
    result = send_summary(SUMMARY, cfg_for(standin))
    assert result == {"slack": "sent", "teams": "sent", "n8n": "sent"}
    assert standin.calls() == [f"POST {SLACK_PATH}", f"POST {TEAMS_PATH}", f"POST {N8N_PATH}"]
    slack, teams, n8n = standin.requests
    assert slack.json == json.loads(json.dumps(slack_payload(SUMMARY)))
    assert teams.json["attachments"][0]["content"]["type"] == "AdaptiveCard"
    assert n8n.json == SUMMARY
    for req in standin.requests:
        assert req.headers["content-type"].startswith("application/json")


def test_n8n_gets_strict_json_even_with_nan(standin):
    summary = dict(SUMMARY, forecasts=[dict(SUMMARY["forecasts"][0], smape=math.nan)])
    result = send_summary(summary, cfg_for(standin, slack_webhook_url=None, teams_webhook_url=None))
    assert result == {"n8n": "sent"}
    assert standin.requests[0].json["forecasts"][0]["smape"] is None
    assert b"NaN" not in standin.requests[0].body


def test_server_errors_are_retried(standin):
    standin.server_errors = {TEAMS_PATH: 2}
    result = send_summary(SUMMARY, cfg_for(standin))
    assert result == {"slack": "sent", "teams": "sent", "n8n": "sent"}
    assert standin.calls().count(f"POST {TEAMS_PATH}") == 3


def test_failing_webhook_reports_without_url(standin):
    standin.server_errors = {SLACK_PATH: 10}
    standin.forced = {N8N_PATH: (404, {"code": 404, "message": f"webhook {N8N_PATH} not registered"})}
    cfg = cfg_for(standin)
    result = send_summary(SUMMARY, cfg)
    assert result["teams"] == "sent"
    assert result["slack"].startswith("failed: HTTP 500")
    assert "after 3 attempt" in result["slack"]
    assert result["n8n"].startswith("failed: HTTP 404")
    assert standin.calls().count(f"POST {N8N_PATH}") == 1  # 4xx: no retry
    text = json.dumps(result)
    for secret in (standin.url, "XXXXsecretTOKEN", "5f0c-secret", SLACK_PATH, N8N_PATH):
        assert secret not in text


def test_timeout_and_unreachable_are_failures_without_url(standin):
    standin.hang_paths = {SLACK_PATH}
    standin.hang_s = 1.0
    with StandIn() as gone:
        dead = gone.url + N8N_PATH
    cfg = cfg_for(standin, teams_webhook_url=None, n8n_webhook_url=dead, timeout_s=0.2, retries=1)
    result = send_summary(SUMMARY, cfg)
    assert result["slack"].startswith("failed: ReadTimeout")
    assert result["n8n"].startswith("failed: ConnectError")
    # the stand-in received the post before it hung: a second post would show the message twice
    assert standin.calls().count(f"POST {SLACK_PATH}") == 1
    assert "secret" not in json.dumps(result) and "127.0.0.1" not in json.dumps(result)


def test_slack_rejects_empty_payload(standin):
    import httpx

    r = httpx.post(standin.url + SLACK_PATH, json={"username": "x"})
    assert (r.status_code, r.text) == (400, "invalid_payload")
    r = httpx.post(standin.url + TEAMS_PATH, json=teams_payload(SUMMARY))
    assert r.status_code == 202
    r = httpx.post(standin.url + N8N_PATH, json={})
    assert r.json() == {"message": "Workflow was started"}


def test_notify_error_is_runtime_error():
    assert issubclass(NotifyError, RuntimeError)


# ------------------------------------------------------------------ issue 5: alerts and the n8n route


def test_alert_reaches_every_channel_with_details_and_link(standin):
    result = send_alert(
        "synoforecast run failed: ingest_job",
        ["step forecast/x failed: boom"],
        cfg_for(standin),
        event="run_failure",
        run_url="http://dagster:3000/runs/r1",
    )
    assert result == {"slack": "sent", "teams": "sent", "n8n": "sent"}
    slack, teams, n8n = standin.requests
    assert "step forecast/x failed: boom" in json.dumps(slack.json)
    assert "<http://dagster:3000/runs/r1|Open the run in Dagster>" in json.dumps(slack.json)
    card = teams.json["attachments"][0]["content"]
    assert any(b.get("text") == "step forecast/x failed: boom" for b in card["body"])
    assert card["actions"][0]["url"] == "http://dagster:3000/runs/r1"
    assert n8n.json["event"] == "run_failure" and n8n.json["details"] == ["step forecast/x failed: boom"]
    assert "- step forecast/x failed: boom" in render_text(n8n.json)


def test_n8n_refresh_route(standin):
    request_refresh_via_n8n({"partitions": ["2026-04-01"]}, cfg_for(standin))
    (req,) = standin.requests
    assert req.path == N8N_PATH and req.json == {"event": "metabase_refresh", "partitions": ["2026-04-01"]}
    standin.forced = {N8N_PATH: (404, {"message": f"webhook {N8N_PATH} is not registered"})}
    with pytest.raises(NotifyError) as err:
        request_refresh_via_n8n({}, cfg_for(standin))
    assert "HTTP 404" in str(err.value) and "5f0c-secret" not in str(err.value)
    with pytest.raises(NotifyError, match="N8N_WEBHOOK_URL"):
        request_refresh_via_n8n({}, NotifyConfig())


RESTATED = {
    **SUMMARY,
    "restated": {
        "threshold": 0.01,
        "more": 2,
        "rows": [
            {
                "sheet": "SVR-RM",
                "quarter": "2025-Q4",
                "metric": "revenue",
                "before": 1_000_000.0,
                "after": 930_000.0,
                "change": -70_000.0,
                "share": -0.07,
            },
            {
                "sheet": "C2",
                "quarter": "2025-Q2",
                "metric": "seats",
                "before": 400,
                "after": 412,
                "change": 12,
                "share": 0.03,
            },
        ],
    },
}


def test_the_summary_lists_material_restatements_largest_first_in_every_channel():
    text = render_text(RESTATED)
    block = text.split("Restated published quarters (by more than 1.0%, largest first):\n")[1].split("\n\n")[0]
    assert block.splitlines() == [
        "- SVR-RM 2025-Q4 revenue: 1,000,000.00 → 930,000.00 (-7.0%)",
        "- C2 2025-Q2 seats: 400 → 412 (+3.0%)",
        "- … and 2 more (ops.restatements)",
    ]
    assert "Restated published quarters" not in render_text(SUMMARY)
    slack = json.dumps(slack_payload(RESTATED), ensure_ascii=False)
    assert "SVR-RM 2025-Q4 revenue: 1,000,000.00 → 930,000.00 (-7.0%)" in slack
    teams = json.dumps(teams_payload(RESTATED), ensure_ascii=False)
    assert "Restated published quarters" in teams and "C2 2025-Q2 seats: 400 → 412 (+3.0%)" in teams


def test_the_summary_tells_the_narratives_by_name_in_every_channel():
    from synoforecast.lib.activation.notify import render_text, slack_payload, teams_payload

    story = "SVR-RM rack-mount servers: revenue for 2026-Q4 is forecast at $25.1M (80% range $23.0M–$27.4M)."
    summary = {
        "title": "synoforecast: forecasts for 2026-Q4",
        "forecasts": [
            {
                "cohort": "svr_rm_overall",
                "series_id": "total",
                "series_name": "SVR-RM total",
                "metric": "revenue",
                "target": "2026-Q4",
                "yhat": 25_100_000.0,
            }
        ],
        "narratives": [{"cohort": "svr_rm_overall", "metric": "revenue", "text": story}],
    }
    text = render_text(summary)
    assert "svr_rm_overall / SVR-RM total · revenue → 2026-Q4" in text
    assert text.rstrip().endswith(f"In words:\n- {story}")  # last: a cut at Slack's limit spares the figures
    assert any(story in b["text"]["text"] for b in slack_payload(summary)["blocks"] if b["type"] == "section")
    assert any(b.get("text") == story for b in teams_payload(summary)["attachments"][0]["content"]["body"])
