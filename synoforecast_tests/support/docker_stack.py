"""A Docker engine of the test's own, the stack's images built from Debian packages, and the
Compose stack of deploy/ on loopback (deploy/smoke/docker-compose.smoke.yml), for
synoforecast_tests/deploy/test_stack_docker.py.

- The engine: ``dockerd --bridge=none --iptables=false`` on a socket of its own (it never
  touches a system engine), started and stopped by the test. Its data root persists in
  ``SYNOFORECAST_DOCKER_ROOT`` (default /var/lib/synoforecast-ci/docker), so layers are
  reused between runs; Docker's build cache is keyed on content, so a reused layer is
  always the one the same inputs would build.
- The bases: deploy/base/debian.sh (debootstrap; tarball cached in
  ``SYNOFORECAST_BASE_CACHE`` for 7 days), python.Dockerfile, postgres.Dockerfile.
- pip inside the builds reaches the index with the host's CA bundle, passed as a BuildKit
  secret (``SYNOFORECAST_BUILD_CA``, default: the system bundle), and, when set,
  ``SYNOFORECAST_BUILD_PIP_CONF`` as the pip.conf secret.
- Every address is 127.0.0.1; ports are chosen free at start.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from synoforecast_tests.deploy.tools import PASSWORD_VARIABLES
from synoforecast_tests.support.required import missing_tool

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROJECT = "synoforecast-smoke"
DEBIAN_IMAGE = "local/debian:bookworm"
PYTHON_IMAGE = "local/python:3.11-bookworm"
POSTGRES_IMAGE = "local/postgres:15-bookworm"
STANDIN_IMAGE = "local/metabase-standin:smoke"
PROMETHEUS_IMAGE = "local/prometheus:bookworm"
ALERTMANAGER_IMAGE = "local/alertmanager:bookworm"
LOCATION = {"repositoryLocationName": "synoforecast", "repositoryName": "__repository__"}
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
SERVICES = (
    "postgres",
    "user-code",
    "dagster-daemon",
    "dagster-webserver",
    "metabase",
    "dbt-docs",
    "metrics",
    "prometheus",
    "alertmanager",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(
    cmd: list[str],
    *,
    env: dict | None = None,
    timeout: float = 900,
    check: bool = True,
    cwd: Path | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess:  # noqa: A002
    result = subprocess.run(cmd, env=env, timeout=timeout, cwd=cwd, input=input, capture_output=True)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd[:6]))} ... exited {result.returncode}:\n"
            f"{result.stdout.decode(errors='replace')[-3000:]}\n"
            f"{result.stderr.decode(errors='replace')[-3000:]}"
        )
    return result


# ---------------------------------------------------------------- tools


def _buildkit_cli(candidate: str) -> bool:
    """A docker client that builds with BuildKit: buildx, or the built-in builder of 18.09-22.x."""
    if subprocess.run([candidate, "buildx", "version"], capture_output=True).returncode == 0:
        return True
    version = subprocess.run([candidate, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"version (\d+)\.", version)
    return bool(found) and 18 <= int(found.group(1)) < 23


@dataclass(frozen=True)
class Tools:
    dockerd: str
    docker: str  # a client that can build with BuildKit (secrets)
    debootstrap: str
    compose: str


def find_tools() -> Tools:
    from synoforecast_tests.deploy.tools import compose_binary

    if os.geteuid() != 0:
        missing_tool("the Docker smoke test starts its own dockerd and must run as root")
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        missing_tool("dockerd is not installed (apt-get install docker.io); .ci/run installs it")
    clients = [c for c in dict.fromkeys([shutil.which("docker"), "/usr/bin/docker"]) if c and Path(c).exists()]
    docker = next((c for c in clients if _buildkit_cli(c)), None)
    if docker is None:
        missing_tool(
            f"no docker client that builds with BuildKit among {clients or ['(none)']} "
            "(apt-get install docker.io, or a docker-buildx plugin)"
        )
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if debootstrap is None:
        missing_tool("debootstrap is not installed (apt-get install debootstrap); .ci/run installs it")
    return Tools(dockerd=dockerd, docker=docker, debootstrap=debootstrap, compose=str(compose_binary()))


# ---------------------------------------------------------------- engine


class Engine:
    """dockerd of the test's own: loopback only (no bridge, no iptables), own socket."""

    def __init__(self, tools: Tools, log: Path):
        self.tools = tools
        self.data_root = Path(os.environ.get("SYNOFORECAST_DOCKER_ROOT", "/var/lib/synoforecast-ci/docker"))
        self.run_dir = Path(os.environ.get("SYNOFORECAST_DOCKER_RUN", "/run/synoforecast-ci"))
        self.sock = self.run_dir / "docker.sock"
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.sock}",
            "DOCKER_BUILDKIT": "1",
            "COMPOSE_DOCKER_CLI_BUILD": "1",
        }

    def docker(self, *args: str, timeout: float = 900, check: bool = True, input: bytes | None = None):  # noqa: A002
        return run([self.tools.docker, *args], env=self.env, timeout=timeout, check=check, input=input)

    def start(self) -> None:
        pidfile = self.run_dir / "dockerd.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), 0)
                raise AssertionError(f"a dockerd of this test is already running ({pidfile}); stop it first")
            except (ProcessLookupError, ValueError):
                pidfile.unlink()
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                self.tools.dockerd,
                "--data-root",
                str(self.data_root),
                "--exec-root",
                str(self.run_dir / "exec"),
                "--pidfile",
                str(pidfile),
                "-H",
                f"unix://{self.sock}",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while self.docker("version", check=False, timeout=30).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None


