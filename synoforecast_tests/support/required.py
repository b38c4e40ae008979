"""What a test does when a tool it needs is missing: skip locally, with the reason, and
fail under CI (``CI=true``), where .ci/run installs every tool and a skip would hide a
broken install step."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_tool(reason: str) -> None:
    """Skip (locally) or fail (CI=true) the current test because ``reason``."""
    if in_ci():
        pytest.fail(f"{reason} [CI=true: a missing tool is a failure, not a skip]", pytrace=False)
    pytest.skip(reason)
