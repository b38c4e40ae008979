"""The whole graph on a small sample workbook, against a real PostgreSQL, real dbt and
real statsforecast: forecasts for every cohort, marts that reconcile, idempotent
re-runs, and a refused workbook that changes nothing."""

from __future__ import annotations

import datetime as dt

import openpyxl
import pytest

from synoforecast.lib.forecasting.cohorts import COHORTS
from synoforecast.lib.warehouse.connection import connect
from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast.settings import DBT_PROJECT_DIR
from synoforecast_tests.conftest import fetch, isolated_project, new_database
from synoforecast_tests.support.definitions import reload_definitions

STANDIN_API_KEY = "it-key"

pytestmark = pytest.mark.integration

AS_OF = dt.date(2026, 8, 20)  # export date inside 2026-Q3: Q3 is partial, 2023-Q4..2026-Q2 complete
SPEC = SampleSpec(rows=3000, seed=7, start=dt.date(2023, 10, 1), quarters=12, as_of=AS_OF)

TABLE_CHECKSUM = """select count(*), coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from (
    select {columns} from {table}) t"""
PUBLISHED = {
    "raw.svr_rm": "*",
    "marts.mart_svr_rm_quarterly": "*",
    "marts.mart_svr_rm_customer_quarterly": "*",
    "forecast.forecasts": "cohort, as_of_quarter, target_quarter, series_id, metric, model, yhat, yhat_lo_80, "
    "yhat_hi_80, yhat_lo_95, yhat_hi_95",
}


def checksums(url: str) -> dict[str, tuple]:
    return {t: fetch(url, TABLE_CHECKSUM.format(columns=c, table=t))[0] for t, c in PUBLISHED.items()}


@pytest.fixture(scope="module")
def ingested(pg_server, standin, tmp_path_factory):
    """One full ingest of the sample, with Metabase and Slack pointed at the stand-in."""
    from synoforecast.cli.runner import ingest_workbook

    try:
        with isolated_project(tmp_path_factory.mktemp("pipeline"), new_database(pg_server)) as env:
            yield _ingest(env, standin, ingest_workbook)
    finally:
        reload_definitions()  # without this module's Metabase/Slack variables


def _ingest(project_env, standin, ingest_workbook):
    monkeypatch = project_env["monkeypatch"]
    monkeypatch.setenv("METABASE_URL", standin.url)
    monkeypatch.setenv("METABASE_API_KEY", "it-key")
    monkeypatch.setenv("METABASE_CARD_IDS", "11,12")
    monkeypatch.setenv("METABASE_DATABASE_ID", "2")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{standin.url}/slack/T000/B000/secret")
    standin.warehouse_url = project_env["url"]  # its background schema sync reads the warehouse, as Metabase does
    reload_definitions()  # the code location loads with these variables bound
    standin.reset()
    path = project_env["inbox"] / "sale-out.xlsx"
    stats = write_sample_workbook(path, SPEC)
    package_files = _files(DBT_PROJECT_DIR)
    outcome = ingest_workbook(path, progress=lambda _m: None, quiet=True)
    assert outcome.ok, outcome.error
    return {
        **project_env,
        "path": path,
        "stats": stats,
        "outcome": outcome,
        "package_files": package_files,
        "package_files_after": _files(DBT_PROJECT_DIR),
    }


def _files(folder) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_runtime_files_go_under_the_data_directory_not_the_installed_package(ingested):
    """dbt's build folders, its log and its partial-parse state were written into the package's
    synoforecast_dbt/ (site-packages in an install): now under data/dbt/."""
    assert ingested["package_files_after"] == ingested["package_files"]
    runtime = ingested["data"] / "dbt"
    assert (runtime / "partial_parse.msgpack").exists()
    assert not [p for p in runtime.iterdir() if p.is_dir()]  # each build's folder removed after the build