# ---------------------------------------------------------------- images


def build_secrets() -> list[str]:
    ca = (
        os.environ.get("SYNOFORECAST_BUILD_CA")
        or ssl.get_default_verify_paths().cafile
        or "/etc/ssl/certs/ca-certificates.crt"
    )
    args = ["--secret", f"id=pip_ca,src={ca}"] if ca and Path(ca).is_file() else []
    conf = os.environ.get("SYNOFORECAST_BUILD_PIP_CONF")
    if conf:
        args += ["--secret", f"id=pip_conf,src={conf}"]
    return args


def build_images(engine: Engine, tag: str) -> dict[str, float]:
    """The bases, the platform image `tag`, Prometheus, Alertmanager and the stand-in; seconds per image."""
    timings: dict[str, float] = {}

    def timed(name: str, fn) -> None:
        start = time.monotonic()
        fn()
        timings[name] = round(time.monotonic() - start, 1)

    cache = os.environ.get("SYNOFORECAST_BASE_CACHE", "/var/cache/synoforecast-ci")
    timed(
        "debian_base",
        lambda: run(
            ["bash", str(DEPLOY / "base" / "debian.sh"), DEBIAN_IMAGE],
            env={
                **engine.env,
                "DOCKER": engine.tools.docker,
                "BASE_CACHE_DIR": cache,
                "PATH": f"{Path(engine.tools.debootstrap).parent}:{os.environ['PATH']}",
            },
            timeout=900,
        ),
    )
    build = ["build", "--network", "host", "--progress", "plain"]

    def python_chain() -> None:  # CPU: pip installs the platform's wheels
        timed(
            "python_base",
            lambda: engine.docker(
                *build, "-f", str(DEPLOY / "base" / "python.Dockerfile"), "-t", PYTHON_IMAGE, str(DEPLOY / "base")
            ),
        )
        timed("platform_image", lambda: build_platform_image(engine, tag))
        timed(
            "standin_image",
            lambda: engine.docker(
                *build,
                *build_secrets(),
                "--build-arg",
                f"PYTHON_IMAGE={PYTHON_IMAGE}",
                "-f",
                str(DEPLOY / "smoke" / "standin.Dockerfile"),
                "-t",
                STANDIN_IMAGE,
                str(REPO),
            ),  # fmt: skip
        )

    def debian_chain() -> None:  # mostly apt downloads and unpacking: beside the pip installs
        timed(
            "postgres_image",
            lambda: engine.docker(
                *build, "-f", str(DEPLOY / "base" / "postgres.Dockerfile"), "-t", POSTGRES_IMAGE, str(DEPLOY / "base")
            ),
        )
        for name, image in (("prometheus", PROMETHEUS_IMAGE), ("alertmanager", ALERTMANAGER_IMAGE)):
            timed(
                f"{name}_image",
                lambda name=name, image=image: engine.docker(
                    *build,
                    "--build-arg",
                    f"DEBIAN_IMAGE={DEBIAN_IMAGE}",
                    "-f",
                    str(DEPLOY / "base" / f"{name}.Dockerfile"),
                    "-t",
                    image,
                    str(DEPLOY / name),
                ),  # fmt: skip
            )

    # the two chains share only the Debian base: built side by side (timings are per image)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [pool.submit(python_chain), pool.submit(debian_chain)]:
            done.result()
    return timings


