"""Exports in time (issue 26), against real PostgreSQL, Dagster and dbt: an export restating
two published quarters is measured (ops.restatements, the snapshot's metadata, a warning
check, the run's summary); an export 75 days older than the published one is refused by
`synoforecast ingest` (exit 2) and by the inbox sensor's run, and nothing published moves;
`--republish` rolls back to it on purpose, recorded in ops.snapshots; the published export
ingested again is still accepted.

One module: the exports are ingested in order (each test builds on the one before)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import openpyxl
import pytest

from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast_tests.conftest import fetch, isolated_project, new_database
from synoforecast_tests.support.definitions import reload_definitions, sensor_context
from synoforecast_tests.support.warehouse_prints import table_prints

pytestmark = pytest.mark.integration

NEW_DAY = dt.date(2026, 11, 20)
OLD_DAY = NEW_DAY - dt.timedelta(days=75)  # 2026-09-06: 2026-Q3 still running in that export
HISTORY = dict(rows=2500, seed=23, start=dt.date(2024, 1, 1), quarters=12, as_of=NEW_DAY)
CUTS = {dt.date(2025, 4, 1): 0.97, dt.date(2025, 10, 1): 0.93}  # revenue restated by -3% and -7%
SLACK = "/slack/services/T9/B9/exportsSECRET"
IGNORED = ("run_id", "created_at", "snapshot_id", "published_at")


def rows_print(url: str, schemas=("raw", "published")) -> dict[str, tuple]:
    return table_prints(url, schemas, IGNORED)


def restate(source: Path, target: Path, stamp: float) -> None:
    """`source` with SVR-RM revenue of two past quarters scaled by CUTS, dated like `source`."""
    wb = openpyxl.load_workbook(source)
    ws = wb["SVR-RM"]
    for r in range(2, ws.max_row + 1):
        day = ws.cell(r, 1).value
        day = day.date() if isinstance(day, dt.datetime) else day
        factor = CUTS.get(dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1))
        if factor:
            ws.cell(r, 9).value = round(ws.cell(r, 9).value * factor, 2)
    wb.save(target)
    os.utime(target, (stamp, stamp))  # the same export date as the export it corrects: not older


def revenue_by_quarter(url: str, table: str = "raw.svr_rm") -> dict[dt.date, float]:
    return {q: float(v) for q, v in fetch(url, f"select quarter_start, sum(revenue_usd) from {table} group by 1")}


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synoforecast.cli.main", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=timeout,
    )


def check_results(run_id: str) -> dict:
    records = dg.DagsterInstance.get().get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return {
        r.event_log_entry.dagster_event.event_specific_data.check_name: r.event_log_entry.dagster_event.event_specific_data
        for r in records.records
    }


@pytest.fixture(scope="module")
def exports(pg_server, standin, tmp_path_factory):
    """The export of NEW_DAY ingested, then its correction (same dates) ingested over it."""
    from synoforecast.cli.runner import ingest_workbook

    try:
        with isolated_project(tmp_path_factory.mktemp("exports"), new_database(pg_server)) as env:
            env["monkeypatch"].setenv("SLACK_WEBHOOK_URL", standin.url + SLACK)
            reload_definitions()  # the code location loads with the webhook bound
            inbox, url = env["inbox"], env["url"]
            first, new, old = (
                inbox / "sale-out-2026-11-20.xlsx",
                inbox / "sale-out-2026-11-20-corrected.xlsx",
                inbox / "sale-out-2026-09-06.xlsx",
            )
            write_sample_workbook(first, SampleSpec(**HISTORY, cutoff=NEW_DAY))
            restate(first, new, first.stat().st_mtime)
            write_sample_workbook(old, SampleSpec(**HISTORY, cutoff=OLD_DAY))
            ingested = {}
            for name, path in (("first", first), ("new", new)):
                standin.reset()
                outcome = ingest_workbook(path, progress=lambda _m: None, quiet=True)
                assert outcome.ok, outcome.error
                ingested[name] = {
                    "outcome": outcome,
                    "revenue": revenue_by_quarter(url),
                    "slack": [r.json for r in standin.requests_to("/slack/")],
                }
            yield {**env, "first": first, "new": new, "old": old, **ingested}
    finally:
        reload_definitions()  # without this module's webhook


def test_the_first_export_restates_nothing(exports):
    sha = exports["first"]["outcome"].sha256
    assert fetch(exports["url"], "select count(*) from ops.restatements where snapshot_sha256 = %s", (sha,)) == [(0,)]
    result = check_results(exports["first"]["outcome"].run_ids[0])["snapshot_restatements"]
    assert result.passed and "nothing restated" in result.description


def test_a_restated_quarter_is_measured_listed_and_warned(exports):
    url, outcome = exports["url"], exports["new"]["outcome"]
    before, after = exports["first"]["revenue"], exports["new"]["revenue"]
    rows = fetch(
        url,
        """select quarter_start, quarter_label, published_value, new_value, change, share, baseline_sha256
                           from ops.restatements where snapshot_sha256 = %s and sheet = 'SVR-RM' and metric = 'revenue'
                            and change <> 0 order by quarter_start""",
        (outcome.sha256,),
    )
    assert [(r[0], r[1]) for r in rows] == [(dt.date(2025, 4, 1), "2025-Q2"), (dt.date(2025, 10, 1), "2025-Q4")]
    for quarter, _label, published, new, change, share, baseline in rows:
        assert float(published) == pytest.approx(before[quarter], abs=0.005)  # what raw held before this export
        assert float(new) == pytest.approx(after[quarter], abs=0.005)  # what raw holds now
        assert float(change) == pytest.approx(after[quarter] - before[quarter], abs=0.01)
        assert share == pytest.approx(CUTS[quarter] - 1, abs=0.0005)
        assert baseline == exports["first"]["outcome"].sha256
    # every other value of every complete quarter published before was compared, and did not move
    compared = fetch(
        url,
        """select sheet, metric, count(*), count(*) filter (where change <> 0)
                               from ops.restatements where snapshot_sha256 = %s group by 1, 2 order by 1, 2""",
        (outcome.sha256,),
    )
    quarters = len(
        fetch(
            url,
            "select 1 from ops.snapshots s, jsonb_array_elements(s.complete_quarters) where sha256 = %s",
            (exports["first"]["outcome"].sha256,),
        )
    )
    assert compared == [
        ("C2", "lines", quarters, 0),
        ("C2", "mrr", quarters, 0),
        ("C2", "seats", quarters, 0),
        ("Consumer", "lines", quarters, 0),
        ("Consumer", "revenue", quarters, 0),
        ("Consumer", "units", quarters, 0),
        ("SVR-RM", "lines", quarters, 0),
        ("SVR-RM", "revenue", quarters, 2),
        ("SVR-RM", "units", quarters, 0),
    ]

    # the snapshot's metadata and the CLI report list the material ones, largest first
    listed = outcome.report()["restated"]
    assert [line.split(":")[0] for line in listed] == ["SVR-RM 2025-Q4 revenue", "SVR-RM 2025-Q2 revenue"]
    assert listed[0].endswith("-7.0%)") and listed[1].endswith("-3.0%)")
    # the warning check fires above 5%, naming the largest
    result = check_results(outcome.run_ids[0])["snapshot_restatements"]
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.description.startswith("1 published value(s) restated by more than 5%, largest SVR-RM 2025-Q4")
    # both summaries the export sends (the pipeline run's, the landing's weekly one) list both, largest first
    summaries = [post["text"] for post in exports["new"]["slack"]]
    assert len(summaries) == 2
    for text in summaries:
        block = text.split("Restated published quarters (by more than 1.0%, largest first):\n")[1].split("\n\n")[0]
        assert [line.split(":")[0] for line in block.splitlines()] == [
            "- SVR-RM 2025-Q4 revenue",
            "- SVR-RM 2025-Q2 revenue",
        ]
        assert block.splitlines()[0].endswith("(-7.0%)") and block.splitlines()[1].endswith("(-3.0%)")
    assert not any("Restated" in post["text"] for post in exports["first"]["slack"])


def test_an_older_export_is_refused_naming_both_and_nothing_published_moves(exports):
    url = exports["url"]
    before = rows_print(url)
    published = fetch(url, "select snapshot_sha256 from ops.published_snapshot")
    result = cli("ingest", str(exports["old"]))
    assert result.returncode == 2, result.stderr[-3000:]
    refusal = [ln for ln in result.stderr.splitlines() if not ln.startswith("synoforecast: ")]
    assert len(refusal) == 1 and "Traceback" not in result.stderr, result.stderr
    assert refusal[0].startswith("refused: sale-out-2026-09-06.xlsx (exported 2026-09-06, last sale 2026-09-0")
    assert (
        "is older than the published export sale-out-2026-11-20-corrected.xlsx (exported 2026-11-20, "
        "last sale 2026-11-" in refusal[0]
    )
    assert "export date 2026-09-06 is before 2026-11-20 and last sale" in refusal[0]
    assert "--republish sale-out-2026-09-06.xlsx" in refusal[0]
    assert rows_print(url) == before
    assert fetch(url, "select snapshot_sha256 from ops.published_snapshot") == published
    assert revenue_by_quarter(url, "published.mart_svr_rm_quarterly") == {
        q: pytest.approx(v, abs=0.005) for q, v in exports["new"]["revenue"].items()
    }
    status, error = fetch(url, "select status, error from ops.snapshots where file = %s", (str(exports["old"]),))[0]
    assert status == "refused" and error in refusal[0]


def test_the_sensors_run_records_the_refusal_never_retries_it_and_posts_it(exports, standin):
    from synoforecast.definitions import defs
    from synoforecast.defs.activation.sensors import notify_on_run_failure
    from synoforecast.defs.ingestion.sensors import inbox_sensor, retry_request
    from synoforecast.defs.resources import build_resources
    from synoforecast.defs.runs import REFUSED_TAG, SNAPSHOT_JOB

    url, instance = exports["url"], dg.DagsterInstance.get()
    before = rows_print(url)
    cursor = None
    for _ in range(2):  # first sight, then stable
        tick = inbox_sensor(sensor_context(instance, cursor=cursor))
        cursor = tick.cursor
    (request,) = tick.run_requests  # the two accepted exports are not requested again
    assert request.run_config["ops"]["workbook_snapshot"]["config"]["path"] == str(exports["old"])
    run = defs.resolve_job_def(SNAPSHOT_JOB).execute_in_process(  # as the daemon launches it
        run_config=request.run_config, tags=request.tags, instance=instance, raise_on_error=False
    )
    assert not run.success
    assert instance.get_run_by_id(run.run_id).tags.get(REFUSED_TAG) == "true"
    assert retry_request(instance, str(exports["old"]), request.tags["synoforecast/snapshot"]) is None
    status, error, last_run = fetch(
        url,
        "select status, error, last_run_id from ops.snapshots where sha256 = %s",
        (request.tags["synoforecast/snapshot"],),
    )[0]
    assert (status, last_run) == ("refused", run.run_id)
    assert "sale-out-2026-09-06.xlsx (exported 2026-09-06" in error and "sale-out-2026-11-20-corrected.xlsx" in error
    assert rows_print(url) == before

    context = dg.build_run_status_sensor_context(
        sensor_name="notify_on_run_failure",
        dagster_instance=instance,
        dagster_run=run.dagster_run,
        dagster_event=run.get_run_failure_event(),
        resources=build_resources(),
    ).for_run_failure()
    standin.reset()
    notify_on_run_failure(context)
    (posted,) = standin.requests_to("/slack/")
    assert "run failed: ingest_snapshot_job" in posted.json["text"]
    assert "sale-out-2026-09-06.xlsx (exported 2026-09-06" in posted.json["text"]


def test_republish_rolls_back_on_purpose_and_is_recorded(exports):
    url = exports["url"]
    newer = exports["new"]["outcome"].sha256
    result = cli("ingest", "--republish", str(exports["old"]), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["ok"] and report["republished"] is True
    republished, at, over, status = fetch(
        url,
        "select republished, republished_at, republished_over, status from ops.snapshots where sha256 = %s",
        (report["sha256"],),
    )[0]
    assert (republished, over, status) == (True, newer, "accepted") and at is not None
    assert fetch(url, "select snapshot_sha256 from ops.published_snapshot") == [(report["sha256"],)]
    # the uncorrected quarters are published again: the rollback itself is a restatement, measured
    published = revenue_by_quarter(url, "published.mart_svr_rm_quarterly")
    for quarter in CUTS:
        assert published[quarter] == pytest.approx(exports["first"]["revenue"][quarter], abs=0.005)
    shares = dict(
        fetch(
            url,
            "select quarter_start, share from ops.restatements where snapshot_sha256 = %s "
            "and sheet = 'SVR-RM' and metric = 'revenue' and change <> 0",
            (report["sha256"],),
        )
    )
    assert shares == {q: pytest.approx(1 / f - 1, abs=0.0005) for q, f in CUTS.items()}
    manifest = json.loads(
        (
            Path(fetch(url, "select parquet_dir from ops.snapshots where sha256 = %s", (report["sha256"],))[0][0])
            / "manifest.json"
        ).read_text()
    )
    assert manifest["export_order"]["republished_over"] == newer


def test_the_published_export_ingested_again_is_accepted_and_keeps_what_it_restated(exports):
    url = exports["url"]
    sha = fetch(url, "select snapshot_sha256 from ops.published_snapshot")[0][0]
    measured = fetch(
        url,
        "select sheet, quarter_start, metric, change, baseline_sha256 from ops.restatements "
        "where snapshot_sha256 = %s order by 1, 2, 3",
        (sha,),
    )
    again = cli("ingest", str(exports["old"]))  # the same file: nothing to do
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr[-3000:]
    copy = exports["inbox"] / "copy-of-the-published-export.xlsx"
    shutil.copy2(exports["old"], copy)  # the same bytes under another name: a snapshot run, accepted
    result = cli("ingest", str(copy), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["ok"] and report["sha256"] == sha and report["partitions"] == []
    assert (
        fetch(
            url,
            "select sheet, quarter_start, metric, change, baseline_sha256 from ops.restatements "
            "where snapshot_sha256 = %s order by 1, 2, 3",
            (sha,),
        )
        == measured
    )
    assert fetch(url, "select republished from ops.snapshots where sha256 = %s", (sha,)) == [(True,)]
