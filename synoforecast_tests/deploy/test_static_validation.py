"""Offline validation of deploy/: Compose 2.20 accepts the stack with .env.example as
.env (and rejects broken copies), hadolint passes the Dockerfile, shellcheck passes
every shell script, and .env.example documents every variable."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from synoforecast_tests.deploy.tools import DEPLOY, compose_binary, hadolint_binary, shellcheck_binary

SERVICES = {"postgres", "user-code", "dagster-daemon", "dagster-webserver", "metabase", "dbt-docs"}

# every setting the platform reads (docs/operations.md) and every stack secret
PLATFORM_VARIABLES = {
    "SYNOFORECAST_PARTITIONS_START",
    "SYNOFORECAST_FISCAL_YEAR_START_MONTH",
    "SYNOFORECAST_TOP_CUSTOMERS_N",
    "SYNOFORECAST_QUARANTINE_MAX_SHARE",
    "SYNOFORECAST_DBT_THREADS",
    "METABASE_URL",
    "METABASE_API_KEY",
    "METABASE_USER",
    "METABASE_PASSWORD",
    "METABASE_CARD_IDS",
    "METABASE_DASHBOARD_IDS",
    "METABASE_DATABASE_ID",
    "SLACK_WEBHOOK_URL",
    "TEAMS_WEBHOOK_URL",
    "N8N_WEBHOOK_URL",
    "POSTGRES_SUPERUSER_PASSWORD",
    "SYNOFORECAST_DB_PASSWORD",
    "ANALYST_DB_PASSWORD",
    "DAGSTER_PG_PASSWORD",
    "METABASE_DB_PASSWORD",
}
# set inside the stack by docker-compose.yml itself (derived from the ones above)
STACK_SET = {
    "SYNOFORECAST_WAREHOUSE_URL",
    "SYNOFORECAST_DATA_DIR",
    "SYNOFORECAST_INBOX",
    "SYNOFORECAST_HOME",
    "DAGSTER_HOME",
}
SECRET_NAME = re.compile(r"PASSWORD|API_KEY|WEBHOOK|SECRET|TOKEN")


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def _stack_copy(tmp_path: Path, with_env: bool = True) -> Path:
    target = tmp_path / "deploy"
    shutil.copytree(DEPLOY, target, ignore=shutil.ignore_patterns("helm", "*.md", "__pycache__"))
    if with_env:
        shutil.copyfile(DEPLOY / ".env.example", target / ".env")
    return target


def _compose(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(compose_binary()), "--project-directory", str(folder), "-f", str(folder / "docker-compose.yml"), *args],
        cwd=folder,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    folder = _stack_copy(tmp_path_factory.mktemp("compose"))
    version = subprocess.run([str(compose_binary()), "version"], check=False, capture_output=True, text=True)
    assert "v2.20.3" in version.stdout, version.stdout
    result = _compose(folder, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_2_20_accepts_the_stack_with_env_example(rendered):
    assert set(rendered["services"]) == SERVICES


def test_every_service_has_a_memory_limit_restart_policy_and_no_cpus(rendered):
    for name, service in rendered["services"].items():
        assert int(service["mem_limit"]) > 0, name
        assert service.get("restart") == "unless-stopped", name
        assert "cpus" not in service and "cpu_count" not in service, name
        assert "deploy" not in service, name  # deploy.resources is Swarm syntax, ignored/rejected on DSM
        assert "healthcheck" in service or name in {"user-code", "dagster-daemon", "dagster-webserver"}, name


def test_no_docker_socket_and_inbox_read_only_in_code_server_only(rendered):
    for name, service in rendered["services"].items():
        for volume in service.get("volumes", []):
            assert "docker.sock" not in str(volume.get("source", "")), name
        inbox = [v for v in service.get("volumes", []) if v["target"] == "/inbox"]
        if name == "user-code":
            assert len(inbox) == 1 and inbox[0].get("read_only") is True
        else:
            assert not inbox, f"{name} must not see the inbox"


def test_dagster_services_share_storage_and_code_location(rendered):
    services = rendered["services"]
    for name in ("user-code", "dagster-daemon", "dagster-webserver"):
        env = services[name]["environment"]
        assert env["DAGSTER_HOME"] == "/data/dagster_home"
        assert env["SYNOFORECAST_WAREHOUSE_URL"].startswith("postgresql://synoforecast:")
        assert env["SYNOFORECAST_WAREHOUSE_URL"].endswith("@postgres:5432/warehouse")
        assert any(v["target"] == "/data" for v in services[name]["volumes"])
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["user-code"]["command"][:3] == ["dagster", "api", "grpc"]
    assert "synoforecast.definitions" in services["user-code"]["command"]
    for name in ("dagster-daemon", "dagster-webserver"):
        assert "/app/deploy/workspace.yaml" in services[name]["command"]
    # separate databases for Dagster storage, the warehouse and Metabase
    assert services["user-code"]["environment"]["DAGSTER_PG_DB"] == "dagster"
    assert services["metabase"]["environment"]["MB_DB_DBNAME"] == "metabase"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_the_dbt_docs_service_reads_the_image_only(rendered):
    """The page ships in the image (deploy/Dockerfile): no database, volume or secret to reach it."""
    docs = rendered["services"]["dbt-docs"]
    assert docs["command"] == ["synoforecast", "dbt-docs", "serve", "--host", "0.0.0.0", "--port", "8580"]
    assert docs["environment"]["SYNOFORECAST_SERVICE"] == "dbt-docs"  # healthcheck.sh's probe
    assert docs["healthcheck"]["test"] == ["CMD", "/app/deploy/healthcheck.sh"]
    assert not docs.get("volumes") and "depends_on" not in docs
    assert not any(SECRET_NAME.search(name) or "PG" in name for name in docs["environment"])
    assert [(p["target"], p["published"]) for p in docs["ports"]] == [(8580, "8580")]
    assert int(docs["mem_limit"]) <= 128 * 2**20


def test_env_example_lists_every_variable_without_secret_values():
    example = _env_example()
    compose_text = (DEPLOY / "docker-compose.yml").read_text()
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", compose_text))
    assert referenced <= set(example), f"missing from .env.example: {sorted(referenced - set(example))}"
    assert PLATFORM_VARIABLES <= set(example), sorted(PLATFORM_VARIABLES - set(example))
    for name in STACK_SET:
        assert name in compose_text, name
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value == "", f"{key} must be empty in .env.example"


def test_compose_2_20_rejects_broken_copies(tmp_path):
    # the real binary is used: the wrapper script would exit 0 on all of these
    no_env = _stack_copy(tmp_path / "a", with_env=False)
    result = _compose(no_env, "config", "--quiet")
    assert result.returncode != 0 and "required variable" in result.stderr and "in .env" in result.stderr

    typo = _stack_copy(tmp_path / "b")
    text = (typo / "docker-compose.yml").read_text()
    (typo / "docker-compose.yml").write_text(text.replace("mem_limit:", "mem_limt:", 1))
    result = _compose(typo, "config", "--quiet")
    assert result.returncode != 0, "an unknown service key must be refused"

    bad_yaml = _stack_copy(tmp_path / "c")
    (bad_yaml / "docker-compose.yml").write_text(text + "\n  : [unclosed\n")
    assert _compose(bad_yaml, "config", "--quiet").returncode != 0


DOCKERFILES = ["Dockerfile", "base/python.Dockerfile", "base/postgres.Dockerfile", "smoke/standin.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_passes_the_dockerfiles(dockerfile):
    result = subprocess.run(
        [str(hadolint_binary()), "--no-color", "--failure-threshold", "info", str(DEPLOY / dockerfile)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_a_no_op(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install dagster\n")
    result = subprocess.run(
        [str(hadolint_binary()), "--no-color", str(bad)], check=False, capture_output=True, text=True
    )
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_dockerfile_essentials():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, flags=re.MULTILINE | re.IGNORECASE)
    assert len(stages) >= 2, "multi-stage"
    assert "slim" in re.search(r"ARG PYTHON_IMAGE=(\S+)", text).group(1)
    assert re.search(r"^USER\s+(?!root|0\b)\S+", text, flags=re.MULTILINE), "non-root user"
    assert re.search(r"^HEALTHCHECK\s", text, flags=re.MULTILINE)
    assert "ensure_manifest()" in text and "manifest.json" in text, "the dbt manifest is parsed at build"
    assert re.search(r"pip install [^\n]*--no-deps[^\n]* \.", text), "the package is installed as a wheel"
    assert not re.search(r"pip install[^\n]*\s(-e|--editable)\s", text), "not editable"
    # a CA bundle or pip.conf is a BuildKit secret: never COPY'd into a layer
    assert "--mount=type=secret,id=pip_ca" in text and "--mount=type=secret,id=pip_conf" in text
    assert not re.search(r"^(COPY|ADD)\s[^\n]*(\.crt|\.pem|pip\.conf)", text, flags=re.MULTILINE)
    assert not re.search(r"^(ENV|ARG)\s+\S*(PASSWORD|API_KEY|WEBHOOK)", text, flags=re.MULTILINE), "no secret baked in"


def test_shellcheck_passes_every_script():
    scripts = sorted(DEPLOY.rglob("*.sh"))
    assert {p.name for p in scripts} >= {
        "backup.sh",
        "restore.sh",
        "healthcheck.sh",
        "preflight.sh",
        "10-synoforecast.sh",
    }
    result = subprocess.run(
        [str(shellcheck_binary()), "--severity=style", *map(str, scripts)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm_values_target_the_k8s_run_launcher_and_this_image():
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert (
        deployment["dagsterApiGrpcArgs"][-2:] == ["-m", "synoforecast.definitions"]
        or "synoforecast.definitions" in deployment["dagsterApiGrpcArgs"]
    )
    assert "synoforecast" in deployment["image"]["repository"]
    assert values["postgresql"]["enabled"] is False
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"


def test_the_dask_cluster_is_the_one_the_helm_values_point_the_fits_at(tmp_path):
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True  # the run pods get the variable
    cluster = yaml.safe_load((DEPLOY / "helm" / "dask-cluster.yaml").read_text())
    assert cluster["kind"] == "DaskCluster"
    port = next(p["port"] for p in cluster["spec"]["scheduler"]["service"]["ports"] if p["name"] == "tcp-comm")
    address = f"tcp://{cluster['metadata']['name']}-scheduler:{port}"  # the operator's service name
    assert env["SYNOFORECAST_DASK_SCHEDULER"] == address
    from synoforecast.settings import load_settings

    env = {"SYNOFORECAST_HOME": str(tmp_path), "SYNOFORECAST_DASK_SCHEDULER": address}
    assert load_settings(env).dask_scheduler == address
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    for role in ("scheduler", "worker"):
        (container,) = cluster["spec"][role]["spec"]["containers"]
        assert container["image"] == image, role  # same versions on both sides
        assert container["args"][:2] == ["dask", role]  # the image has `dask`, not `dask-worker`
    assert "EXTRAS" in (DEPLOY / "Dockerfile").read_text()
