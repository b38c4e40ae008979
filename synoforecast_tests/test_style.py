"""Style: ruff's lint and formatter over the whole repository, as configured in pyproject.toml."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synoforecast_tests.support.required import missing_tool

REPO = Path(__file__).resolve().parents[1]


def _ruff() -> str:
    beside = Path(sys.executable).with_name("ruff")  # the dev extra's, in this venv
    found = str(beside) if beside.exists() else shutil.which("ruff")
    if found is None:
        missing_tool("ruff is not installed (it comes with the dev extra: pip install -e '.[dev]')")
    return found


@pytest.mark.parametrize(
    "command", [["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]], ids=["lint", "format"]
)
def test_the_repository_passes_ruff(command):
    result = subprocess.run([_ruff(), *command], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"ruff {' '.join(command)} found:\n{result.stdout[-6000:]}{result.stderr[-2000:]}"