def build_platform_image(engine: Engine, tag: str, *extra: str) -> None:
    engine.docker(
        "build",
        "--network",
        "host",
        "--progress",
        "plain",
        *build_secrets(),
        "--build-arg",
        f"PYTHON_IMAGE={PYTHON_IMAGE}",
        *extra,
        "-f",
        str(DEPLOY / "Dockerfile"),
        "-t",
        tag,
        str(REPO),
        timeout=1800,
    )


def image_size_mb(engine: Engine, tag: str) -> float:
    size = engine.docker("image", "inspect", "-f", "{{.Size}}", tag).stdout.decode().strip()
    return round(int(size) / 1e6, 1)


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    engine: Engine
    workdir: Path
    image: str
    ports: dict[str, int] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    smtp: dict[str, str] = field(default_factory=dict)  # SMTP_* of a relay the test runs on the host

    def __post_init__(self) -> None:
        self.inbox = self.workdir / "inbox"
        self.backups = self.workdir / "backups"
        for folder in (self.inbox, self.backups):
            folder.mkdir(parents=True, exist_ok=True)
        self.inbox.chmod(0o755)  # read by uid 10001 in user-code
        self.backups.chmod(0o777)  # written by the postgres user of the postgres container
        self.ports = {
            name: free_port()
            for name in (
                "SMOKE_PG_PORT",
                "SMOKE_GRPC_PORT",
                "SMOKE_UI_PORT",
                "SMOKE_METABASE_PORT",
                "SMOKE_DBT_DOCS_PORT",
                "SMOKE_METRICS_PORT",
                "SMOKE_PROMETHEUS_PORT",
                "SMOKE_ALERTMANAGER_PORT",
            )
        }
        self.passwords = {name: secrets.token_hex(16) for name in PASSWORD_VARIABLES}
        self.api_key = "mb_" + secrets.token_hex(12)
        self.workspace = self.workdir / "workspace.yaml"
        self.workspace.write_text(
            f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
            f"      port: {self.ports['SMOKE_GRPC_PORT']}\n      location_name: synoforecast\n"
        )
        self.workspace.chmod(0o644)
        self.prometheus_config = self.workdir / "prometheus.yml"
        self.prometheus_config.write_text(self._loopback_prometheus_config())
        self.prometheus_config.chmod(0o644)
        self.env_file = self.workdir / "smoke.env"
        self.write_env()

    def _loopback_prometheus_config(self) -> str:
        """deploy/prometheus/prometheus.yml with the stack's loopback addresses, every 5 s."""
        text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
        for service, port in (
            ("metrics:9109", "SMOKE_METRICS_PORT"),
            ("alertmanager:9093", "SMOKE_ALERTMANAGER_PORT"),
            ("localhost:9090", "SMOKE_PROMETHEUS_PORT"),
        ):
            assert service in text, f"{service} is no longer a target of deploy/prometheus/prometheus.yml"
            text = text.replace(service, f"127.0.0.1:{self.ports[port]}")
        for setting, value in (("scrape_interval", "5s"), ("scrape_timeout", "4s"), ("evaluation_interval", "5s")):
            text, n = re.subn(rf"^(\s*{setting}:) \S+", rf"\1 {value}", text, count=1, flags=re.M)
            assert n == 1, setting
        return text

    def write_env(self) -> None:
        values = {
            line.split("=", 1)[0]: line.split("=", 1)[1]
            for line in (DEPLOY / ".env.example").read_text().splitlines()
            if line and not line.startswith("#") and "=" in line
        }
        values.update(self.passwords)
        values.update({k: str(v) for k, v in self.ports.items()})
        values.update(
            {
                "SYNOFORECAST_IMAGE": self.image,
                "POSTGRES_IMAGE": POSTGRES_IMAGE,
                "METABASE_IMAGE": STANDIN_IMAGE,
                "TZ": "UTC",
                "INBOX_HOST_DIR": str(self.inbox),
                "PGDATA_HOST_DIR": "",
                "DATA_HOST_DIR": "",
                "BACKUP_HOST_DIR": str(self.backups),
                "SMOKE_WORKSPACE": str(self.workspace),
                "DAGSTER_WEBSERVER_URL": f"http://127.0.0.1:{self.ports['SMOKE_UI_PORT']}",
                "METABASE_API_KEY": self.api_key,
                "METABASE_CARD_IDS": "11,12",
                "METABASE_DATABASE_ID": "2",
                "PROMETHEUS_IMAGE": PROMETHEUS_IMAGE,
                "ALERTMANAGER_IMAGE": ALERTMANAGER_IMAGE,
                "SMOKE_PROMETHEUS_CONFIG": str(self.prometheus_config),
                "ALERTMANAGER_WEBHOOK_URL": f"{self.standin}/alertmanager",
                **self.smtp,
            }
        )
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))

    def use_image(self, image: str) -> None:
        self.image = image
        self.write_env()

    # -- compose
    def compose(self, *args: str, timeout: float = 900, check: bool = True, input: bytes | None = None):  # noqa: A002
        return run(
            [
                self.engine.tools.compose,
                "-p",
                PROJECT,
                "--env-file",
                str(self.env_file),
                "-f",
                str(DEPLOY / "docker-compose.yml"),
                "-f",
                str(DEPLOY / "smoke" / "docker-compose.smoke.yml"),
                *args,
            ],
            env={**self.engine.env, "COMPOSE_PROFILES": "monitoring"},  # the whole stack, monitoring too
            timeout=timeout,
            check=check,
            cwd=DEPLOY,
            input=input,
        )

    def up(self, *services: str, timeout: float = 600) -> float:
        """`up -d --wait`: returns the seconds until every service is healthy."""
        start = time.monotonic()
        result = self.compose("up", "-d", "--wait", *services, timeout=timeout, check=False)
        if result.returncode != 0:
            raise AssertionError(f"compose up failed:\n{result.stderr.decode(errors='replace')[-3000:]}\n{self.logs()}")
        return round(time.monotonic() - start, 1)

    def logs(self, tail: int = 60) -> str:
        result = self.compose("logs", "--no-color", "--tail", str(tail), check=False, timeout=120)
        return result.stdout.decode(errors="replace")[-12000:]

    def container(self, service: str) -> str:
        out = self.compose("ps", "-q", service).stdout.decode().split()
        assert out, f"no container for {service}"
        return out[0]

    def exec(self, service: str, *cmd: str, timeout: float = 600, check: bool = True):
        return self.compose("exec", "-T", service, *cmd, timeout=timeout, check=check)

    def down(self, *args: str) -> None:
        self.compose("down", "--remove-orphans", *args, timeout=300, check=False)

    # -- addresses
    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ports['SMOKE_UI_PORT']}"

    @property
    def dbt_docs(self) -> str:
        return f"http://127.0.0.1:{self.ports['SMOKE_DBT_DOCS_PORT']}"

    @property
    def metrics(self) -> str:
        return f"http://127.0.0.1:{self.ports['SMOKE_METRICS_PORT']}/metrics"

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.ports['SMOKE_PROMETHEUS_PORT']}"

    @property
    def standin(self) -> str:
        return f"http://127.0.0.1:{self.ports['SMOKE_METABASE_PORT']}"

    def db_url(self, db: str = "warehouse", role: str = "postgres", port: int | None = None) -> str:
        password = {
            "postgres": "POSTGRES_SUPERUSER_PASSWORD",
            "synoforecast": "SYNOFORECAST_DB_PASSWORD",
            "synoforecast_analyst": "ANALYST_DB_PASSWORD",
        }[role]
        return f"postgresql://{role}:{self.passwords[password]}@127.0.0.1:{port or self.ports['SMOKE_PG_PORT']}/{db}"

    # -- Dagster's GraphQL API
    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = httpx.post(f"{self.ui}/graphql", json={"query": query, "variables": variables or {}}, timeout=120)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def runs(self) -> list[dict]:
        data = self.graphql("""{ runsOrError(limit: 100) { __typename ... on Runs { results {
            runId jobName status startTime endTime creationTime tags { key value } } } } }""")
        return data["runsOrError"]["results"]

    def step_seconds(self, run_id: str) -> dict[str, float]:
        """{step key: seconds} of a finished run (Dagster's step stats)."""
        data = self.graphql(
            """query($id: ID!) { runOrError(runId: $id) { ... on Run { stepStats { stepKey startTime endTime } } } }""",
            {"id": run_id},
        )
        return {
            s["stepKey"]: round(s["endTime"] - s["startTime"], 2)
            for s in data["runOrError"]["stepStats"]
            if s["startTime"] is not None and s["endTime"] is not None
        }

    def wait_for_runs(self, done, what: str, timeout_s: float = 1200, poll_s: float = 1.0) -> list[dict]:
        """Poll the runs until ``done(runs)`` is true; fail on timeout with the logs."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                runs = self.runs()
            except (httpx.HTTPError, AssertionError):  # the webserver restarting
                runs = []
            if runs and done(runs):
                return runs
            if time.monotonic() > deadline:
                summary = [(r["jobName"], r["status"], r["runId"][:8]) for r in runs]
                raise AssertionError(f"timed out waiting for {what}; runs: {summary}\n{self.logs(120)}")
            time.sleep(poll_s)

    def wait_idle(self, timeout_s: float = 900) -> list[dict]:
        """Until no run is queued or in flight (runs the sensors start after a pipeline run)."""
        return self.wait_for_runs(
            lambda rs: all(r["status"] in FINISHED for r in rs), "no run in flight", timeout_s=timeout_s
        )

    def failure_messages(self, run_id: str) -> list[str]:
        """The failure events of a run, as the UI shows them. The webserver answers 1,000 events
        a page (DAGSTER_UI_EVENT_LOAD_CHUNK_SIZE); a run of a few quarters writes more (its dbt
        step one per model and test per quarter), and its failure comes last: every page is read."""
        events, cursor = [], None
        while True:
            data = self.graphql(
                """query($id: ID!, $after: String) { runOrError(runId: $id) { ... on Run {
                eventConnection(afterCursor: $after) { cursor hasMore
                events { __typename ... on MessageEvent { message }
                         ... on ExecutionStepFailureEvent { stepKey error { message } }
                         ... on RunFailureEvent { pipelineFailureError: error { message } } } } } } }""",
                {"id": run_id, "after": cursor},
            )["runOrError"]["eventConnection"]
            events += data["events"]
            if not data["hasMore"] or not data["events"] or data["cursor"] == cursor:
                break
            cursor = data["cursor"]
        return [
            " ".join(
                filter(
                    None,
                    [
                        e.get("stepKey"),
                        e.get("message"),
                        (e.get("error") or {}).get("message"),
                        (e.get("pipelineFailureError") or {}).get("message"),
                    ],
                )
            )[:1500]
            for e in events
            if "Failure" in e["__typename"]
        ]

    def describe_failures(self, runs: list[dict]) -> str:
        return "\n".join(
            f"{r['jobName']} {r['runId'][:8]}: {self.failure_messages(r['runId'])}"
            for r in runs
            if r["status"] == "FAILURE"
        )

    def instigators(self) -> dict[str, dict]:
        data = self.graphql(
            """query($s: RepositorySelector!) { repositoryOrError(repositorySelector: $s) {
            ... on Repository {
              sensors { name sensorState { status ticks(limit: 1) { cursor } typeSpecificData {
                ... on SensorData { lastCursor } } } }
              schedules { name scheduleState { status } } } } }""",
            {"s": LOCATION},
        )["repositoryOrError"]
        out = {
            s["name"]: {
                "status": s["sensorState"]["status"],
                "cursor": (s["sensorState"]["typeSpecificData"] or {}).get("lastCursor"),
            }
            for s in data["sensors"]
        }
        out.update({s["name"]: {"status": s["scheduleState"]["status"]} for s in data["schedules"]})
        return out

    def location_loaded(self) -> bool:
        data = self.graphql("""{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
            locationOrLoadError { __typename } } } } }""")
        entries = data["workspaceOrError"]["locationEntries"]
        return any(
            e["name"] == "synoforecast"
            and e["loadStatus"] == "LOADED"
            and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            for e in entries
        )

    def standin_requests(self) -> list[dict]:
        return httpx.get(f"{self.standin}/_standin/requests", timeout=30).json()


# ---------------------------------------------------------------- docker stats


def _mib(text: str) -> float:
    number, unit = re.match(r"([\d.]+)\s*([KMGT]?i?B)", text.strip()).groups()
    scale = {"B": 1 / 2**20, "KiB": 1 / 1024, "kB": 1 / 1024, "MiB": 1, "MB": 1, "GiB": 1024, "GB": 1024}
    return float(number) * scale.get(unit, 1)


def memory_mib(engine: Engine) -> dict[str, float]:
    """{container name: memory in MiB} from one `docker stats --no-stream`."""
    out = engine.docker("stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", timeout=120).stdout.decode()
    return {
        name: round(_mib(usage.split("/")[0]), 1)
        for name, usage in (line.split("\t") for line in out.splitlines() if "\t" in line)
    }


class PeakMemory:
    """Samples `docker stats` in a thread; ``peak`` holds each container's highest value."""

    def __init__(self, engine: Engine, every_s: float = 2.0):
        self.engine, self.every_s = engine, every_s
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for name, value in memory_mib(self.engine).items():
                    self.peak[name] = max(value, self.peak.get(name, 0.0))
            except (AssertionError, subprocess.TimeoutExpired, AttributeError):
                pass
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=180)


def report(path: Path, key: str, value) -> None:
    """Merge one measurement into the JSON report of the smoke run."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
