"""The metric families (lib/monitoring/metrics.py) from given facts, the collector's handling of a
source that fails (0, logged once, "back" once) and the HTTP endpoint answering 200 meanwhile."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from synoforecast.lib.monitoring.metrics import (
    AccuracyFacts,
    CheckOutcome,
    DagsterFacts,
    ExportFacts,
    JobRun,
    LandingFacts,
    Limits,
    PlatformCollector,
    PublishedFacts,
    RefreshOutcome,
    SheetRows,
    StepTime,
    VolumeFacts,
    WarehouseFacts,
    _sheets,
    accuracy_facts,
    dagster_families,
    registry_for,
    serve,
    volume_facts,
    volume_families,
    warehouse_families,
)

UTC = dt.UTC
NOW = dt.datetime(2026, 8, 30, 12, tzinfo=UTC)


def samples(families) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of families, through the text exposition and back."""
    from prometheus_client import CollectorRegistry

    class Fixed:
        def collect(self):
            return families

    registry = CollectorRegistry()
    registry.register(Fixed())
    return parse(generate_latest(registry).decode())


def parse(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_export_age_rows_and_the_published_export():
    newest = ExportFacts(
        "a" * 64,
        "/inbox/sales.xlsx",
        dt.datetime(2026, 8, 20, 18, tzinfo=UTC),
        (SheetRows("SVR-RM", 2000, 2010, 10), SheetRows("C2", 300)),
    )
    published = PublishedFacts("b" * 64, dt.datetime(2026, 8, 21, tzinfo=UTC), dt.datetime(2026, 8, 13, tzinfo=UTC))
    got = samples(warehouse_families(WarehouseFacts(NOW, newest, published)))
    assert got[("synoforecast_export_age_seconds", ())] == (10 * 24 - 6) * 3600
    assert got[("synoforecast_export_timestamp_seconds", ())] == newest.export_date.timestamp()
    assert got[("synoforecast_export_rows_loaded", (("sheet", "SVR-RM"),))] == 2000
    assert got[("synoforecast_export_rows_loaded", (("sheet", "C2"),))] == 300
    assert got[("synoforecast_export_rows_quarantined", (("sheet", "SVR-RM"),))] == 10
    assert ("synoforecast_export_rows_quarantined", (("sheet", "C2"),)) not in got  # not recorded: absent, not 0
    assert got[("synoforecast_published_export_age_seconds", ())] == 17.5 * 86400
    assert got[("synoforecast_published_switch_timestamp_seconds", ())] == published.switched_at.timestamp()
    assert got[("synoforecast_published_is_newest_export", ())] == 0


def test_an_empty_warehouse_has_no_export_metrics():
    got = samples(warehouse_families(WarehouseFacts(NOW)))
    assert not [name for name, _ in got if name.startswith("synoforecast_export")]


def test_sheets_as_ops_snapshots_records_them():
    recorded = {"SVR-RM": {"rows_loaded": 5, "rows_read": 6, "rows_quarantined": 1}, "Notes": "x", "C2": {}}
    assert _sheets(recorded) == (SheetRows("SVR-RM", 5, 6, 1),)
    assert _sheets(None) == ()


def test_accuracy_pairs_each_latest_quarter_with_the_one_before():
    rows = [
        {"cohort": "regional", "metric": "units", "level": "parts", "is_latest": True, "quarter_label": "2026-Q2",
         "smape": 14.0, "series_scored": 6},
        {"cohort": "regional", "metric": "units", "level": "parts", "is_latest": False, "quarter_label": "2026-Q1",
         "smape": 3.5, "series_scored": 6},
        {"cohort": "c2_scorecard", "metric": "revenue", "level": "total", "is_latest": True, "quarter_label": "2026-Q2",
         "smape": None, "series_scored": 0},
    ]  # fmt: skip
    facts = accuracy_facts(rows)
    assert facts == (
        AccuracyFacts("c2_scorecard", "revenue", "total", "2026-Q2", None, 0, None, None),
        AccuracyFacts("regional", "units", "parts", "2026-Q2", 14.0, 6, "2026-Q1", 3.5),
    )
    got = samples(warehouse_families(WarehouseFacts(NOW, accuracy=facts)))
    key = (("cohort", "regional"), ("level", "parts"), ("metric", "units"))
    assert got[("synoforecast_forecast_smape", key)] == 14.0
    assert got[("synoforecast_forecast_smape_previous", key)] == 3.5
    c2 = (("cohort", "c2_scorecard"), ("level", "total"), ("metric", "revenue"))
    assert ("synoforecast_forecast_smape", c2) not in got  # no score: absent, never a 0 that looks perfect
    assert got[("synoforecast_forecast_series_scored", c2)] == 0
    info = (("cohort", "regional"), ("previous_quarter", "2026-Q1"), ("quarter", "2026-Q2"))
    assert got[("synoforecast_forecast_scored_quarter_info", info)] == 1


def test_landing_against_the_quarter_start_forecast():
    cut = dt.date(2026, 8, 20)
    rows = (
        LandingFacts("svr_rm_overall", "total", "revenue", "2026-Q3", cut, 0.55, 500.0, 1000.0, 1100.0),
        LandingFacts("consumer_trend", "total", "units", "2026-Q3", cut, 0.55, 0.0, 0.0, 10.0),
    )
    got = samples(warehouse_families(WarehouseFacts(NOW, landing=rows)))
    key = (("cohort", "svr_rm_overall"), ("metric", "revenue"), ("series", "total"))
    assert got[("synoforecast_landing_forecast", key)] == 1100
    assert got[("synoforecast_landing_quarter_start_forecast", key)] == 1000
    assert got[("synoforecast_landing_quarter_to_date", key)] == 500
    assert got[("synoforecast_landing_vs_forecast_ratio", key)] == pytest.approx(1.1)
    zero = (("cohort", "consumer_trend"), ("metric", "units"), ("series", "total"))
    assert ("synoforecast_landing_vs_forecast_ratio", zero) not in got  # no ratio to a zero forecast
    assert (
        got[("synoforecast_landing_cutoff_timestamp_seconds", ())] == dt.datetime(2026, 8, 20, tzinfo=UTC).timestamp()
    )
    assert got[("synoforecast_landing_elapsed_ratio", ())] == 0.55
    assert got[("synoforecast_landing_info", (("cutoff", "2026-08-20"), ("quarter", "2026-Q3")))] == 1


def test_dagster_families():
    facts = DagsterFacts(
        window_seconds=86400,
        recent={("forecast_pipeline_job", "SUCCESS"): 3, ("forecast_pipeline_job", "FAILURE"): 1},
        in_progress={("landing_job", "STARTED"): 1},
        last_runs=(JobRun("forecast_pipeline_job", "FAILURE", "r1", 1000.0, 90.0),),
        steps=(StepTime("forecast_pipeline_job", "transform__dbt", "SUCCESS", 41.5),),
        checks=(
            CheckOutcome("raw/svr_rm", "svr_rm_contract", "ERROR", True, passed=10, failed=1, evaluated_at=900.0),
            CheckOutcome("raw/svr_rm", "svr_rm_contract", "WARN", True, passed=0, failed=2, evaluated_at=950.0),
        ),
        refreshes=(RefreshOutcome("activation/metabase_refresh", "failed", False, 990.0, "r1"),),
    )
    got = samples(dagster_families(facts))
    job = ("job", "forecast_pipeline_job")
    assert got[("synoforecast_runs_recent", (job, ("status", "SUCCESS")))] == 3
    assert got[("synoforecast_runs_in_progress", (("job", "landing_job"), ("status", "STARTED")))] == 1
    assert got[("synoforecast_job_last_run_status", (job, ("status", "FAILURE")))] == 1
    assert got[("synoforecast_job_last_run_duration_seconds", (job,))] == 90
    assert got[("synoforecast_step_duration_seconds", (job, ("status", "SUCCESS"), ("step", "transform__dbt")))] == 41.5
    check = (("asset", "raw/svr_rm"), ("blocking", "true"), ("check", "svr_rm_contract"))
    assert got[("synoforecast_check_evaluations", (*check[:3], ("outcome", "failed"), ("severity", "ERROR")))] == 1
    assert got[("synoforecast_check_evaluations", (*check[:3], ("outcome", "passed"), ("severity", "ERROR")))] == 10
    assert got[("synoforecast_check_evaluations", (*check[:3], ("outcome", "failed"), ("severity", "WARN")))] == 2
    stamp = (("asset", "raw/svr_rm"), ("check", "svr_rm_contract"))
    assert got[("synoforecast_check_last_evaluation_timestamp_seconds", stamp)] == 950
    refresh = ("asset", "activation/metabase_refresh")
    assert got[("synoforecast_metabase_refresh_success", (refresh,))] == 0
    assert got[("synoforecast_metabase_refresh_status", (refresh, ("status", "failed")))] == 1


def test_volume(tmp_path):
    (facts,) = volume_facts([tmp_path])
    assert 0 < facts.free_bytes <= facts.total_bytes
    got = samples(volume_families([VolumeFacts("/data", 100, 7)]))
    assert got[("synoforecast_volume_free_bytes", (("path", "/data"),))] == 7
    assert got[("synoforecast_volume_size_bytes", (("path", "/data"),))] == 100


class Flaky:
    """A source that fails while `down` is set."""

    def __init__(self):
        self.down = False
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.down:
            raise ConnectionError("connection to server at 10.0.0.5 port 5432 failed: timeout expired\nsecond line")
        return volume_families([VolumeFacts("/data", 100, 50)])


def test_a_failing_source_is_0_logged_once_and_back_once(caplog):
    flaky = Flaky()
    collector = PlatformCollector([("warehouse", flaky), ("volume", lambda: [])], Limits(freshness_max_age_days=8))
    registry = registry_for(collector, process=False)
    caplog.set_level(logging.WARNING, logger="synoforecast.metrics")
    up = ("synoforecast_scrape_source_up", (("source", "warehouse"),))
    assert parse(generate_latest(registry).decode())[up] == 1
    flaky.down = True
    for _ in range(3):
        got = parse(generate_latest(registry).decode())
        assert got[up] == 0
        assert ("synoforecast_volume_free_bytes", (("path", "/data"),)) not in got  # a down source's metrics go
        assert got[("synoforecast_scrape_source_up", (("source", "volume"),))] == 1  # the others stay
        assert got[("synoforecast_export_max_age_seconds", ())] == 8 * 86400
    down = [r.getMessage() for r in caplog.records if "is down" in r.getMessage()]
    assert down == [
        'metrics source warehouse is down: ConnectionError: connection to server at 10.0.0.5 port 5432 failed: '
        'timeout expired (synoforecast_scrape_source_up{source="warehouse"} is 0 until it answers; logged once)'
    ]
    assert collector.down() == {"warehouse": "ConnectionError: connection to server at 10.0.0.5 port 5432 failed: "
                                             "timeout expired"}  # fmt: skip
    flaky.down = False
    for _ in range(2):
        assert parse(generate_latest(registry).decode())[up] == 1
    assert len([r for r in caplog.records if "is back" in r.getMessage()]) == 1
    assert collector.down() == {}
    assert flaky.calls == 6  # read at every scrape: nothing kept between scrapes


def test_the_endpoint_answers_200_while_a_source_is_down():
    flaky = Flaky()
    flaky.down = True
    registry = registry_for(PlatformCollector([("warehouse", flaky)]))
    stop, ready = threading.Event(), []
    thread = threading.Thread(target=serve, args=(registry, "127.0.0.1", 0, stop, ready.append), daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if ready:
                break
            threading.Event().wait(0.05)
        with urllib.request.urlopen(ready[0], timeout=10) as response:
            assert response.status == 200
            got = parse(response.read().decode())
        assert got[("synoforecast_scrape_source_up", (("source", "warehouse"),))] == 0
        assert ("process_resident_memory_bytes", ()) in got
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
