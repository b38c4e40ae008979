"""forecast/landing end to end: `synoforecast ingest` of weekly exports of a running quarter
(real PostgreSQL, dbt, Dagster, statsforecast), the weekly summary at the HTTP stand-in."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest

from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast_tests.conftest import fetch, isolated_project, new_database
from synoforecast_tests.support.definitions import reload_definitions, sensor_context

pytestmark = pytest.mark.integration

HISTORY = dict(rows=3000, seed=5, start=dt.date(2023, 10, 1), quarters=12, as_of=dt.date(2026, 9, 20))
WEEK_7, WEEK_8 = dt.date(2026, 8, 12), dt.date(2026, 8, 19)  # 2026-Q3 in progress
SLACK = "/slack/services/T9/B9/landingSECRET"
STANDIN_API_KEY = KEY = "mb_landing-SECRET-key"
PUBLISHED = (
    "select cohort, series_id, metric, quarter_start, cutoff_date, week_of_quarter, elapsed_share, qtd_actual, "
    "forecast_start, extrapolated, weight_extrapolated, weight_naive, yhat, yhat_lo_80, yhat_hi_80, "
    "yhat_lo_95, yhat_hi_95, yhat_base, snapshot_sha256 from forecast.landing where cutoff_date = %s "
    "order by 1, 2, 3"
)


def export(inbox, cutoff: dt.date):
    path = inbox / f"sale-out-{cutoff.isoformat()}.xlsx"
    write_sample_workbook(path, SampleSpec(**HISTORY, cutoff=cutoff))
    return path


@pytest.fixture(scope="module")
def weekly(pg_server, standin, tmp_path_factory):
    try:
        yield from _weekly(pg_server, standin, tmp_path_factory)
    finally:
        reload_definitions()  # with the variables as they are again once the project's are gone


def _weekly(pg_server, standin, tmp_path_factory):
    with isolated_project(tmp_path_factory.mktemp("landing"), new_database(pg_server)) as project:
        for name, value in {
            "SLACK_WEBHOOK_URL": standin.url + SLACK,
            "METABASE_URL": standin.url,
            "METABASE_API_KEY": KEY,
            "METABASE_CARD_IDS": "5",
            "METABASE_HEALTH_WAIT_S": "0.05",
            "METABASE_BACKOFF_S": "0.05",
            "SYNOFORECAST_FORECAST_WORKERS": "2",
        }.items():  # a worker process, whatever the cores
            project["monkeypatch"].setenv(name, value)
        reload_definitions()  # the code location loads with these variables
        from synoforecast.cli.main import main

        standin.reset()
        assert main(["ingest", str(export(project["inbox"], WEEK_7)), "--json"]) == 0
        project["first_requests"] = [r for r in standin.requests if r.path == SLACK]
        project["first_calls"] = standin.calls()
        project["week7"] = fetch(project["url"], PUBLISHED, (WEEK_7,))
        yield project


def test_a_weekly_export_lands_every_forecast_series_exactly_reconciled(weekly):
    from synoforecast.defs.landing.checks import landing_failures

    url = weekly["url"]
    rows = weekly["week7"]
    assert rows, "no landing published"
    quarters = {r[3] for r in rows}
    assert quarters == {dt.date(2026, 7, 1)} and {r[5] for r in rows} == {7}
    forecast_series = set(
        fetch(url, "select cohort, series_id, metric from forecast.forecasts where target_quarter = '2026-07-01'")
    )
    assert {(r[0], r[1], r[2]) for r in rows} == forecast_series  # every series the quarterly forecasts publish
    assert landing_failures(url, WEEK_7) == []  # finite, every hierarchy exact (numeric in PostgreSQL)
    for r in rows:
        lo80, hi80, lo95, hi95 = r[13:17]
        assert lo95 <= lo80 <= r[12] <= hi80 <= hi95
    # the quarter-to-date is what the export holds up to its cut-off
    (svr_qtd,) = fetch(
        url, "select sum(units)::float8 from staging.stg_running_svr_rm where sale_date <= %s", (WEEK_7,)
    )[0]
    total = next(r for r in rows if r[:3] == ("svr_rm_overall", "total", "units"))
    assert total[7] == svr_qtd
    (check,) = fetch(url, "select count(*) from forecast.landing_evaluation where cutoff_date = %s", (WEEK_7,))[0:1]
    assert check[0] > 0


def test_the_weekly_summary_leads_with_the_landing(weekly):
    (post,) = weekly["first_requests"][-1:]
    text = post.json["text"]
    assert text.startswith("synoforecast: 2026-Q3 tracking ") and "vs forecast (SVR-RM revenue)" in text
    lead = text.index("Where 2026-Q3 will land")
    assert lead < text.index("Forecasts:")  # the landing first, then the quarter's forecasts
    assert "svr_rm_overall / SVR-RM total · revenue: tracking" in text and "c2_scorecard / All C2 services" in text
    assert "80% range" in text


def test_metabase_cards_rerun_after_the_landing_before_its_summary(weekly):
    calls = weekly["first_calls"]
    queries = [i for i, c in enumerate(calls) if c == "POST /api/card/5/query"]
    posts = [i for i, c in enumerate(calls) if c == f"POST {SLACK}"]
    assert len(queries) == 2 and len(posts) == 2  # the quarter-close run, then the landing run
    assert posts[0] < queries[1] < posts[1]  # the landing's refresh, then the weekly summary


def test_analysts_read_the_landing_and_cannot_write_it(weekly):
    import psycopg

    with psycopg.connect(weekly["url"]) as conn:
        conn.execute("set role analyst")
        (n,) = conn.execute("select count(*) from forecast.latest_landing").fetchone()
        assert n == len(weekly["week7"])
        assert conn.execute("select count(*) from forecast.landing_evaluation").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("delete from forecast.landing")


def test_re_landing_the_same_export_changes_nothing(weekly):
    """Also on one process: the cohorts the first landing made on a worker come out the same."""
    from synoforecast.cli.runner import IngestOutcome, land_in_process
    from synoforecast.definitions import defs
    from synoforecast.settings import get_settings

    sha = weekly["week7"][0][18]
    weekly["monkeypatch"].setenv("SYNOFORECAST_FORECAST_WORKERS", "1")  # the first landing: 2
    get_settings.cache_clear()
    try:
        outcome = IngestOutcome(ok=True, file="again", sha256=sha)
        land_in_process(dg.DagsterInstance.get(), defs, sha, outcome, lambda _: None, True)
    finally:
        weekly["monkeypatch"].setenv("SYNOFORECAST_FORECAST_WORKERS", "2")
        get_settings.cache_clear()
    assert outcome.ok, outcome.error
    assert fetch(weekly["url"], PUBLISHED, (WEEK_7,)) == weekly["week7"]


def test_the_next_week_adds_a_cutoff_and_keeps_the_last(weekly):
    from synoforecast.cli.main import main

    assert main(["ingest", str(export(weekly["inbox"], WEEK_8)), "--json"]) == 0
    url = weekly["url"]
    assert fetch(url, PUBLISHED, (WEEK_7,)) == weekly["week7"]
    latest = fetch(url, "select distinct cutoff_date, week_of_quarter from forecast.latest_landing")
    assert latest == [(WEEK_8, 8)]
    week8 = {r[:3]: r for r in fetch(url, PUBLISHED, (WEEK_8,))}
    for r in weekly["week7"]:  # a week more of sales: quarter-to-date only grows for the SVR-RM total
        if r[:3] == ("svr_rm_overall", "total", "units"):
            assert week8[r[:3]][7] >= r[7]
            assert week8[r[:3]][8] == r[8]  # the same quarter-start forecast
    # the replays of an older cut-off are kept beside the new ones
    assert {c for (c,) in fetch(url, "select distinct cutoff_date from forecast.landing_evaluation")} == {
        WEEK_7,
        WEEK_8,
    }


def _landing_metadata(cutoff: dt.date, first: bool = False) -> dict:
    found = dg.DagsterInstance.get().fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey(["forecast", "landing"]), asset_partitions=[cutoff.isoformat()]),
        limit=1,
        ascending=first,
    )
    return found.records[0].asset_materialization.metadata


def test_the_next_weeks_landing_reuses_the_replays_and_publishes_what_recomputing_them_would(weekly):
    """Week 8's export has week 7's complete quarters: its replays are week 7's, read back by
    content hash; recomputed from nothing they give the very same published rows."""
    import shutil

    from synoforecast.cli.main import main
    from synoforecast.cli.runner import IngestOutcome, land_in_process
    from synoforecast.definitions import defs
    from synoforecast.lib.forecasting.cohorts import COHORTS
    from synoforecast.settings import get_settings

    if not fetch(weekly["url"], PUBLISHED, (WEEK_8,)):  # run alone: week 8 not ingested by the test before
        assert main(["ingest", str(export(weekly["inbox"], WEEK_8)), "--json"]) == 0
    assert _landing_metadata(WEEK_7, first=True)["replays_reused"].value == {c.name: False for c in COHORTS}
    assert _landing_metadata(WEEK_7)["replays_reused"].value == {c.name: True for c in COHORTS}  # re-landed
    assert _landing_metadata(WEEK_8)["replays_reused"].value == {c.name: True for c in COHORTS}
    week8 = fetch(weekly["url"], PUBLISHED, (WEEK_8,))
    scores = fetch(
        weekly["url"],
        "select cohort, metric, level, week_of_quarter, smape_landing, coverage_80, "
        "coverage_95 from forecast.landing_evaluation where cutoff_date = %s order by 1, 2, 3, 4",
        (WEEK_8,),
    )
    store = get_settings().landing_replays_dir
    assert sorted(p.name for p in store.iterdir()) == sorted(c.name for c in COHORTS)
    shutil.rmtree(store)
    outcome = IngestOutcome(ok=True, file="again", sha256=week8[0][18])
    land_in_process(dg.DagsterInstance.get(), defs, week8[0][18], outcome, lambda _: None, True)
    assert outcome.ok, outcome.error
    assert _landing_metadata(WEEK_8)["replays_reused"].value == {c.name: False for c in COHORTS}
    assert fetch(weekly["url"], PUBLISHED, (WEEK_8,)) == week8
    assert (
        fetch(
            weekly["url"],
            "select cohort, metric, level, week_of_quarter, smape_landing, coverage_80, "
            "coverage_95 from forecast.landing_evaluation where cutoff_date = %s "
            "order by 1, 2, 3, 4",
            (WEEK_8,),
        )
        == scores
    )


def test_a_partition_that_is_not_the_snapshots_cutoff_is_refused_and_publishes_nothing(weekly):
    from synoforecast.definitions import defs
    from synoforecast.defs.landing.assets import LANDING_CUTOFFS

    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(LANDING_CUTOFFS.name, ["2026-08-05"])
    before = fetch(weekly["url"], "select count(*) from forecast.landing")
    sha = weekly["week7"][0][18]
    result = defs.resolve_job_def("landing_job").execute_in_process(
        instance=instance, partition_key="2026-08-05", raise_on_error=False, tags={"synoforecast/snapshot": sha}
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "was exported on 2026-08-12, not on 2026-08-05" in failure.step_failure_data.error.message
    assert fetch(weekly["url"], "select count(*) from forecast.landing") == before


def test_the_cli_prints_the_landing_and_its_replay_evaluation(weekly, capsys):
    from synoforecast.cli.main import main

    assert main(["landing", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["cutoff_date"] for r in out["landing"]} == {WEEK_8.isoformat()}
    weeks = {r["week_of_quarter"] for r in out["evaluation"]}
    assert weeks == set(range(1, 14))
    assert {"smape_landing", "smape_start", "smape_qtd_share", "coverage_80"} <= set(out["evaluation"][0])
    assert main(["landing", "--cutoff", "2026-08-12"]) == 0
    text = capsys.readouterr().out
    assert "Where 2026-Q3 will land (export of 2026-08-12, week 7 of 13" in text and "Replay evaluation" in text


def test_the_sensor_lands_the_latest_published_snapshot_once(weekly):
    from synoforecast.defs.landing.assets import LANDING_CUTOFFS
    from synoforecast.defs.landing.sensors import landing_sensor

    instance = dg.DagsterInstance.get()
    key = WEEK_8.isoformat()
    # `synoforecast ingest` landed week 8 in process: the sensor starts no second run for it
    skipped = landing_sensor(sensor_context(instance))
    assert isinstance(skipped, dg.SkipReason) and f"successful landing at its cut-off {key}" in skipped.skip_message
    landed = instance.get_run_records(
        dg.RunsFilter(job_name="landing_job", tags={"dagster/partition": key}, statuses=[dg.DagsterRunStatus.SUCCESS])
    )
    assert landed  # the CLI's (and the re-landing test's) in-process landings of week 8
    for record in landed:  # as if the pipeline had run under the daemon and nothing had landed yet
        instance.delete_run(record.dagster_run.run_id)
    instance.delete_dynamic_partition(LANDING_CUTOFFS.name, key)
    result = landing_sensor(sensor_context(instance))
    (request,) = result.run_requests
    assert request.partition_key == key and request.run_key.startswith("landing:")
    assert (
        request.tags["synoforecast/snapshot"]
        == fetch(weekly["url"], "select sha256 from ops.snapshots order by last_seen_at desc limit 1")[0][0]
    )
    (add,) = result.dynamic_partitions_requests
    assert list(add.partition_keys) == [key]
    instance.add_dynamic_partitions(LANDING_CUTOFFS.name, [key])
    again = landing_sensor(sensor_context(instance))
    assert not again.dynamic_partitions_requests and again.run_requests[0].run_key == request.run_key
