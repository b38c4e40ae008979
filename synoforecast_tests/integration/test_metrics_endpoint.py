"""The Prometheus endpoint end to end (issue 29, item 1): one real ingest of a sample (real
PostgreSQL, dbt, Dagster instance), then `synoforecast metrics serve` as a process of its own,
scraped over HTTP and parsed with prometheus_client's parser. Every value is compared with what
the warehouse and the Dagster instance hold; every warehouse query of a scrape is EXPLAINed on
the real server; with the warehouse down the endpoint still answers 200, with
synoforecast_scrape_source_up{source="warehouse"} 0 and one log line."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from synoforecast.lib.forecasting.cohorts import COHORTS
from synoforecast.lib.monitoring.metrics import QUERIES
from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast_tests.conftest import fetch, isolated_project, new_database
from synoforecast_tests.support.processes import LoggingServer

pytestmark = pytest.mark.integration

SPEC = SampleSpec(
    rows=2000, seed=29, start=dt.date(2023, 10, 1), quarters=12, as_of=dt.date(2026, 8, 20), cutoff=dt.date(2026, 8, 20)
)  # exported that day: 2026-Q3 in progress, so the landing is published too
CLI = str(Path(sys.executable).with_name("synoforecast"))


class Endpoint(LoggingServer):
    """`synoforecast metrics serve --port 0` with the test's environment; its URL from its first line."""

    def __init__(self, env: dict[str, str]):
        super().__init__([CLI, "metrics", "serve", "--port", "0"], env)
        self.url = self.wait_for(r"metrics on (http://\S+)", timeout_s=120).group(1)

    def scrape(self) -> tuple[int, dict[tuple[str, tuple], float], float]:
        started = time.perf_counter()
        with urllib.request.urlopen(self.url, timeout=30) as response:
            status, text = response.status, response.read().decode()
        took = time.perf_counter() - started
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        return status, samples, took


@pytest.fixture(scope="module")
def ingested(pg_server, tmp_path_factory):
    from synoforecast.cli.runner import ingest_workbook

    with isolated_project(tmp_path_factory.mktemp("metrics"), new_database(pg_server)) as env:
        path = env["inbox"] / "sale-out_2026-08-20.xlsx"
        write_sample_workbook(path, SPEC)
        outcome = ingest_workbook(path, progress=lambda _m: None, quiet=True)
        assert outcome.ok, outcome.error
        yield env


@pytest.fixture(scope="module")
def scraped(ingested):
    endpoint = Endpoint(dict(os.environ))
    try:
        status, samples, took = endpoint.scrape()
        yield {"status": status, "samples": samples, "seconds": took, "endpoint": endpoint, **ingested}
    finally:
        endpoint.close()


def only(samples, name: str, **labels) -> float:
    wanted = tuple(sorted(labels.items()))
    return samples[(name, wanted)]


def family(samples, name: str) -> dict[tuple, float]:
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


def test_every_source_answers(scraped):
    assert scraped["status"] == 200
    for source in ("warehouse", "dagster", "volume"):
        assert only(scraped["samples"], "synoforecast_scrape_source_up", source=source) == 1, source
    assert scraped["endpoint"].stderr() == [scraped["endpoint"].log[0]]  # the URL line, nothing else


def test_export_age_and_rows_per_sheet_are_what_ops_snapshots_holds(scraped):
    samples = scraped["samples"]
    (mtime, age, sheets), *_ = fetch(
        scraped["url"],
        "select file_mtime, extract(epoch from now() - file_mtime)::float8, sheets from ops.snapshots "
        "where status = 'accepted' order by file_mtime desc limit 1",
    )
    assert only(samples, "synoforecast_export_timestamp_seconds") == pytest.approx(mtime.timestamp(), abs=1e-3)
    assert mtime.date() == dt.date(2026, 8, 20)  # the export's own date, as snapshot_freshness dates it
    # the age was measured at the scrape, a moment before this query
    assert age - 60 <= only(samples, "synoforecast_export_age_seconds") <= age
    assert only(samples, "synoforecast_export_max_age_seconds") == 8 * 86400  # the settings' default
    loaded = family(samples, "synoforecast_export_rows_loaded")
    assert loaded == {(("sheet", name),): float(s["rows_loaded"]) for name, s in sheets.items()}
    assert loaded[(("sheet", "SVR-RM"),)] > 1000
    quarantined = family(samples, "synoforecast_export_rows_quarantined")
    assert quarantined == {(("sheet", name),): float(s["rows_quarantined"]) for name, s in sheets.items()}


