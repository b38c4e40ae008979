"""The whole Definitions loads and has the shape the design promises."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from synoforecast.definitions import defs

REPO = Path(__file__).resolve().parents[1]


SNAPSHOT = REPO / "synoforecast_tests" / "snapshots" / "definitions.json"


def _partitions(partitions_def) -> str | None:
    """The partitioning's shape; its start follows the data (issue 12), so it is left out."""
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return f"time-window cron={partitions_def.cron_schedule} fmt={partitions_def.fmt} end_offset={partitions_def.end_offset}"
    return type(partitions_def).__name__


def definitions_snapshot() -> dict:
    """Everything a user of the UI sees of the code location, in a stable, reviewable form."""
    graph = defs.resolve_asset_graph()
    repo = defs.get_repository_def()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "partitions": _partitions(node.partitions_def),
            "automation": node.automation_condition is not None,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
        }
    checks = {}
    for key in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        node = graph.get(key)
        checks[f"{key.asset_key.to_user_string()}:{key.name}"] = {
            "blocking": node.blocking,
            "partitions": _partitions(node.partitions_def),
        }
    return {
        "assets": assets,
        "checks": checks,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "schedules": {s.name: s.cron_schedule for s in repo.schedule_defs},
        "resources": {k: type(v).__name__ for k, v in sorted(repo.get_top_level_resources().items())},
    }


def test_the_whole_definitions_match_the_reviewed_snapshot():
    """Any change to assets, checks, partitions, jobs, sensors or resources shows up here as a diff.
    After an intended change: SYNOFORECAST_UPDATE_SNAPSHOT=1 pytest synoforecast_tests/test_definitions.py,
    then review and commit synoforecast_tests/snapshots/definitions.json."""
    current = definitions_snapshot()
    if os.environ.get("SYNOFORECAST_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    for part in expected:
        assert current[part] == expected[part], f"{part} changed: regenerate and review the snapshot"
    assert set(current) == set(expected)


def test_every_partitioned_check_records_its_partition():
    """Partitioned checks must yield per-partition evaluations (defs/checks.per_partition): the source
    of each partitioned check's function goes through it. dbt tests are unpartitioned checks."""
    import inspect

    graph = defs.resolve_asset_graph()
    for check_def in defs.asset_checks:
        for spec in check_def.check_specs:
            if graph.get(spec.key).partitions_def is None:
                continue
            source = inspect.getsource(check_def.node_def.compute_fn.decorated_fn)
            assert "per_partition(" in source, spec.key


def test_dagster_definitions_validate_passes_with_the_project_instance_config(tmp_path):
    shutil.copyfile(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "all code locations passed validation" in (result.stdout + result.stderr).lower()


def test_pipeline_jobs_run_steps_in_the_run_process():
    """A step process per asset would re-import the code location ~30 times per run."""
    for name in ("forecast_pipeline_job", "ingest_snapshot_job"):
        assert defs.resolve_job_def(name).executor_def.name == "in_process"


def _imports(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_layering_lib_is_pure_and_domains_meet_through_asset_keys():
    package = REPO / "synoforecast"
    for path in sorted((package / "lib").rglob("*.py")):
        bad = {
            n
            for n in _imports(path)
            if n.split(".")[0] in ("dagster", "dagster_dbt")
            or n.startswith(("synoforecast.defs", "synoforecast.definitions", "synoforecast.settings"))
        }
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}: lib/ is pure logic"
    shared = {
        "synoforecast.defs.partitions",
        "synoforecast.defs.resources",
        "synoforecast.defs.checks",
        "synoforecast.defs.runs",
    }
    for domain in ("ingestion", "transform", "forecast", "landing", "activation"):
        for path in sorted((package / "defs" / domain).rglob("*.py")):
            other = {
                n
                for n in _imports(path)
                if n.startswith("synoforecast.defs.")
                and n not in shared
                and not n.startswith(f"synoforecast.defs.{domain}")
            }
            assert not other, f"{path.relative_to(REPO)} imports another domain: {sorted(other)}"


def test_pipeline_runs_carry_the_quarter_labels_as_a_tag():
    """Partition keys are dates; the run list in the UI shows the quarters through this tag."""
    from synoforecast.defs.pipeline import pipeline_tags

    tags = pipeline_tags(["2025-01-01", "2025-04-01", "2025-07-01"], "abc")
    assert tags["synoforecast/quarters"] == "2025-Q1..2025-Q3"
    assert tags["dagster/asset_partition_range_start"] == "2025-01-01"


def test_the_cross_domain_modules_name_other_domains_by_asset_key_only():
    """published, freshness and the pipeline wiring reach the domains' assets by key, never
    through their asset modules; housekeeping gets the graph from definitions.py."""
    package = REPO / "synoforecast"
    for name in ("published", "freshness", "pipeline", "housekeeping"):
        path = package / "defs" / f"{name}.py"
        assets = {
            n
            for n in _imports(path)
            if n.startswith("synoforecast.defs.")
            and n.split(".")[2] in ("ingestion", "transform", "forecast", "landing", "activation")
        }
        assert not assets, f"{path.relative_to(REPO)} imports {sorted(assets)}"
    assert "synoforecast.definitions" not in _imports(package / "defs" / "housekeeping.py")


def test_sensor_interval_seconds_sets_how_often_the_sensors_look_for_work():
    """Read when the code location loads: the default's intervals, and a setting of 5 s (the
    Docker stack test's) in a fresh process."""
    wanted = {"inbox_sensor": 1, "snapshot_downstream_sensor": 1, "landing_sensor": 2, "publish_heal_sensor": 2}
    probe = (
        "import json; from synoforecast.definitions import defs; "
        "r = defs.get_repository_def(); "
        f"print(json.dumps({{n: r.get_sensor_def(n).minimum_interval_seconds for n in {sorted(wanted)!r}}}))"
    )
    seen = {}
    for value in ("", "5"):
        env = {**os.environ, "SYNOFORECAST_SENSOR_INTERVAL_SECONDS": value}
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
        seen[value] = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen[""] == {n: 30 * k for n, k in wanted.items()}
    assert seen["5"] == {n: 5 * k for n, k in wanted.items()}
