"""The image's entrypoint and health-check scripts, run with bash outside a container."""

from __future__ import annotations

import os
import subprocess

import pytest

from synoforecast_tests.deploy.tools import DEPLOY, PASSWORD_VARIABLES

SCRIPTS = DEPLOY / "scripts"


@pytest.mark.parametrize("in_the_stack", [True, False])
def test_entrypoint_installs_the_instance_config_and_execs_the_command(tmp_path, in_the_stack):
    """In the stack (DAGSTER_PG_HOST set) the image's instance config replaces the home's; a
    command run outside it keeps the home it was given (the CLI says what it lacks)."""
    home = tmp_path / "data" / "dagster_home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PG_")},
        "DAGSTER_HOME": str(home),
        "NUMBA_CACHE_DIR": str(tmp_path / "data" / "numba"),
        "SYNOFORECAST_INSTANCE_TEMPLATE": str(DEPLOY / "dagster.yaml"),
        **({"DAGSTER_PG_HOST": "postgres"} if in_the_stack else {}),
    }
    (home).mkdir(parents=True)
    (home / "dagster.yaml").write_text("stale: from an older image\n")
    result = subprocess.run(
        ["bash", str(SCRIPTS / "entrypoint.sh"), "sh", "-c", "echo started $0", "ok"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started ok"
    expected = (DEPLOY / "dagster.yaml").read_text() if in_the_stack else "stale: from an older image\n"
    assert (home / "dagster.yaml").read_text() == expected
    assert (tmp_path / "data" / "numba").is_dir()
    assert not list(home.glob(".dagster.yaml.*")), "no temporary file left behind"


def test_healthcheck_refuses_an_unknown_service():
    result = subprocess.run(
        ["bash", str(SCRIPTS / "healthcheck.sh")],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "SYNOFORECAST_SERVICE": "nonsense"},
        timeout=60,
    )
    assert result.returncode == 2 and "unknown SYNOFORECAST_SERVICE" in result.stderr


def test_healthcheck_fails_when_the_webserver_is_down():
    result = subprocess.run(
        ["bash", str(SCRIPTS / "healthcheck.sh")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYNOFORECAST_SERVICE": "webserver", "DAGSTER_WEBSERVER_PORT": "9"},
    )
    assert result.returncode != 0


def preflight(env_file):
    """deploy/scripts/preflight.sh on an .env file, with only the system's tools on PATH."""
    return subprocess.run(
        ["bash", str(SCRIPTS / "preflight.sh"), str(env_file)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
    )


def test_preflight_reports_every_empty_password(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text((DEPLOY / ".env.example").read_text())
    result = preflight(env_file)
    assert result.returncode == 1
    for name in PASSWORD_VARIABLES:
        assert f"{name} is empty" in result.stderr
    filled = "\n".join(
        line + ("a1b2c3d4e5f6a7b8c9d0" + line[:3] if line.endswith("PASSWORD=") else "")
        for line in env_file.read_text().splitlines()
    )
    filled = filled.replace("/volume1/", f"{tmp_path}/")
    for sub in (
        "sales/synoforecast-inbox",
        "docker/synoforecast/pgdata",
        "docker/synoforecast/data",
        "docker/synoforecast/backups",
    ):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    env_file.write_text(filled + "\n")
    result = preflight(env_file)
    assert result.returncode == 0, result.stderr
    assert "preflight: ok" in result.stdout