def test_the_published_export(scraped):
    samples = scraped["samples"]
    ((published_at, sha),) = fetch(scraped["url"], "select published_at, snapshot_sha256 from ops.published_snapshot")
    assert only(samples, "synoforecast_published_switch_timestamp_seconds") == pytest.approx(published_at.timestamp())
    assert only(samples, "synoforecast_published_is_newest_export") == 1
    assert only(samples, "synoforecast_published_export_age_seconds") == pytest.approx(
        only(samples, "synoforecast_export_age_seconds")
    )


def test_smape_per_cohort_and_metric_at_the_latest_scored_quarter(scraped):
    rows = fetch(
        scraped["url"],
        """select cohort, metric, level, smape, quarter_label from forecast.evaluation e
            where quarter = (select max(quarter) from forecast.evaluation x where x.cohort = e.cohort)""",
    )
    assert {r[0] for r in rows} == {c.name for c in COHORTS}
    smape = family(scraped["samples"], "synoforecast_forecast_smape")
    expected = {
        (("cohort", c), ("level", lv), ("metric", m)): pytest.approx(v) for c, m, lv, v, _ in rows if v is not None
    }
    assert smape == expected
    quarter = {r[4] for r in rows if r[0] == "svr_rm_overall"}.pop()
    info = [labels for labels in family(scraped["samples"], "synoforecast_forecast_scored_quarter_info")]
    assert (("cohort", "svr_rm_overall"), ("previous_quarter", _previous(quarter)), ("quarter", quarter)) in info
    previous = family(scraped["samples"], "synoforecast_forecast_smape_previous")
    before = fetch(
        scraped["url"],
        """select cohort, metric, level, smape from forecast.evaluation e
            where quarter = (select max(quarter) from forecast.evaluation x where x.cohort = e.cohort
                              and x.quarter < (select max(quarter) from forecast.evaluation y where y.cohort = e.cohort))""",
    )
    assert previous == {
        (("cohort", c), ("level", lv), ("metric", m)): pytest.approx(v) for c, m, lv, v in before if v is not None
    }


def _previous(label: str) -> str:
    year, q = int(label[:4]), int(label[-1])
    return f"{year - 1}-Q4" if q == 1 else f"{year}-Q{q - 1}"


def test_landing_against_forecast_is_the_published_landing(scraped):
    samples = scraped["samples"]
    rows = fetch(
        scraped["url"],
        """select cohort, series_id, metric, yhat, forecast_start, qtd_actual, cutoff_date, quarter_label
             from published.latest_landing
            where cohort <> 'svr_rm_top_customers' or series_id in ('total', 'all_other')""",
    )
    assert rows
    landing = family(samples, "synoforecast_landing_forecast")
    assert landing == {(("cohort", c), ("metric", m), ("series", s)): pytest.approx(y) for c, s, m, y, *_ in rows}
    ratio = family(samples, "synoforecast_landing_vs_forecast_ratio")
    assert ratio == {
        (("cohort", c), ("metric", m), ("series", s)): pytest.approx(y / f) for c, s, m, y, f, *_ in rows if f
    }
    head = (("cohort", "svr_rm_overall"), ("metric", "revenue"), ("series", "total"))
    assert family(samples, "synoforecast_landing_quarter_to_date")[head] == pytest.approx(
        [r[5] for r in rows if (r[0], r[1], r[2]) == ("svr_rm_overall", "total", "revenue")][0]
    )
    cutoff, quarter = rows[0][6], rows[0][7]
    assert only(samples, "synoforecast_landing_info", cutoff=cutoff.isoformat(), quarter=quarter) == 1
    assert cutoff == dt.date(2026, 8, 20) and quarter == "2026-Q3"


