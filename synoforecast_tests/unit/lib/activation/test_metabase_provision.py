"""provision_metabase against the local stand-in, over real loopback HTTP: objects found again
by their keys, no write when nothing changed, failures naming the object, analysts' cards
left alone, and the refresh targeting exactly the provisioned cards."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from synoforecast.lib.activation.metabase import MetabaseConfig, MetabaseError, refresh_metabase
from synoforecast.lib.activation.metabase_provision import (
    DASHBOARD,
    QUESTIONS,
    differs,
    key_of,
    provision_metabase,
    provisioned_card_ids,
)
from synoforecast_tests.support.http_standin import StandIn, fresh_standin, metabase_config

KEY = "mb_SecretKey-1234567890"
WRITES = ("POST", "PUT", "DELETE")


standin = fresh_standin(KEY)


def cfg_for(s: StandIn, **kw) -> MetabaseConfig:
    return metabase_config(s, KEY, **kw)


def writes(s: StandIn) -> list[str]:
    return [c for c in s.calls() if c.split()[0] in WRITES]


def test_first_run_creates_the_collection_the_questions_and_the_dashboard(standin):
    report = provision_metabase(cfg_for(standin))
    assert report.objects == {"collection": "created", **{q.key: "created" for q in QUESTIONS}, "dashboard": "created"}
    (coll,) = standin.collections.values()
    assert coll["name"] == "synoforecast" and key_of(coll["description"]) == "collection"
    assert report.collection_id == coll["id"]
    assert sorted(report.card_ids.values()) == sorted(standin.cards)
    for q in QUESTIONS:
        card = standin.cards[report.card_ids[q.key]]
        assert key_of(card["description"]) == q.key and card["collection_id"] == coll["id"]
        query = card["dataset_query"]
        assert query["type"] == "native" and query["database"] == 2
        assert "published." in query["native"]["query"]
        assert set(query["native"]["template-tags"]) == {"cohort", "metric"}
    dash = standin.dashboards_store[report.dashboard_id]
    assert dash["collection_id"] == coll["id"] and not dash["archived"]
    assert [p["slug"] for p in dash["parameters"]] == ["cohort", "metric"]
    assert sorted(dc["card_id"] for dc in dash["dashcards"]) == sorted(report.card_ids.values())
    for dc in dash["dashcards"]:  # every filter wired to the question's template tag
        assert {m["parameter_id"] for m in dc["parameter_mappings"]} == {"cohort", "metric"}
        assert all(m["target"][1][0] == "template-tag" for m in dc["parameter_mappings"])
    # the dashcards were created with negative ids and given real ones by the server
    assert all(dc["id"] > 0 for dc in dash["dashcards"])
    put = [r for r in standin.requests if r.method == "PUT" and r.path.startswith("/api/dashboard/")]
    assert all(dc["id"] < 0 for dc in put[0].json["dashcards"])
    assert report.to_metadata()["changed"] == 6


def test_second_run_writes_nothing(standin):
    first = provision_metabase(cfg_for(standin))
    standin.reset()
    second = provision_metabase(cfg_for(standin))
    assert writes(standin) == []
    assert "GET /api/card/" not in standin.calls()  # the archived ones are looked up only when one is missing
    assert set(second.objects.values()) == {"unchanged"}
    assert second.card_ids == first.card_ids and second.dashboard_id == first.dashboard_id
    assert len(standin.cards) == len(QUESTIONS) and len(standin.dashboards_store) == 1


def test_changed_question_updates_only_that_card_in_place(standin):
    first = provision_metabase(cfg_for(standin))
    changed = [
        dataclasses.replace(q, sql=q.sql.replace("order by", "  and true\n order by")) if q.key == "narratives" else q
        for q in QUESTIONS
    ]
    standin.reset()
    report = provision_metabase(cfg_for(standin), questions=changed)
    narratives = first.card_ids["narratives"]
    assert writes(standin) == [f"PUT /api/card/{narratives}"]
    assert report.objects["narratives"] == "updated"
    assert report.card_ids == first.card_ids  # the same card, updated in place
    assert "and true" in standin.cards[narratives]["dataset_query"]["native"]["query"]


def test_an_analysts_card_in_the_collection_is_never_touched(standin):
    first = provision_metabase(cfg_for(standin))
    mine = standin.add_card(
        name="My own view",
        description="an analyst's question",
        collection_id=first.collection_id,
        display="table",
        dataset_query={"type": "native", "database": 2, "native": {"query": "select 1"}},
        visualization_settings={},
    )
    # and an analyst's card whose name is the same as a provisioned question
    twin = standin.add_card(
        name=QUESTIONS[0].name,
        description=None,
        collection_id=first.collection_id,
        display="line",
        dataset_query={"type": "native", "database": 2, "native": {"query": "select 2"}},
        visualization_settings={},
    )
    before = {cid: dict(card) for cid, card in standin.cards.items() if cid in (mine["id"], twin["id"])}
    standin.reset()
    changed = [dataclasses.replace(q, name=q.name + " (v2)") for q in QUESTIONS]
    provision_metabase(cfg_for(standin), questions=changed)
    touched = {r.path for r in standin.requests}
    assert f"/api/card/{mine['id']}" not in touched and f"/api/card/{twin['id']}" not in touched
    assert {cid: standin.cards[cid] for cid in before} == before
    assert len(standin.cards) == len(QUESTIONS) + 2  # nothing duplicated


def test_refresh_hits_exactly_the_provisioned_cards(standin):
    report = provision_metabase(cfg_for(standin))
    standin.add_card(  # an analyst's card: not refreshed
        name="Mine",
        collection_id=report.collection_id,
        display="table",
        dataset_query={"type": "native", "database": 2, "native": {"query": "select 1"}},
        visualization_settings={},
    )
    standin.reset()
    refreshed = refresh_metabase(cfg_for(standin), sync_schema=False, provisioned=True)
    queried = sorted(int(c.split("/")[3]) for c in standin.calls() if c.endswith("/query"))
    assert queried == sorted(report.card_ids.values())
    assert refreshed.provisioned == report.card_ids
    assert writes(standin) == [f"POST /api/card/{cid}/query" for cid in report.card_ids.values()]


def test_refresh_adds_configured_cards_and_needs_no_ids(standin):
    report = provision_metabase(cfg_for(standin))
    standin.reset()
    refresh_metabase(cfg_for(standin, card_ids=[501]), sync_schema=False, provisioned=True)
    queried = [int(c.split("/")[3]) for c in standin.calls() if c.endswith("/query")]
    assert queried == [*report.card_ids.values(), 501]
    # not provisioned yet and no ids: nothing to re-run, no error
    with StandIn(api_key=KEY) as empty:
        done = refresh_metabase(cfg_for(empty), sync_schema=False, provisioned=True)
        assert done.cards == {} and done.provisioned == {}
    assert MetabaseConfig.from_variables({"METABASE_URL": standin.url, "METABASE_API_KEY": KEY}).card_ids == []


def test_dbt_descriptions_reach_the_data_model_in_the_same_run(standin):
    from synoforecast.lib.activation.metabase_catalog import ModelDoc

    standin.synced = {"published.narratives": ["cohort", "narrative"], "marts.other": ["x"]}
    docs = {"narratives": ModelDoc("One text per cohort and metric.", {"narrative": "The text."})}
    report = provision_metabase(cfg_for(standin), docs=docs)
    assert report.catalog is not None and report.catalog.tables == {"published.narratives": "updated"}
    assert report.catalog_writes == 2 and report.to_metadata()["catalog"]["fields_updated"] == 1
    assert standin.calls().count("GET /api/health") == 1  # one session for both
    standin.reset()
    again = provision_metabase(cfg_for(standin), docs=docs)
    assert again.catalog_writes == 0 and writes(standin) == []


def test_provisioned_card_ids_reads_only(standin):
    report = provision_metabase(cfg_for(standin))
    standin.reset()
    assert provisioned_card_ids(cfg_for(standin)) == report.card_ids
    assert writes(standin) == []


# ------------------------------------------------------------------ failure modes


def test_metabase_down_names_the_url_and_writes_nothing():
    with StandIn(api_key=KEY) as s:
        url = s.url
    with pytest.raises(MetabaseError, match="not healthy after 3 attempts"):
        provision_metabase(
            MetabaseConfig(url=url, api_key=KEY, database_id=2, health_attempts=3, health_wait_s=0.01, timeout_s=0.5)
        )


def test_metabase_initialising(standin):
    standin.initializing_for = 10
    with pytest.raises(MetabaseError, match="still initializing") as err:
        provision_metabase(cfg_for(standin))
    assert err.value.initializing
    assert writes(standin) == []
    standin.initializing_for = 0
    standin.reset()
    assert provision_metabase(cfg_for(standin)).objects["dashboard"] == "created"  # a second run heals


def test_401_names_the_key_and_never_shows_it(standin):
    with pytest.raises(MetabaseError, match="rejected the API key \\(401\\)") as err:
        provision_metabase(cfg_for(standin, api_key="wrong-key-123456"))
    assert "wrong-key-123456" not in str(err.value)
    assert standin.collections == {} and writes(standin) == []


def test_card_rejected_names_the_question_and_the_next_run_heals(standin):
    standin.reject_cards = {"Narratives": {"dataset_query": "Invalid template tag: metric"}}
    with pytest.raises(MetabaseError) as err:
        provision_metabase(cfg_for(standin))
    msg = str(err.value)
    assert "question 'Narratives' [narratives]" in msg and "HTTP 400" in msg
    assert "dataset_query: Invalid template tag: metric" in msg
    assert standin.dashboards_store == {}  # stopped at the failing object
    standin.reject_cards = {}
    report = provision_metabase(cfg_for(standin))
    assert report.objects["narratives"] == "created" and report.objects["forecast_vs_actual"] == "unchanged"
    assert len(standin.cards) == len(QUESTIONS)


def test_required_fields_answer_400_with_metabases_error_body(standin):
    resp = httpx.post(f"{standin.url}/api/card", headers={"x-api-key": KEY}, json={"name": " "})
    assert resp.status_code == 400
    errors = resp.json()["errors"]
    assert errors["name"] == "value must be a non-blank string."
    assert set(errors) == {"name", "display", "dataset_query", "visualization_settings"}
    assert httpx.post(f"{standin.url}/api/card", json={"name": "x"}).status_code == 401
    assert httpx.post(f"{standin.url}/api/collection/", headers={"x-api-key": KEY}, json={}).json() == {
        "errors": {"name": "value must be a non-blank string."},
        "specific-errors": {"name": ["value must be a non-blank string."]},
    }


def test_dashboard_archived_by_hand_is_restored(standin):
    first = provision_metabase(cfg_for(standin))
    standin.dashboards_store[first.dashboard_id]["archived"] = True  # "Move to trash"
    live = httpx.get(f"{standin.url}/api/collection/{first.collection_id}/items", headers={"x-api-key": KEY})
    assert "dashboard" not in {i["model"] for i in live.json()["data"]}  # archived: not listed by default
    standin.reset()
    report = provision_metabase(cfg_for(standin))
    assert report.dashboard_id == first.dashboard_id and report.objects["dashboard"] == "restored"
    assert standin.dashboards_store[first.dashboard_id]["archived"] is False
    assert writes(standin) == [f"PUT /api/dashboard/{first.dashboard_id}"]
    standin.reset()
    provision_metabase(cfg_for(standin))
    assert writes(standin) == []


def test_dashboard_deleted_by_hand_is_recreated(standin):
    first = provision_metabase(cfg_for(standin))
    del standin.dashboards_store[first.dashboard_id]
    standin.reset()
    report = provision_metabase(cfg_for(standin))
    assert report.objects["dashboard"] == "created" and report.dashboard_id != first.dashboard_id
    assert set(report.card_ids.values()) == {
        dc["card_id"] for dc in standin.dashboards_store[report.dashboard_id]["dashcards"]
    }
    assert len(standin.dashboards_store) == 1


def test_archived_card_and_collection_are_restored_not_duplicated(standin):
    first = provision_metabase(cfg_for(standin))
    standin.cards[first.card_ids["narratives"]]["archived"] = True
    standin.reset()
    report = provision_metabase(cfg_for(standin))
    assert report.objects["narratives"] == "restored" and report.card_ids == first.card_ids
    standin.collections[first.collection_id]["archived"] = True
    report = provision_metabase(cfg_for(standin))
    assert report.objects["collection"] == "restored" and report.collection_id == first.collection_id
    assert len(standin.collections) == 1 and len(standin.cards) == len(QUESTIONS)


def test_layout_moved_by_hand_is_put_back(standin):
    first = provision_metabase(cfg_for(standin))
    standin.dashboards_store[first.dashboard_id]["dashcards"][0]["row"] = 40
    standin.reset()
    report = provision_metabase(cfg_for(standin))
    assert report.objects["dashboard"] == "updated"
    assert writes(standin) == [f"PUT /api/dashboard/{first.dashboard_id}"]
    # existing dashcards keep their ids (updated in place, not re-created)
    put = standin.requests[-1].json["dashcards"]
    assert all(dc["id"] > 0 for dc in put)


def test_provisioning_needs_the_database_id(standin):
    with pytest.raises(MetabaseError, match="METABASE_DATABASE_ID"):
        provision_metabase(cfg_for(standin, database_id=None))
    assert standin.calls() == []


def test_differs_ignores_what_metabase_adds():
    assert not differs({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "id": 3})
    assert differs({"a": [1, 2]}, {"a": [1]})
    assert not differs({"a": None}, {})  # Metabase leaves out null fields
    assert differs({"a": 1}, {})
    assert {p.question for p in DASHBOARD.cards} == {q.key for q in QUESTIONS}


def test_the_docs_picture_is_drawn_from_the_definition():
    from pathlib import Path

    from synoforecast.lib.activation.metabase_provision import layout_svg

    picture = Path(__file__).parents[4] / "docs" / "img" / "metabase-dashboard.svg"
    assert picture.read_text() == layout_svg(), "redraw docs/img/metabase-dashboard.svg (docs/activation.md)"
    for q in QUESTIONS:
        assert f"[synoforecast:{q.key}]" in picture.read_text()
