"""The whole Definitions loads and has the shape the design promises."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from synoforecast.definitions import defs
from synoforecast.lib.cohorts import COHORTS
from synoforecast.lib.contract import SHEETS

REPO = Path(__file__).resolve().parents[1]


def _graph():
    return defs.resolve_asset_graph()


def test_every_sheet_mart_cohort_and_activation_asset_is_quarterly_partitioned():
    graph = _graph()
    keys = {k.to_user_string(): k for k in graph.get_all_asset_keys()}
    expected = [f"raw/{s.table}" for s in SHEETS]
    expected += [f"marts/{m}" for m in ("mart_svr_rm_quarterly", "mart_svr_rm_tier_quarterly",
                                        "mart_svr_rm_region_quarterly", "mart_svr_rm_customer_quarterly",
                                        "mart_consumer_quarterly", "mart_c2_adoption_quarterly",
                                        "mart_commercial_activation")]
    expected += [f"forecast/{c.name}" for c in COHORTS] + ["forecast/forecast_evaluation"]
    expected += ["activation/metabase_refresh", "activation/summary_notification"]
    for name in expected:
        assert name in keys, name
        partitions = graph.get(keys[name]).partitions_def
        assert isinstance(partitions, dg.TimeWindowPartitionsDefinition), name
        assert partitions.cron_schedule == "0 0 1 1,4,7,10 *"
    assert graph.get(keys["workbook_snapshot"]).partitions_def is None


def test_each_sheet_has_a_blocking_contract_check_and_dbt_tests_are_checks():
    checks = {(c.asset_key.to_user_string(), c.name): c for c in _graph().asset_check_keys}
    specs = {spec.key: spec for ad in defs.assets if isinstance(ad, dg.AssetsDefinition) for spec in ad.check_specs}
    for check_def in defs.asset_checks:
        specs.update({spec.key: spec for spec in check_def.check_specs})
    for sheet in SHEETS:
        key = (f"raw/{sheet.table}", f"{sheet.table}_contract")
        assert key in checks
        assert specs[checks[key]].blocking
    dbt_checks = [k for k in checks if k[0].startswith("marts/")]
    assert len(dbt_checks) >= 14


def test_sensors_schedule_and_jobs_exist():
    assert {s.name for s in defs.sensors} >= {"inbox_sensor", "snapshot_downstream_sensor"}
    assert [s.name for s in defs.schedules] == ["quarter_close_schedule"]
    assert defs.resolve_job_def("forecast_pipeline_job") is not None
    assert defs.resolve_job_def("ingest_snapshot_job") is not None


def test_dagster_definitions_validate_passes_with_the_project_instance_config(tmp_path):
    shutil.copyfile(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run([str(dagster), "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "DAGSTER_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "all code locations passed validation" in (result.stdout + result.stderr).lower()


def test_pipeline_jobs_run_steps_in_the_run_process():
    """A step process per asset would re-import the code location ~30 times per run."""
    for name in ("forecast_pipeline_job", "ingest_snapshot_job"):
        assert defs.resolve_job_def(name).executor_def.name == "in_process"
