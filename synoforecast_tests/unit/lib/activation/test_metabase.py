"""refresh_metabase against the local stand-in, over real loopback HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from synoforecast.lib.activation.metabase import MetabaseConfig, MetabaseError, RefreshReport, refresh_metabase
from synoforecast_tests.support.http_standin import StandIn, fresh_standin, metabase_config

KEY = "mb_SecretKey-1234567890"


standin = fresh_standin(KEY)


def cfg_for(s: StandIn, **kw) -> MetabaseConfig:
    return metabase_config(s, KEY, **({"card_ids": (11, 12), "health_attempts": 5, "retries": 3} | kw))


# ------------------------------------------------------------------ configuration


def test_from_env_parses_everything():
    cfg = MetabaseConfig.from_variables(
        {
            "METABASE_URL": "http://metabase:3000/",
            "METABASE_API_KEY": KEY,
            "METABASE_CARD_IDS": "1,2, 3,,",
            "METABASE_DATABASE_ID": " 4 ",
        }
    )
    assert cfg.url == "http://metabase:3000"
    assert cfg.api_key == KEY
    assert cfg.card_ids == [1, 2, 3]
    assert cfg.database_id == 4
    assert cfg.configured


def test_from_env_empty_is_unconfigured():
    cfg = MetabaseConfig.from_variables({"METABASE_URL": "", "METABASE_CARD_IDS": " "})
    assert cfg == MetabaseConfig()
    assert not cfg.configured


@pytest.mark.parametrize(
    "var, value", [("METABASE_CARD_IDS", "1,two,3"), ("METABASE_DATABASE_ID", "db1"), ("METABASE_CARD_IDS", "-1")]
)
def test_from_env_bad_ints_name_the_variable(var, value):
    with pytest.raises(MetabaseError, match=var):
        MetabaseConfig.from_variables({"METABASE_URL": "http://x", "METABASE_API_KEY": KEY, var: value})


def test_repr_hides_api_key():
    cfg = MetabaseConfig(url="http://user:pw@mb:3000", api_key=KEY, card_ids=(1,))
    text = repr(cfg) + str(cfg)
    assert KEY not in text
    assert "pw@" not in text
    assert "***" in text and "card_ids=[1]" in text


def test_unconfigured_refresh_raises_clear_error():
    with pytest.raises(MetabaseError, match="METABASE_URL"):
        refresh_metabase(MetabaseConfig())


# ------------------------------------------------------------------ happy paths


def test_full_refresh_sequence(standin):
    report = refresh_metabase(cfg_for(standin))

    assert standin.calls() == [
        "GET /api/health",
        "POST /api/database/2/sync_schema",
        "GET /api/database/2/metadata",
        "POST /api/card/11/query",
        "POST /api/card/12/query",
    ]
    for req in standin.requests:
        assert req.headers.get("x-api-key") == KEY
    for req in standin.requests_to("/api/card/"):
        assert req.json == {"ignore_cache": True}
        assert req.headers["content-type"].startswith("application/json")

    assert isinstance(report, RefreshReport)
    assert report.health == "ok"
    assert report.schema_synced is True
    assert report.cards == {11: "ok", 12: "ok"}
    assert report.requests == 5
    assert report.elapsed_s >= 0
    meta = report.to_metadata()
    assert json.loads(json.dumps(meta)) == meta
    assert meta["cards"] == {"11": "ok", "12": "ok"}
    assert meta["requests"] == 5


FORECAST = {"forecast.forecasts": {"cohort", "yhat", "yhat_lo_80"}}


def test_cards_rerun_only_after_the_background_sync_finished(standin):
    """sync_schema answers at once; the cards must wait until Metabase knows the new schema."""
    standin.sync_s = 0.5
    standin.schema = {"forecast.forecasts": ["cohort", "yhat", "yhat_lo_80"]}
    report = refresh_metabase(cfg_for(standin), expect_tables=FORECAST)
    queries = standin.requests_to("/api/card/")
    assert queries and not [q for q in queries if q.during_sync]
    assert standin.syncs_finished == 1
    assert report.sync_wait_s >= 0.4
    assert standin.calls().count("GET /api/database/2/metadata") >= 2


def test_a_sync_that_never_shows_the_new_column_fails_and_names_it(standin):
    standin.sync_s = 0.0
    standin.schema = {"forecast.forecasts": ["cohort", "yhat"]}
    with pytest.raises(MetabaseError, match="not finished after 0.3 s: still unknown forecast.forecasts.yhat_lo_80"):
        refresh_metabase(cfg_for(standin, sync_timeout_s=0.3), expect_tables=FORECAST)
    assert standin.requests_to("/api/card/") == []


@pytest.mark.parametrize(
    "values, problem",
    [
        ({"METABASE_URL": "http://mb:3000"}, "METABASE_URL is set but no credentials"),
        ({"METABASE_API_KEY": KEY}, "METABASE_URL is not"),
        ({"METABASE_CARD_IDS": "1,2"}, "METABASE_URL is not"),
        ({"METABASE_URL": "http://mb:3000", "METABASE_USER": "a@b.c"}, "no credentials"),
    ],
)
def test_half_a_configuration_is_an_error_not_unconfigured(values, problem):
    with pytest.raises(MetabaseError, match=problem) as err:
        MetabaseConfig.from_variables(values)
    assert KEY not in str(err.value)


def test_sync_schema_skipped_when_disabled_or_no_database(standin):
    report = refresh_metabase(cfg_for(standin, card_ids=(5,)), sync_schema=False)
    assert report.schema_synced is False
    standin.reset()
    report = refresh_metabase(cfg_for(standin, card_ids=(5,), database_id=None))
    assert report.schema_synced is False
    assert standin.calls() == ["GET /api/health", "POST /api/card/5/query"]


def test_health_initializing_then_ok(standin):
    standin.initializing_for = 2
    report = refresh_metabase(cfg_for(standin, card_ids=()))
    assert report.health == "ok"
    assert standin.calls() == ["GET /api/health"] * 3 + [
        "POST /api/database/2/sync_schema",
        "GET /api/database/2/metadata",
    ]
    assert report.requests == 5


def test_health_still_initializing_gives_up(standin):
    standin.initializing_for = 100
    with pytest.raises(MetabaseError) as err:
        refresh_metabase(cfg_for(standin, health_attempts=3))
    assert str(err.value) == f"Metabase at {standin.url} still initializing after 3 attempts"
    assert standin.calls() == ["GET /api/health"] * 3


def test_server_errors_are_retried(standin):
    standin.server_errors = {"/api/card/11/query": 2}
    report = refresh_metabase(cfg_for(standin))
    assert report.cards == {11: "ok", 12: "ok"}
    assert standin.calls().count("POST /api/card/11/query") == 3
    assert report.requests == 7


def test_server_errors_exhaust_retries(standin):
    standin.server_errors = {"/api/database/2/sync_schema": 10}
    with pytest.raises(MetabaseError, match=r"sync_schema.*3 attempt.*HTTP 500"):
        refresh_metabase(cfg_for(standin, retries=2))
    assert standin.calls().count("POST /api/database/2/sync_schema") == 3


def test_timeouts_are_retried_then_reported(standin):
    standin.hang_paths = {"/api/card/11/query"}
    standin.hang_s = 1.0
    with pytest.raises(MetabaseError) as err:
        refresh_metabase(cfg_for(standin, timeout_s=0.2, retries=1))
    assert "Timeout" in str(err.value)
    assert standin.calls().count("POST /api/card/11/query") == 2
    assert KEY not in str(err.value)


def test_unreachable_metabase_health_fails_fast():
    with StandIn() as s:
        url = s.url  # port is free again once stopped
    with pytest.raises(MetabaseError, match="not healthy after 2 attempts"):
        refresh_metabase(MetabaseConfig(url=url, api_key=KEY, health_attempts=2, health_wait_s=0.01, timeout_s=1))


# ------------------------------------------------------------------ failures


def test_card_202_with_error_is_a_failure(standin):
    standin.fail_card_ids = {12}
    with pytest.raises(MetabaseError) as err:
        refresh_metabase(cfg_for(standin, card_ids=(11, 12, 13)))
    msg = str(err.value)
    assert "card 12" in msg
    assert 'relation "marts.fct_forecast" does not exist' in msg
    assert "card 11" not in msg
    assert set(err.value.card_errors) == {12}
    # every card is still attempted, and a 202 failure is not retried
    assert standin.calls()[-3:] == ["POST /api/card/11/query", "POST /api/card/12/query", "POST /api/card/13/query"]


def test_missing_card_is_named(standin):
    standin.missing_card_ids = {99}
    with pytest.raises(MetabaseError, match=r"card 99: card not found \(404\)"):
        refresh_metabase(cfg_for(standin, card_ids=(99,)))
    assert standin.calls().count("POST /api/card/99/query") == 1


def test_missing_database_is_named(standin):
    standin.missing_database_ids = {2}
    with pytest.raises(MetabaseError, match="database 2 not found"):
        refresh_metabase(cfg_for(standin))


def test_wrong_api_key_is_not_retried(standin):
    bad = "mb_WrongKey-abcdef"
    with pytest.raises(MetabaseError) as err:
        refresh_metabase(cfg_for(standin, api_key=bad))
    msg = str(err.value)
    assert msg.startswith("Metabase rejected the API key (401)")
    assert "METABASE_API_KEY" in msg
    assert bad not in msg and bad not in repr(err.value)
    # health needs no auth; the first authenticated call fails once and is not retried
    assert standin.calls() == ["GET /api/health", "POST /api/database/2/sync_schema"]


def test_api_key_never_in_errors_even_if_echoed(standin):
    standin.card_error = f"permission denied for key {KEY}"
    standin.fail_card_ids = {11}
    with pytest.raises(MetabaseError) as err:
        refresh_metabase(cfg_for(standin))
    assert KEY not in str(err.value)
    assert KEY not in str(err.value.card_errors)
    assert "permission denied for key ***" in str(err.value)


def test_given_client_is_used_and_left_open(standin):
    with httpx.Client() as client:
        refresh_metabase(cfg_for(standin, card_ids=(1,)), client=client)
        assert not client.is_closed
        assert client.get(standin.url + "/api/health").status_code == 200


# ------------------------------------------------------------------ stand-in API fidelity


def test_standin_session_and_cache_endpoints(standin):
    with httpx.Client(base_url=standin.url) as c:
        assert c.get("/api/user/current").status_code == 401
        assert c.get("/api/user/current").text == "Unauthenticated"
        bad = c.post("/api/session", json={"username": standin.username, "password": "no"})
        assert bad.status_code == 401
        token = c.post("/api/session", json={"username": standin.username, "password": standin.password}).json()["id"]
        headers = {"X-Metabase-Session": token}
        assert c.get("/api/user/current", headers=headers).status_code == 200
        assert c.post("/api/persist/card/3/refresh", headers=headers).status_code == 204
        inv = c.post("/api/cache/invalidate", params={"question": 3}, headers=headers)
        assert inv.status_code == 402
        assert "paid feature" in inv.json()["message"]
        assert c.post("/api/nope", headers=headers).status_code == 404
    assert standin.requests_to("/api/cache/")[0].query == "question=3"


# ------------------------------------------------------------------ issue 5: auth, dashboards, models, cache

PASSWORD = "S3cret-Pa55word"


def test_from_env_reads_session_dashboards_models_and_cache_switch():
    cfg = MetabaseConfig.from_variables(
        {
            "METABASE_URL": "http://mb:3000",
            "METABASE_USER": "a@b.c",
            "METABASE_PASSWORD": PASSWORD,
            "METABASE_DASHBOARD_IDS": "7, 8",
            "METABASE_MODEL_IDS": "21",
            "METABASE_CACHE_INVALIDATE": "false",
        }
    )
    assert cfg.configured and cfg.auth_method == "session"
    assert cfg.dashboard_ids == [7, 8] and cfg.model_ids == [21]
    assert cfg.cache_invalidate is False
    assert PASSWORD not in repr(cfg) and "password='***'" in repr(cfg)
    assert MetabaseConfig.from_variables({"METABASE_URL": "http://x", "METABASE_API_KEY": KEY}).cache_invalidate


def test_session_login_then_session_header(standin):
    standin.password = PASSWORD
    cfg = cfg_for(standin, api_key=None, username=standin.username, password=PASSWORD, card_ids=(11,))
    report = refresh_metabase(cfg)
    assert report.auth == "session"
    assert standin.calls() == [
        "GET /api/health",
        "POST /api/session",
        "POST /api/database/2/sync_schema",
        "GET /api/database/2/metadata",
        "POST /api/card/11/query",
    ]
    login = standin.requests[1]
    assert login.json == {"username": standin.username, "password": PASSWORD}
    token = login and standin.requests[2].headers["x-metabase-session"]
    assert token in standin.sessions
    assert all("x-api-key" not in r.headers for r in standin.requests)


def test_wrong_password_fails_clearly_without_secret(standin):
    cfg = cfg_for(standin, api_key=None, username=standin.username, password=PASSWORD)
    with pytest.raises(MetabaseError) as err:
        refresh_metabase(cfg)
    assert "METABASE_USER and METABASE_PASSWORD" in str(err.value)
    assert PASSWORD not in str(err.value)
    assert standin.calls() == ["GET /api/health", "POST /api/session"]  # 401: no retry


def test_no_credentials_is_401_from_the_standin(standin):
    r = httpx.post(standin.url + "/api/card/1/query", json={"ignore_cache": True})
    assert (r.status_code, r.text) == (401, "Unauthenticated")


def test_dashboard_cards_are_queried_once_each(standin):
    standin.dashboards = {7: [12, 30, 31]}
    report = refresh_metabase(cfg_for(standin, dashboard_ids=(7,), database_id=None))
    assert report.dashboards == {7: [12, 30, 31]}
    assert standin.calls() == [
        "GET /api/health",
        "GET /api/dashboard/7",
        "POST /api/card/11/query",
        "POST /api/card/12/query",
        "POST /api/card/30/query",
        "POST /api/card/31/query",
    ]
    assert report.to_metadata()["cards_refreshed"] == 4


def test_missing_dashboard_is_named(standin):
    with pytest.raises(MetabaseError, match="dashboard 9 not found.*METABASE_DASHBOARD_IDS"):
        refresh_metabase(cfg_for(standin, dashboard_ids=(9,)))


def test_persisted_models_are_refreshed(standin):
    report = refresh_metabase(cfg_for(standin, model_ids=(21, 22), card_ids=(), database_id=None))
    assert report.models == {21: "ok", 22: "ok"}
    assert standin.calls()[1:] == ["POST /api/persist/card/21/refresh", "POST /api/persist/card/22/refresh"]
    standin.reset()
    standin.missing_card_ids = {22}
    with pytest.raises(MetabaseError, match="card 22: persisted model refresh: model not found"):
        refresh_metabase(cfg_for(standin, model_ids=(21, 22), card_ids=(11,), database_id=None))
    assert "POST /api/card/11/query" in standin.calls()  # the rest still ran


def test_cache_invalidation_refused_by_open_source_is_not_an_error(standin):
    report = refresh_metabase(cfg_for(standin, cache_invalidate=True))
    assert report.cache.startswith("not available (paid feature")
    assert report.cards == {11: "ok", 12: "ok"}
    (inv,) = standin.requests_to("/api/cache/invalidate")
    assert inv.query == "include=overrides&database=2&question=11&question=12"
    calls = standin.calls()
    assert calls.index("POST /api/cache/invalidate") < calls.index("POST /api/card/11/query")


def test_cache_invalidated_on_a_paid_instance(standin):
    standin.premium_cache = True
    assert refresh_metabase(cfg_for(standin, cache_invalidate=True)).cache == "invalidated"


def test_cache_invalidation_server_error_fails(standin):
    standin.forced = {"/api/cache/invalidate": (400, {"message": "bad params"})}
    with pytest.raises(MetabaseError, match="cache invalidation failed: HTTP 400"):
        refresh_metabase(cfg_for(standin, cache_invalidate=True))


def test_full_sequence_with_everything_configured(standin):
    standin.dashboards = {7: [11, 40]}
    standin.initializing_for = 1
    cfg = cfg_for(standin, dashboard_ids=(7,), model_ids=(21,), cache_invalidate=True)
    report = refresh_metabase(cfg)
    assert standin.calls() == [
        "GET /api/health",
        "GET /api/health",
        "POST /api/database/2/sync_schema",
        "GET /api/database/2/metadata",
        "GET /api/dashboard/7",
        "POST /api/persist/card/21/refresh",
        "POST /api/cache/invalidate",
        "POST /api/card/11/query",
        "POST /api/card/12/query",
        "POST /api/card/40/query",
    ]
    assert all(r.headers.get("x-api-key") == KEY for r in standin.requests if r.path != "/api/health")
    assert report.to_metadata()["cards"] == {"11": "ok", "12": "ok", "40": "ok"}