def test_whole_graph_publishes_reconciled_marts_and_forecasts(ingested):
    url, outcome = ingested["url"], ingested["outcome"]
    assert outcome.partitions[0] == "2023-10-01" and outcome.partitions[-1] == "2026-04-01"

    # raw holds exactly the complete quarters of the workbook, as the generator wrote them
    sheet = ingested["stats"].sheets["SVR-RM"]
    rows_q3 = _rows_in_quarter(ingested["path"], dt.date(2026, 7, 1))
    raw_rows, raw_units = fetch(url, "select count(*), sum(units) from raw.svr_rm")[0]
    assert raw_rows == sheet.rows - rows_q3["rows"]
    assert raw_units == sheet.units_total - rows_q3["units"]

    # marts reconcile: overall = sum of tiers = sum of regions, per quarter
    mismatches = fetch(
        url,
        """
        select o.quarter_start from marts.mart_svr_rm_quarterly o
          join (select quarter_start, sum(units) u from marts.mart_svr_rm_tier_quarterly group by 1) t using (quarter_start)
          join (select quarter_start, sum(units) u from marts.mart_svr_rm_region_quarterly group by 1) r using (quarter_start)
         where o.units <> t.u or o.units <> r.u""",
    )
    assert mismatches == []
    assert fetch(url, "select sum(units) from marts.mart_svr_rm_quarterly")[0][0] == raw_units

    # every cohort has next-quarter forecasts for units and revenue, as of the last complete quarter
    latest = fetch(
        url,
        """select cohort, count(distinct series_id), count(distinct metric), min(target_quarter)
                             from forecast.forecasts where as_of_quarter = '2026-04-01' group by 1""",
    )
    by_cohort = {r[0]: r for r in latest}
    assert set(by_cohort) == {c.name for c in COHORTS}
    for cohort, n_series, n_metrics, target in latest:
        assert n_series >= 1 and n_metrics == 2 and target == dt.date(2026, 7, 1), cohort
    # total and every tier, Unknown (models the tier map does not know) included: one SVR-RM total
    tiers = {t for (t,) in fetch(url, "select distinct tier from marts.mart_svr_rm_tier_quarterly")}
    assert "Unknown" in tiers and by_cohort["svr_rm_overall"][1] == len(tiers) + 1
    intervals = fetch(
        url,
        """select count(*) filter (where yhat_lo_95 <= yhat_lo_80 and yhat_lo_80 <= yhat
                                and yhat <= yhat_hi_80 and yhat_hi_80 <= yhat_hi_95),
                                count(*) filter (where yhat_lo_80 is null), count(*) filter (where history_quarters > 1)
                                from forecast.forecasts where cohort = 'svr_rm_overall'""",
    )[0]
    assert intervals[0] == intervals[2] > 0  # ordered intervals wherever there is more than one quarter of history
    assert (
        intervals[1]
        == fetch(
            url, "select count(*) from forecast.forecasts where cohort = 'svr_rm_overall' and history_quarters = 1"
        )[0][0]
    )

    # forecast_evaluation scores each quarter's forecast (made the quarter before) against actuals
    scores = fetch(url, "select cohort, metric, smape, mape from forecast.evaluation where quarter = '2026-04-01'")
    assert {(c, m) for c, m, *_ in scores} >= {("svr_rm_overall", "units"), ("svr_rm_overall", "revenue")}
    assert all(0 <= s <= 200 for _, _, s, _ in scores if s is not None)

    # publishes are logged per partition; the partial quarter never became a partition
    assert fetch(url, "select count(*) from raw.svr_rm where quarter_start >= '2026-07-01'")[0][0] == 0
    assert (
        fetch(url, "select count(distinct partition_key) from ops.publish_log where target = 'forecast.forecasts'")[0][
            0
        ]
        == 11
    )


def test_metabase_and_slack_receive_the_real_api_calls(ingested, standin):
    calls = standin.calls()
    assert calls[0] == "GET /api/health"
    assert "POST /api/database/2/sync_schema" in calls
    queries = [r for r in standin.requests if r.path.startswith("/api/card/") and r.path.endswith("/query")]
    provisioned = sorted(standin.cards)  # the questions the pipeline provisioned (issue 30), re-run first
    assert len(provisioned) == 4
    assert [r.path for r in queries] == [f"/api/card/{cid}/query" for cid in provisioned] + [
        "/api/card/11/query",
        "/api/card/12/query",
    ]
    assert all(r.json == {"ignore_cache": True} and r.headers.get("x-api-key") == "it-key" for r in queries)
    slack = standin.requests_to("/slack/")
    assert len(slack) == 1
    text = str(slack[0].json)
    assert "svr_rm_overall" in text and "2026-Q3" in text


