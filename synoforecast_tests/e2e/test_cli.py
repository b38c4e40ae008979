"""The `synoforecast` command as users run it: a real process, real files, exit codes."""

import csv
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import openpyxl
import pytest

from synoforecast.sample.generator import SampleSpec, write_sample_workbook

CLI = str(Path(sys.executable).with_name("synoforecast"))


def run(*args, env=None, timeout=600):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "sample.xlsx"
    result = run("sample-workbook", "--out", str(path), "--rows", "4000", "--seed", "3", "--quarters", "20")
    assert result.returncode == 0, result.stderr
    return path, json.loads(result.stdout)


def test_sample_workbook_is_reproducible_and_covers_20_quarters(sample, tmp_path):
    path, stats = sample
    again = tmp_path / "again.xlsx"
    result = run("sample-workbook", "--out", str(again), "--rows", "4000", "--seed", "3", "--quarters", "20")
    assert result.returncode == 0
    assert again.read_bytes() == path.read_bytes()
    assert len(stats["sheets"]["SVR-RM"]["quarters"]) == 20
    assert set(stats["sheets"]) == {"SVR-RM", "Consumer", "C2", "Top Customers", "Region Map", "Device Bays"}


def test_dry_run_json_reports_exactly_what_the_generator_wrote(sample):
    path, stats = sample
    result = run("ingest", str(path), "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert report["ok"] is True and report["error"] is None and len(report["sha256"]) == 64
    for name, written in stats["sheets"].items():
        got = report["sheets"][name]
        assert got["rows_read"] == got["rows_loaded"] == written["rows"], name
        assert got["duplicates_removed"] == 0 and got["rows_quarantined"] == 0
        assert got["unknown_models"] == written["unknown_models"], name
        assert got["units_total"] == written["units_total"], name
        assert got["revenue_total"] == pytest.approx(written["revenue_total"], abs=0.005), name
        assert got["quarters"] == written["quarters"], name
    assert report["ignored_sheets"] == [] and report["hidden_sheets"] == []  # the same fields as --dry-run


def test_refused_workbook_exits_non_zero_with_a_short_error_naming_sheet_and_column(sample, tmp_path):
    path, _ = sample
    broken = tmp_path / "no-revenue.xlsx"
    wb = openpyxl.load_workbook(path)
    wb["SVR-RM"].delete_cols(9)  # Revenue (USD)
    wb.save(broken)
    result = run("ingest", str(broken), "--dry-run")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no-revenue.xlsx" in result.stderr and "'SVR-RM'" in result.stderr and "Revenue (USD)" in result.stderr

    as_json = run("ingest", str(broken), "--dry-run", "--json")
    assert as_json.returncode == 2
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and "Revenue (USD)" in report["error"]


def test_not_a_workbook_is_refused(tmp_path):
    fake = tmp_path / "report.xlsx"
    fake.write_text("this is not a spreadsheet")
    result = run("ingest", str(fake), "--dry-run")
    assert result.returncode == 2
    assert "report.xlsx" in result.stderr and "corrupt" in result.stderr and "Traceback" not in result.stderr


def test_forecast_command_writes_points_and_intervals(tmp_path):
    source = tmp_path / "series.csv"
    with open(source, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["unique_id", "ds", "y"])
        start = dt.date(2019, 1, 1)
        for i in range(24):
            quarter = dt.date(start.year + (i // 4), 1 + 3 * (i % 4), 1)
            writer.writerow(["a", quarter.isoformat(), 100 + 5 * i + (40 if i % 4 == 3 else 0)])
            writer.writerow(["b", quarter.isoformat(), 50 + i])
    out = tmp_path / "forecast.csv"
    result = run("forecast", "--input", str(source), "--output", str(out), "--horizon", "2", "--level", "80", "95")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(out)))
    assert [r["ds"] for r in rows if r["unique_id"] == "a"] == ["2025-01-01", "2025-04-01"]
    for column in ("yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"):
        assert column in rows[0]
    assert all(float(r["yhat_lo_95"]) <= float(r["yhat"]) <= float(r["yhat_hi_95"]) for r in rows)


def test_forecast_command_names_the_bad_row(tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text("unique_id,ds,y\na,2024-01-01,1\na,2024-04-01,abc\n")
    result = run("forecast", "--input", str(source), "--output", str(tmp_path / "o.csv"))
    assert result.returncode == 2
    assert "line 3" in result.stderr and "abc" in result.stderr and "Traceback" not in result.stderr


def _env(tmp_path, **extra):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNOFORECAST_", "METABASE_", "DAGSTER_"))}
    env.update({"SYNOFORECAST_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path / "dh"), **extra})
    env.setdefault("SYNOFORECAST_FORECAST_WORKERS", os.environ.get("SYNOFORECAST_FORECAST_WORKERS", "1"))  # conftest.py
    return env


def test_ingest_json_materialises_through_dagster_and_prints_one_object(tmp_path, pg_url):
    path = tmp_path / "small.xlsx"
    write_sample_workbook(
        path, SampleSpec(rows=800, seed=5, start=dt.date(2024, 1, 1), quarters=8, as_of=dt.date(2025, 12, 20))
    )
    result = run("ingest", str(path), "--json", env=_env(tmp_path, SYNOFORECAST_WAREHOUSE_URL=pg_url), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    # not a terminal: dbt's console lines and the step logs go to a log file, stderr keeps the progress
    assert " START sql " not in result.stderr and "OK created sql" not in result.stderr
    assert len(result.stderr.splitlines()) < 15, result.stderr[-3000:]
    (log,) = (tmp_path / "data" / "logs").glob("ingest-*.log")
    assert " START sql " in log.read_text() and str(log) in result.stderr
    assert report["ok"] is True and report["partitions"][0] == "2024-01-01" and report["partitions"][-1] == "2025-07-01"
    assert len(report["run_ids"]) == 2
    import psycopg

    with psycopg.connect(pg_url) as conn:
        cohorts = conn.execute(
            "select count(distinct cohort) from forecast.forecasts where as_of_quarter = '2025-07-01'"
        ).fetchone()[0]
    assert cohorts == 5
    runs = list((tmp_path / "dh").rglob("*.db"))
    assert runs, "runs are recorded in the persistent DAGSTER_HOME"


def test_embedded_warehouse_is_started_under_the_data_folder_and_reused():
    # pgserver runs PostgreSQL as user 'pgserver' when started by root, so its folder must be
    # traversable: a plain /tmp folder, not pytest's private (0700) basetemp
    tmp_path = Path(tempfile.mkdtemp(prefix="synoforecast-embedded-"))
    env = _env(tmp_path)
    first = run("warehouse-url", env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert str(tmp_path / "data" / "pgdata") in first.stdout
    second = run("warehouse-url", env=env, timeout=300)
    assert second.stdout == first.stdout
    import pgserver
    import psycopg

    try:
        with psycopg.connect(first.stdout.strip()) as conn:
            schemas = {r[0] for r in conn.execute("select schema_name from information_schema.schemata")}
        assert {"raw", "forecast", "ops"} <= schemas
    finally:
        pgserver.get_server(str(tmp_path / "data" / "pgdata"), cleanup_mode="stop").cleanup()
        shutil.rmtree(tmp_path, ignore_errors=True)


# ------------------------------------------------------------------ issue 12: small truths


def test_help_lists_every_command_and_usage_errors_are_not_refusals():
    from synoforecast.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    shown = run("--help")
    assert shown.returncode == 0
    for name in commands:
        assert f"\n    {name}" in shown.stdout, name
    assert {"warehouse", "doctor", "backtest"} <= set(commands)
    for wrong in (["nope"], ["ingest"], ["ingest", "x.xlsx", "--no-such-flag"], ["warehouse", "restart"]):
        result = run(*wrong)
        assert result.returncode == 64, (wrong, result.returncode)  # 2 means "refused"
        assert "usage:" in result.stderr


def test_ingest_table_columns_never_run_together():
    from synoforecast.cli.main import ingest_table

    big = {
        "rows_read": 1_000_000,
        "rows_loaded": 999_999,
        "duplicates_removed": 1,
        "rows_quarantined": 0,
        "unknown_models": 12_345,
        "units_total": 123_456_789,
        "revenue_total": 9_876_543_210.5,
        "quarters": ["2021-Q1", "2026-Q3"],
    }
    lines = ingest_table({"SVR-RM": big, "C2": {**big, "revenue_total": 0.0}})
    header, row = lines[0].split(), lines[1].split()
    assert header == ["sheet", "rows", "read", "loaded", "dupes", "quarant.", "unknown", "units", "revenue", "quarters"]
    assert row == [
        "SVR-RM",
        "1,000,000",
        "999,999",
        "1",
        "0",
        "12,345",
        "123,456,789",
        "9,876,543,210.50",
        "2021-Q1..2026-Q3",
    ]
    assert len({len(line) for line in lines[1:]}) == 1


def test_the_demo_names_the_top_customers_and_ends_with_the_svr_rm_narrative(tmp_path, pg_url):
    """README's first command, end to end on a small sample: forecasts by name, then in words."""
    import re

    result = run("demo", "--rows", "2000", env=_env(tmp_path, SYNOFORECAST_WAREHOUSE_URL=pg_url), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    customers = out[out.index("svr_rm_top_customers - ") : out.index("regional - ")].splitlines()[1:]
    named = [line for line in customers if re.match(r"^\s+[A-Za-z].* \(\d{5}\)\s", line)]
    assert len(named) >= 3, out  # e.g. "Nordlicht Engineering Ltd (18427)   230   62..399   635,082"
    assert "SVR-RM total (total)" in out and "All other customers (all_other)" in out
    heading, *text = out.rstrip().split("\n\n")[-1].splitlines()
    assert re.fullmatch(r"svr_rm_overall · revenue · \d{4}-Q\d:", heading), heading
    story = " ".join(line.strip() for line in text)
    assert story.startswith("SVR-RM rack-mount servers: revenue for ") and "forecast at $" in story, story
    assert "Warning" not in result.stderr, result.stderr  # e.g. platformdirs' RuntimeDirWarning as root


def test_outside_the_stack_a_command_says_in_one_line_what_it_needs(tmp_path, repo_root, pg_url):
    """The image's DAGSTER_HOME holds the Compose stack's instance (DAGSTER_PG_* from the
    stack's environment), and its /inbox is read-only: `docker run <image> synoforecast demo`."""
    stack_home = tmp_path / "stack_home"
    stack_home.mkdir()
    shutil.copyfile(repo_root / "deploy" / "dagster.yaml", stack_home / "dagster.yaml")
    result = run("demo", "--rows", "100", env=_env(tmp_path, DAGSTER_HOME=str(stack_home)), timeout=120)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: the Dagster instance in DAGSTER_HOME={stack_home} reads DAGSTER_PG_DB, "), line
    assert all(f"DAGSTER_PG_{v}" in line for v in ("HOST", "PORT", "USER", "PASSWORD", "DB")), line
    assert "docker compose exec" in line and "set DAGSTER_HOME to a folder of your own" in line

    blocker = tmp_path / "a-file"  # the inbox cannot be created: a file stands where its parent should be
    blocker.write_text("")
    inbox = blocker / "inbox"
    env = _env(tmp_path, SYNOFORECAST_INBOX=str(inbox), SYNOFORECAST_WAREHOUSE_URL=pg_url)
    result = run("demo", "--rows", "100", env=env, timeout=300)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot write the sample workbook {inbox}/sample-sale-out-"), result.stderr
    assert "set SYNOFORECAST_INBOX to a folder of your own" in last
    for noise in ("Traceback", "Exception ignored", "Warning"):
        assert noise not in result.stderr, result.stderr


def test_the_demos_next_step_works_without_an_activated_venv(monkeypatch):
    from synoforecast.cli.main import _own_command

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    command = _own_command()
    assert Path(command).is_absolute() and Path(command).exists()
    assert subprocess.run([command, "--help"], capture_output=True, timeout=60).returncode == 0


def test_warehouse_status_and_stop_manage_the_embedded_postgres():
    tmp_path = Path(tempfile.mkdtemp(prefix="synoforecast-lifecycle-"))
    env = _env(tmp_path)
    try:
        before = run("warehouse", "status", env=env)
        assert before.returncode == 0 and "not created yet" in before.stdout
        assert run("warehouse", "url", env=env, timeout=300).returncode == 0
        running = run("warehouse", "status", env=env)
        assert "running (pid" in running.stdout, running.stdout + running.stderr
        stopped = run("warehouse", "stop", env=env, timeout=120)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
        after = run("warehouse", "status", env=env)
        assert "stopped; data in" in after.stdout
        assert "was not running" in run("warehouse", "stop", env=env).stdout
    finally:
        import pgserver

        pgserver.get_server(str(tmp_path / "data" / "pgdata"), cleanup_mode="stop").cleanup()
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_ui_starts_without_misleading_warnings(tmp_path):
    import socket
    import time

    from synoforecast_tests.support.processes import stop

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "ui.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [CLI, "ui", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(tmp_path),
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and "Serving dagster-webserver" not in log.read_text():
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(1)
        finally:
            stop(proc, grace_s=60, group=True)
    text = log.read_text()
    assert "Serving dagster-webserver" in text
    assert "will not be used to configure Dagster" not in text  # it is: copied into DAGSTER_HOME
    assert "superseded" not in text
