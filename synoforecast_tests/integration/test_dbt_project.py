"""The dbt project's own checks, with real dbt on a throwaway PostgreSQL: the dbt unit tests of
int_top_customers (models/intermediate/_intermediate.yml) and sqlfluff over the models
(.sqlfluff at the repository root, dbt templater)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "synoforecast_dbt"
BIN = Path(sys.executable).parent  # dbt and sqlfluff of this interpreter's environment
UNIT_TESTS = {"int_top_customers_workbook_list", "int_top_customers_trailing_top_n"}


def dbt_env(url: str, tmp: Path, **extra: str) -> dict[str, str]:
    """profiles.yml's variables for `url`; dbt's target and logs under `tmp`, never in the package."""
    parts = conninfo_to_dict(url)
    env = {
        **os.environ,
        "SYNOFORECAST_DBT_HOST": parts.get("host") or "localhost",
        "SYNOFORECAST_DBT_PORT": str(parts.get("port") or 5432),
        "SYNOFORECAST_DBT_USER": parts.get("user") or "",
        "SYNOFORECAST_DBT_PASSWORD": parts.get("password") or "",
        "SYNOFORECAST_DBT_DBNAME": parts["dbname"],
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_TARGET_PATH": str(tmp / "target"),
        "DBT_LOG_PATH": str(tmp / "logs"),
    }
    for name in ("SYNOFORECAST_DBT_START_QUARTER", "SYNOFORECAST_DBT_END_QUARTER", "SYNOFORECAST_DBT_UNIT_TESTS"):
        env.pop(name, None)
    return {**env, **extra}


@pytest.fixture
def package_unchanged():
    """Neither dbt nor sqlfluff leaves a file in the package folder (target/, logs/)."""
    before = sorted(p.name for p in PROJECT.iterdir())
    yield
    assert sorted(p.name for p in PROJECT.iterdir()) == before


def test_the_unit_tests_of_int_top_customers_pass(pg_url, tmp_path, package_unchanged):
    """Both branches: the workbook's Top Customers list, and the top N by trailing revenue. Their
    inputs are SQL (`format: sql`), so an empty database runs them: no parent is built."""
    result = subprocess.run(
        [
            str(BIN / "dbt"),
            "test",
            "--select",
            "int_top_customers,test_type:unit",
            "--project-dir",
            str(PROJECT),
            "--profiles-dir",
            str(PROJECT),
        ],
        env=dbt_env(pg_url, tmp_path, SYNOFORECAST_DBT_UNIT_TESTS="true"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    unit = {r["unique_id"].rsplit(".", 1)[-1]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")}
    assert unit == dict.fromkeys(UNIT_TESTS, "pass")


def test_the_platform_builds_leave_the_unit_tests_out():
    """Without SYNOFORECAST_DBT_UNIT_TESTS the unit tests are disabled: the manifest Dagster loads
    (and so its `dbt build`) has none."""
    from synoforecast.defs.transform.project import ensure_manifest

    manifest = json.loads(ensure_manifest().read_text())
    assert manifest["unit_tests"] == {}
    assert {uid.rsplit(".", 1)[-1] for uid in manifest["disabled"] if uid.startswith("unit_test.")} == UNIT_TESTS


def test_the_models_pass_sqlfluff(pg_url, tmp_path, package_unchanged):
    """`sqlfluff lint synoforecast_dbt/models` from the repository root, as .sqlfluff documents:
    every model as dbt compiles it. The dbt templater connects to the database (is_incremental()
    asks whether the table exists; in an empty database it does not: the first build's SQL)."""
    models = sorted(p.relative_to(REPO).as_posix() for p in (PROJECT / "models").rglob("*.sql"))
    result = subprocess.run(
        [str(BIN / "sqlfluff"), "lint", "synoforecast_dbt/models", "--format", "json"],
        cwd=REPO,
        env=dbt_env(pg_url, tmp_path),
        capture_output=True,
        text=True,
    )
    try:
        linted = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"sqlfluff exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    violations = [
        f"{f['filepath']}:{v['start_line_no']}:{v['start_line_pos']}: {v['code']} {v['description']}"
        for f in linted
        for v in f["violations"]
    ]
    assert violations == [], "sqlfluff (fix the SQL, or `sqlfluff fix` it):\n" + "\n".join(violations)
    assert sorted(Path(f["filepath"]).as_posix() for f in linted) == models  # none skipped
    assert result.returncode == 0, result.stderr[-3000:]