def test_raw_rows_carry_a_compact_snapshot_id_mapped_one_to_one_to_the_sha256(ingested):
    url, sha = ingested["url"], ingested["outcome"].sha256
    ((snapshot_id,),) = fetch(url, "select snapshot_id from ops.snapshots where sha256 = %s", (sha,))
    for table in ("svr_rm", "consumer", "c2", "top_customers", "region_map", "device_bays"):
        assert fetch(url, f"select distinct snapshot_id from raw.{table}") == [(snapshot_id,)], table
    for table in ("stg_svr_rm", "stg_consumer", "stg_c2"):  # dbt staging follows the raw column
        assert fetch(url, f"select distinct snapshot_id from staging.{table}") == [(snapshot_id,)], table
    assert fetch(
        url, "select count(*) = count(distinct snapshot_id), count(*) = count(distinct sha256) from ops.snapshots"
    ) == [(True, True)]


def test_dbt_runs_once_in_the_pipeline_run(ingested):
    import dagster as dg

    pipeline_run = ingested["outcome"].run_ids[1]
    steps = dg.DagsterInstance.get().get_run_step_stats(pipeline_run)
    dbt_steps = [(s.step_key, s.attempts) for s in steps if "dbt" in s.step_key]
    assert dbt_steps == [("synoforecast_dbt_assets", 1)]


def test_rerunning_the_same_workbook_changes_nothing(ingested):
    from synoforecast.cli.runner import ingest_workbook

    before = checksums(ingested["url"])
    published_rows = fetch(ingested["url"], "select count(*) from ops.publish_log")
    again = ingest_workbook(ingested["path"], progress=lambda _m: None, quiet=True)
    assert again.ok, again.error
    assert checksums(ingested["url"]) == before
    assert again.run_ids == [] and again.partitions == []  # no snapshot run, no dbt, no forecast: nothing to do
    assert fetch(ingested["url"], "select count(*) from ops.publish_log") == published_rows


def _drop_units(source, target):
    wb = openpyxl.load_workbook(source)
    wb["SVR-RM"].delete_cols(8)  # Units
    wb.save(target)


def _truncate(source, target):
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])


def _many_bad_dates(source, target):
    wb = openpyxl.load_workbook(source)
    ws = wb["SVR-RM"]
    for r in range(2, 200):  # ~7% of 3000 rows: above the 2% quarantine share
        ws.cell(r, 1).value = "soon"
    wb.save(target)


def _legacy_xls(source, target):
    target.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 4096)


def _password_protected(source, target):
    target.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512 + "EncryptionInfo".encode("utf-16-le"))


@pytest.mark.parametrize(
    "break_it, name, expected",
    [
        (_drop_units, "broken.xlsx", ["SVR-RM", "'Units'", "broken.xlsx"]),
        (_truncate, "half-copied.xlsx", ["half-copied.xlsx", "truncated"]),
        (_many_bad_dates, "bad-dates.xlsx", ["bad-dates.xlsx", "SVR-RM!A2", "above the 2% allowed"]),
        (_legacy_xls, "old.xls", ["old.xls", "legacy .xls"]),
        (_password_protected, "locked.xlsx", ["locked.xlsx", "password-protected"]),
    ],
)
def test_refused_workbook_leaves_published_tables_byte_for_byte(ingested, break_it, name, expected):
    from synoforecast.cli.runner import ingest_workbook

    before = checksums(ingested["url"])
    broken = ingested["inbox"] / name
    break_it(ingested["path"], broken)
    outcome = ingest_workbook(broken, progress=lambda _m: None, quiet=True)
    assert not outcome.ok and outcome.refused
    for fragment in expected:
        assert fragment in outcome.error, (fragment, outcome.error)
    assert checksums(ingested["url"]) == before
    status = fetch(ingested["url"], "select status, error from ops.snapshots where file like %s", (f"%{name}",))
    assert status[0][0] == "refused" and status[0][1] == outcome.error


def _rows_in_quarter(path, quarter_start: dt.date) -> dict:
    wb = openpyxl.load_workbook(path, read_only=True)
    rows = units = 0
    for row in wb["SVR-RM"].iter_rows(min_row=2, values_only=True):
        day = row[0].date() if isinstance(row[0], dt.datetime) else row[0]
        if day >= quarter_start:
            rows += 1
            units += row[7]
    return {"rows": rows, "units": units}


