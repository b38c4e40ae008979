"""The dbt project as quarterly-partitioned assets; dbt tests surface as asset checks."""


import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from synoforecast.defs.partitions import FOLLOW_UPSTREAM, QUARTERLY, partition_quarters
from synoforecast.defs.resources import WarehouseResource
from synoforecast.defs.transform.project import dbt_project, ensure_manifest
from synoforecast.lib import partition_state
from synoforecast.lib.dbt_vars import dbt_vars, split_for_partial_parsing
from synoforecast.lib.quarters import to_key
from synoforecast.lib.warehouse import connect
from synoforecast.settings import get_settings


DBT_TARGET = "dbt"  # ops.partition_state target of the marts (one row per quarter for the whole project)


def keep_partial_parse(invocation_target: Path, project_target: Path) -> None:
    """Keep this invocation's partial-parse state where dagster-dbt copies it from for the next
    one: the state `dbt parse` left there was made without the warehouse's profile variables,
    so every build re-parsed the project in full. A read-only project folder (an image) only
    loses the speed-up."""
    source = invocation_target / "partial_parse.msgpack"
    if source.exists():
        with contextlib.suppress(OSError):
            shutil.copyfile(source, project_target / "partial_parse.msgpack")


class SynoforecastTranslator(DagsterDbtTranslator):
    """Asset keys follow the warehouse: raw/<table> for sources, <schema>/<model> for the rest."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        schema = dbt_resource_props.get("config", {}).get("schema") or dbt_resource_props.get("schema") or "dbt"
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "transform"

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        return FOLLOW_UPSTREAM


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    partitions_def=QUARTERLY["partitions_def"],
    backfill_policy=QUARTERLY["backfill_policy"],  # automation condition: from the translator
    dagster_dbt_translator=SynoforecastTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
    pool="dbt",
)
def synoforecast_dbt_assets(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """Staging and incremental marts for the run's quarters (dbt vars start/end_quarter)."""
    quarters = partition_quarters(context)
    keys = [to_key(q) for q in quarters]
    url = warehouse.get_url()
    os.environ.update(warehouse.dbt_env())
    variables, quarter_env = split_for_partial_parsing(
        dbt_vars(quarters[0], quarters[-1], get_settings().top_customers_n))
    os.environ.update(quarter_env)
    with connect(url) as conn, conn.transaction():  # dbt cannot record in its own transactions:
        partition_state.invalidate(conn, DBT_TARGET, keys)  # dying half-way must read as stale
    from synoforecast.lib.forecasting.rolling import warm_up  # pandas: not at code-location load

    warm_up(get_settings().forecast_workers)  # the forecasts come next; this step mostly waits on dbt
    invocation = dbt.cli(["build", "--vars", json.dumps(variables)], context=context)
    try:
        yield from invocation.stream()
        keep_partial_parse(invocation.target_path, dbt_project.project_dir / dbt_project.target_path)
    finally:
        shutil.rmtree(invocation.target_path, ignore_errors=True)  # one target/ folder per invocation
    if invocation.is_successful():
        with connect(url) as conn, conn.transaction():
            for key in keys:
                partition_state.record(conn, DBT_TARGET, key, key, context.run_id)