def test_runs_steps_checks_and_the_metabase_refresh_are_what_the_instance_holds(scraped):
    samples = scraped["samples"]
    instance = dg.DagsterInstance.get()
    records = instance.get_run_records()
    expected: dict[tuple, float] = {}
    for r in records:
        key = (("job", r.dagster_run.job_name), ("status", r.dagster_run.status.value))
        expected[key] = expected.get(key, 0) + 1
    assert family(samples, "synoforecast_runs_recent") == expected
    assert (("job", "forecast_pipeline_job"), ("status", "SUCCESS")) in expected
    assert family(samples, "synoforecast_runs_in_progress") == {}

    pipeline = next(r for r in records if r.dagster_run.job_name == "forecast_pipeline_job")
    assert only(samples, "synoforecast_job_last_run_status", job="forecast_pipeline_job", status="SUCCESS") == 1
    assert only(samples, "synoforecast_job_last_run_duration_seconds", job="forecast_pipeline_job") == pytest.approx(
        pipeline.end_time - pipeline.start_time
    )
    steps = {
        (("job", "forecast_pipeline_job"), ("status", s.status.value), ("step", s.step_key)): pytest.approx(
            s.end_time - s.start_time
        )
        for s in instance.get_run_step_stats(pipeline.dagster_run.run_id)
    }
    scraped_steps = {
        k: v
        for k, v in family(samples, "synoforecast_step_duration_seconds").items()
        if dict(k)["job"] == "forecast_pipeline_job"
    }
    assert scraped_steps == steps and len(steps) > 5

    # a partitioned contract check: one evaluation per quarter of its latest run, all passed
    key = dg.AssetCheckKey(dg.AssetKey(["raw", "svr_rm"]), "svr_rm_contract")
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=1000)
    latest_run = [r for r in history if r.run_id == history[0].run_id]
    assert len(latest_run) >= 10 and {r.partition for r in latest_run} != {None}
    contract = {
        dict(labels)["outcome"]: value
        for labels, value in family(samples, "synoforecast_check_evaluations").items()
        if dict(labels) | {"outcome": "-"} == {"asset": "raw/svr_rm", "check": "svr_rm_contract", "severity": "ERROR",
                                              "blocking": "true", "outcome": "-"}
    }  # fmt: skip
    assert contract == {"passed": len(latest_run), "failed": 0}
    failed = [
        k for k, v in family(samples, "synoforecast_check_evaluations").items() if dict(k)["outcome"] == "failed" and v
    ]
    blocking_failed = [k for k in failed if dict(k)["blocking"] == "true" and dict(k)["severity"] == "ERROR"]
    assert blocking_failed == []  # the sample passes every gate
    # snapshot_freshness, evaluated by the snapshot run (the export of 2026-08-20 is old by now, or not)
    fresh = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey("workbook_snapshot"), "snapshot_freshness")
    ).evaluation
    labels = {"asset": "workbook_snapshot", "check": "snapshot_freshness", "severity": fresh.severity.value,
              "blocking": "false"}  # fmt: skip
    assert only(samples, "synoforecast_check_evaluations", **labels, outcome="failed") == (0 if fresh.passed else 1)
    assert only(samples, "synoforecast_check_evaluations", **labels, outcome="passed") == (1 if fresh.passed else 0)

    refresh = only(samples, "synoforecast_metabase_refresh_status", asset="activation/metabase_refresh",
                   status="skipped: not configured")  # fmt: skip
    assert refresh == 1
    assert only(samples, "synoforecast_metabase_refresh_success", asset="activation/metabase_refresh") == 1
    assert only(samples, "synoforecast_metabase_refresh_success", asset="activation/landing_metabase_refresh") == 1


def test_the_data_volume(scraped):
    usage = shutil.disk_usage(scraped["data"])
    free = only(scraped["samples"], "synoforecast_volume_free_bytes", path=str(scraped["data"]))
    assert abs(free - usage.free) < 200e6  # other writers on the machine meanwhile
    assert only(scraped["samples"], "synoforecast_volume_size_bytes", path=str(scraped["data"])) == usage.total


def test_a_second_scrape_reads_afresh(scraped):
    endpoint = scraped["endpoint"]
    before = only(scraped["samples"], "synoforecast_export_age_seconds")
    time.sleep(1.1)
    status, samples, _ = endpoint.scrape()
    assert status == 200
    assert only(samples, "synoforecast_export_age_seconds") >= before + 1  # measured now, not kept


