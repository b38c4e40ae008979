"""The dbt project's descriptions into Metabase's data model, against the stand-in."""

from __future__ import annotations

import pytest

from synoforecast.lib.activation.metabase import MetabaseConfig, MetabaseError
from synoforecast.lib.activation.metabase_catalog import ModelDoc, dbt_descriptions, push_descriptions
from synoforecast.settings import DBT_PROJECT_DIR
from synoforecast_tests.support.http_standin import StandIn, metabase_config

KEY = "mb_SecretKey-1234567890"


@pytest.fixture
def standin():
    with StandIn(api_key=KEY) as s:
        s.synced = {
            "published.mart_svr_rm_quarterly": ["quarter_start", "units", "analyst_note"],
            "forecast.forecasts": ["yhat"],
        }
        yield s


def cfg_for(s: StandIn, **kw) -> MetabaseConfig:
    return metabase_config(s, KEY, **kw)


def test_the_dbt_project_describes_its_marts():
    docs = dbt_descriptions(DBT_PROJECT_DIR)
    mart = docs["mart_svr_rm_quarterly"]
    assert mart.columns["quarter_start"].startswith("First day of the quarter")
    assert "units" in mart.columns


def test_descriptions_written_once_and_only_where_dbt_has_one(standin):
    docs = {
        "mart_svr_rm_quarterly": ModelDoc("SVR-RM per quarter.", {"quarter_start": "First day.", "units": "Units."})
    }
    report = push_descriptions(cfg_for(standin), docs)
    assert report.tables == {"published.mart_svr_rm_quarterly": "updated"} and report.fields_updated == 2
    tid = standin.table_id("published.mart_svr_rm_quarterly")
    assert standin.table_edits[tid] == {"description": "SVR-RM per quarter."}
    assert sorted(e["description"] for e in standin.field_edits.values()) == ["First day.", "Units."]
    assert tid * 1000 + 2 not in standin.field_edits  # analyst_note: dbt has nothing to say, left alone
    standin.reset()
    again = push_descriptions(cfg_for(standin), docs)
    assert again.tables == {"published.mart_svr_rm_quarterly": "unchanged"} and again.fields_unchanged == 2
    assert [c for c in standin.calls() if not c.startswith("GET ")] == []


def test_catalog_failures_name_what_to_fix(standin):
    with pytest.raises(MetabaseError, match="METABASE_DATABASE_ID"):
        push_descriptions(cfg_for(standin, database_id=None), {})
    with pytest.raises(MetabaseError, match="rejected the API key"):
        push_descriptions(cfg_for(standin, api_key="nope-nope-nope"), {})


def test_a_dbt_exposure_describes_the_provisioned_dashboard():
    import yaml

    from synoforecast.lib.activation.metabase_provision import DASHBOARD, QUESTIONS

    (exposure,) = yaml.safe_load((DBT_PROJECT_DIR / "models" / "exposures.yml").read_text())["exposures"]
    assert exposure["label"] == DASHBOARD.name and exposure["type"] == "dashboard"
    assert f"[synoforecast:{DASHBOARD.key}]" in exposure["description"]
    for q in QUESTIONS:  # every published view a question reads is named
        view = q.sql.split("from ", 1)[1].split()[0]
        assert view in exposure["description"], view
    marts = {m for m in dbt_descriptions(DBT_PROJECT_DIR) if m.startswith("mart_")}
    assert {r.removeprefix("ref('").removesuffix("')") for r in exposure["depends_on"]} <= marts