def test_reexport_rematerialises_only_changed_quarters_and_quarantines_bad_rows(ingested):
    import dagster as dg

    from synoforecast.cli.runner import ingest_workbook

    url = ingested["url"]
    wb = openpyxl.load_workbook(ingested["path"])
    ws = wb["SVR-RM"]
    target_row = next(r for r in range(2, ws.max_row + 1) if _as_date(ws.cell(r, 1).value) >= dt.date(2025, 4, 1))
    ws.cell(target_row, 8).value = ws.cell(target_row, 8).value + 100  # a correction in 2025-Q2
    ws.cell(target_row + 1, 1).value = "31.02.2025"  # not a date: quarantined (1 row of 3000 < 2%)
    bad_row = target_row + 1
    corrected = ingested["inbox"] / "sale-out-corrected.xlsx"
    wb.save(corrected)
    units_before = fetch(url, "select sum(units) from raw.svr_rm where quarter_start = '2025-04-01'")[0][0]

    outcome = ingest_workbook(corrected, progress=lambda _m: None, quiet=True)
    assert outcome.ok, outcome.error
    assert outcome.manifest["changed_quarters"] == ["2025-Q2"]
    assert outcome.partitions[0] == "2025-04-01" and outcome.partitions[-1] == "2026-04-01"

    units_after = fetch(url, "select sum(units) from raw.svr_rm where quarter_start = '2025-04-01'")[0][0]
    removed = _units_at(ingested["path"], bad_row)
    assert units_after == units_before + 100 - removed
    assert fetch(url, "select cell, reason from ops.quarantine where snapshot_sha256 = %s", (outcome.sha256,)) == [
        (f"SVR-RM!A{bad_row}", "Date is not a date: '31.02.2025'")
    ]
    changed, baseline = fetch(
        url, "select changed_quarters, baseline_sha256 from ops.snapshots where sha256 = %s", (outcome.sha256,)
    )[0]
    assert changed == ["2025-04-01", "2025-07-01", "2025-10-01", "2026-01-01", "2026-04-01"]  # forecasts after it too
    assert baseline == ingested["outcome"].sha256

    records = (
        dg.DagsterInstance.get()
        .get_records_for_run(outcome.run_ids[0], of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        .records
    )
    results = {
        r.event_log_entry.dagster_event.event_specific_data.check_name: r.event_log_entry.dagster_event.event_specific_data.passed
        for r in records
    }
    assert results["snapshot_quarantine"] is False
    assert results["snapshot_row_count_delta"] is True and results["snapshot_duplicate_share"] is True


def _as_date(value):
    return value.date() if isinstance(value, dt.datetime) else value


def _units_at(path, row: int) -> int:
    return openpyxl.load_workbook(path, read_only=True)["SVR-RM"].cell(row, 8).value


def test_contract_check_reads_the_loaded_rows_quarter_by_quarter_and_names_a_bad_value(ingested):
    from synoforecast.lib.ingest.contract import SHEETS_BY_TABLE
    from synoforecast.lib.ingest.validation import validate_quarters, validate_table

    url, spec = ingested["url"], SHEETS_BY_TABLE["svr_rm"]
    quarters = [q for (q,) in fetch(url, "select distinct quarter_start from raw.svr_rm order by 1")]
    clean = validate_table(url, spec, quarters)
    assert clean.problems == []
    assert clean.rows_checked == fetch(url, "select count(*) from raw.svr_rm")[0][0]

    victim, tier = fetch(
        url, "select source_row, tier from raw.svr_rm where quarter_start = '2025-04-01' order by source_row limit 1"
    )[0]
    with connect(url) as conn:
        conn.execute("update raw.svr_rm set tier = 'T9' where source_row = %s", (victim,))
        conn.commit()
    try:
        broken = validate_table(url, spec, quarters)
        by_quarter = validate_quarters(url, spec, quarters)  # one batch: every quarter in one read
        one_by_one = validate_quarters(url, spec, quarters, batch_rows=1)  # a read per quarter
    finally:
        with connect(url) as conn:
            conn.execute("update raw.svr_rm set tier = %s where source_row = %s", (tier, victim))
            conn.commit()
    assert broken.rows_checked == clean.rows_checked
    assert len(broken.problems) == 1
    assert broken.problems[0].startswith("2025-04-01 tier") and "'T9'" in broken.problems[0]
    for checked in (by_quarter, one_by_one):  # the failure is on its row's quarter, and only there
        assert {q for q, v in checked.items() if v.problems} == {dt.date(2025, 4, 1)}
        assert checked[dt.date(2025, 4, 1)].problems == broken.problems
        assert sum(v.rows_checked for v in checked.values()) == clean.rows_checked