def test_every_warehouse_query_of_a_scrape_is_bounded_by_an_index(scraped):
    """With sequential scans priced out, each statement must still find an index path on the
    tables that grow (a table scan would show as 'Seq Scan on <table>')."""
    url = scraped["url"]
    ((sha,),) = fetch(url, "select snapshot_sha256 from ops.published_snapshot")
    params = {
        "cohorts": [c.name for c in COHORTS],
        "by_customer": [c.name for c in COHORTS if c.by_customer],
        "sha256": sha,
    }
    with psycopg.connect(url) as conn:
        conn.execute("set enable_seqscan = off")
        for name, sql in QUERIES.items():
            plan = "\n".join(r[0] for r in conn.execute(f"explain {sql}", params).fetchall())
            scans = re.findall(r"Seq Scan on (\S+)", plan)
            assert [t for t in scans if t in ("snapshots", "evaluation", "landing")] == [], f"{name}:\n{plan}"
            assert "Index" in plan, f"{name}:\n{plan}"


def test_at_scale_the_planner_itself_picks_an_index_for_every_scrape_query(pg_server):
    """Years of history in a warehouse of its own (2,000 exports, 100,000 landing rows, 200 quarters
    of evaluation per cohort), ANALYZEd: with the planner's own choices, no scrape query scans a
    table that grows. (ops.published_snapshot holds one row by its key.)"""
    from synoforecast.lib.warehouse.connection import ensure_schema

    url = new_database(pg_server)
    ensure_schema(url)
    cohorts = [c.name for c in COHORTS]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """insert into ops.snapshots (sha256, file, size_bytes, file_mtime, status)
               select md5(i::text) || md5(i::text), i || '.xlsx', 1, now() - (i || ' days')::interval,
                      case when i % 10 = 0 then 'refused' else 'accepted' end
                 from generate_series(1, 2000) i"""
        )
        conn.execute(
            """insert into forecast.landing (cohort, series_id, metric, quarter_start, quarter_label, cutoff_date,
                   week_of_quarter, elapsed_share, elapsed_selling_share, qtd_actual, forecast_start,
                   weight_extrapolated, weight_naive, yhat, snapshot_sha256, run_id)
               select c, 's' || s, m, current_date, 'Q', current_date - i, 1, 0.5, 0.5, 1, 2, 0.3, 0.3, 2,
                      md5(i::text) || md5(i::text), 'r'
                 from generate_series(1, 1000) i cross join unnest(%s::text[]) c
                 cross join generate_series(1, 10) s cross join unnest(array['units', 'revenue']) m""",
            (cohorts,),
        )
        conn.execute(
            """insert into forecast.evaluation (cohort, quarter, quarter_label, metric, series_scored, smape, run_id,
                   level)
               select c, (date '1976-01-01' + (q * 3 || ' months')::interval)::date, 'Q', m, 1, 10, 'r', lv
                 from unnest(%s::text[]) c cross join generate_series(0, 199) q
                 cross join unnest(array['units', 'revenue']) m cross join unnest(array['total', 'parts']) lv""",
            (cohorts,),
        )
        conn.execute("insert into ops.published_snapshot (snapshot_sha256, run_id) values (md5('1') || md5('1'), 'r')")
        conn.execute("analyze")
        params = {"cohorts": cohorts, "by_customer": ["svr_rm_top_customers"], "sha256": "x"}
        params["sha256"] = conn.execute("select snapshot_sha256 from ops.published_snapshot").fetchone()[0]
        for name, sql in QUERIES.items():
            plan = "\n".join(r[0] for r in conn.execute(f"explain {sql}", params).fetchall())
            scans = set(re.findall(r"Seq Scan on (\S+)", plan)) - {"published_snapshot"}
            assert not scans, f"{name}:\n{plan}"


def test_with_the_warehouse_down_the_endpoint_answers_200_and_says_so_once(scraped):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SYNOFORECAST_WAREHOUSE_URL": f"postgresql://synoforecast:s3cret@127.0.0.1:{port}/warehouse"}
    endpoint = Endpoint(env)
    try:
        for _ in range(3):
            status, samples, _ = endpoint.scrape()
            assert status == 200
            assert only(samples, "synoforecast_scrape_source_up", source="warehouse") == 0
            assert only(samples, "synoforecast_scrape_source_up", source="dagster") == 1
            assert not family(samples, "synoforecast_export_age_seconds")
            assert family(samples, "synoforecast_runs_recent")  # the other sources' metrics stay
        time.sleep(0.5)
        down = [line for line in endpoint.stderr() if "is down" in line]
        assert len(down) == 1, endpoint.log
        assert f"127.0.0.1:{port}" in down[0] and "s3cret" not in down[0]
    finally:
        endpoint.close()
