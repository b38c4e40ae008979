"""The dbt project as quarterly-partitioned assets; dbt tests surface as asset checks."""

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from synoforecast.defs.checks import per_quarter_events
from synoforecast.defs.partitions import FOLLOW_UPSTREAM, QUARTERLY, partition_quarters
from synoforecast.defs.resources import WarehouseResource
from synoforecast.defs.transform.project import DIGEST_FILE, dbt_project, ensure_manifest
from synoforecast.lib.ingest.fingerprint import combine
from synoforecast.lib.quarters import to_key
from synoforecast.lib.transform import dbt_selection
from synoforecast.lib.transform.dbt_vars import dbt_vars, split_for_partial_parsing
from synoforecast.lib.warehouse import partition_state
from synoforecast.lib.warehouse.connection import connect
from synoforecast.settings import get_settings

DBT_TARGET = "dbt"  # ops.partition_state target of the marts (one row per quarter for the whole project)
FULL_BUILD_TAG = "synoforecast/dbt_full_build"  # "true": build every model, changed inputs or not


PARTIAL_PARSE = "partial_parse.msgpack"


def invocation_target(runtime: Path, run_id: str) -> Path:
    """A build's dbt target folder (artifacts and dbt.log) under the data directory, never in
    the project folder (an installed package): seeded with the partial-parse state the last
    build kept, which dagster-dbt would otherwise copy from the package's own target/."""
    target = runtime / f"build-{run_id[:8]}-{uuid.uuid4().hex[:7]}"
    target.mkdir(parents=True, exist_ok=True)
    kept = runtime / PARTIAL_PARSE
    with contextlib.suppress(OSError):
        shutil.copyfile(
            kept if kept.exists() else dbt_project.project_dir / dbt_project.target_path / PARTIAL_PARSE,
            target / PARTIAL_PARSE,
        )
    return target


def keep_partial_parse(invocation_target: Path, runtime: Path) -> None:
    """Keep this invocation's partial-parse state for the next one: the state `dbt parse` left in
    the package was made without the warehouse's profile variables, so every build re-parsed
    the project in full."""
    source = invocation_target / PARTIAL_PARSE
    if source.exists():
        with contextlib.suppress(OSError):
            shutil.copyfile(source, runtime / PARTIAL_PARSE)


def keep_debug_log(invocation_target: Path, logs: Path, run_id: str) -> Path | None:
    """Keep a failed build's dbt.log (dagster-dbt writes it into the invocation's target folder,
    which is deleted after every build, while its error message points there)."""
    source = invocation_target / "dbt.log"
    if not source.exists():
        return None
    with contextlib.suppress(OSError):
        logs.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copyfile(source, logs / f"dbt-{run_id}.log"))
    return None


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

    def get_asset_check_spec(self, asset_spec, manifest, unique_id, project) -> dg.AssetCheckSpec | None:
        """dbt tests as checks partitioned like their models: dagster-dbt leaves a check's
        partitions unset, and the UI then has no per-quarter status for it (no Partitions tab)
        even though every evaluation names its quarter (defs/checks.per_quarter_events)."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        return spec if spec is None else spec._replace(partitions_def=QUARTERLY["partitions_def"])


@lru_cache(maxsize=1)
def _manifest() -> dict:
    return json.loads(dbt_project.manifest_path.read_text())  # ensure_manifest ran at load (the decorator)


def project_digest(variables: Mapping[str, object]) -> str:
    """What dbt's output depends on besides the raw rows: the sources the manifest was parsed
    from, the vars, and the dbt releases."""
    from importlib.metadata import version

    sources = dbt_project.manifest_path.with_name(DIGEST_FILE).read_text().strip()
    return combine(
        [
            sources,
            json.dumps(dict(variables), sort_keys=True),
            f"dbt-core {version('dbt-core')} dbt-postgres {version('dbt-postgres')}",
        ]
    )


def _unchanged_outputs(
    context: dg.AssetExecutionContext, manifest: Mapping, skipped: frozenset[str]
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """A materialization of each node dbt was not asked to build: its partitions hold what a
    build from the same raw content and project would write (lib/transform/dbt_selection.py), and its
    tests' results on that content: passed, or the build that wrote it would not have been
    recorded (tests of severity `warn` do not fail a build, so theirs are not claimed and
    their last result stands). Yielded before dbt's own: no skipped node reads a built one,
    and Dagster wants parents first."""
    translator = SynoforecastTranslator()
    warn_only = {
        props["name"]
        for props in manifest["nodes"].values()
        if props["resource_type"] == "test" and str(props.get("config", {}).get("severity", "error")).lower() == "warn"
    }
    checks: dict[dg.AssetKey, list[dg.AssetCheckKey]] = {}
    for key in context.selected_asset_check_keys:
        if key.name not in warn_only:
            checks.setdefault(key.asset_key, []).append(key)
    for uid in dbt_selection.in_build_order(manifest, skipped):
        key = translator.get_asset_key(manifest["nodes"][uid])
        if key.to_python_identifier() not in context.selected_output_names:
            continue
        yield dg.Output(
            None,
            output_name=key.to_python_identifier(),
            metadata={
                "status": "unchanged",
                "rebuilt": False,
                "reason": "no raw table it reads changed since dbt last built it with this project",
            },
        )
        for check in sorted(checks.get(key, []), key=lambda k: k.name):  # blocking checks gate the forecasts
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=check.name,
                passed=True,
                metadata={
                    "status": "unchanged",
                    "rerun": False,
                    "reason": "not re-run: the table holds what the last successful build wrote, whose tests passed",
                },
            )


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    partitions_def=QUARTERLY["partitions_def"],
    backfill_policy=QUARTERLY["backfill_policy"],  # automation condition: from the translator
    dagster_dbt_translator=SynoforecastTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
    pool="dbt",
)
def synoforecast_dbt_assets(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """Staging and incremental marts for the run's quarters (dbt vars start/end_quarter), only
    downstream of the raw tables whose content changed since dbt last built from them."""
    quarters = partition_quarters(context)
    keys = [to_key(q) for q in quarters]
    url = warehouse.get_url()
    os.environ.update(warehouse.dbt_env())
    variables, quarter_env = split_for_partial_parsing(
        dbt_vars(quarters[0], quarters[-1], get_settings().top_customers_n)
    )
    os.environ.update(quarter_env)
    manifest = _manifest()
    digest = project_digest(variables)
    tables = sorted(dbt_selection.source_tables(manifest))
    subset = context.is_subset  # assets or checks picked in the UI: built as asked, dagster-dbt selects them
    with connect(url) as conn, conn.transaction():  # dbt cannot record in its own transactions:
        state, built = partition_state.load(conn), partition_state.load_dbt_inputs(conn)
        full = (
            subset
            or context.run.tags.get(FULL_BUILD_TAG, "").lower() == "true"
            or not dbt_selection.project_built(built, digest)
        )
        changed = set(tables) if full else dbt_selection.changed_tables(tables, keys, state, built, digest)
        partition_state.invalidate(conn, DBT_TARGET, keys)  # dying half-way must read as stale
        partition_state.forget_dbt_inputs(
            conn,
            [dbt_selection.input_scope(t, k) for t in changed for k in keys]
            + ([dbt_selection.PROJECT_SCOPE] if full else []),
        )  # ... and rebuilds
    selection = dbt_selection.plan(manifest, None if full else changed)
    context.log.info(
        f"raw tables changed since dbt last built from them: {sorted(changed) or 'none'}; "
        f"building {len(selection.build)} of {len(selection.build) + len(selection.skip)} models and "
        f"seeds" + ("" if full else f" (run tag {FULL_BUILD_TAG}=true builds all)")
    )
    yield from per_quarter_events(context, _unchanged_outputs(context, manifest, selection.skip))
    if selection.build:
        from synoforecast.lib.forecasting.rolling import warm_up  # pandas: not at code-location load

        warm_up(get_settings().forecast_workers)  # the forecasts come next; this step mostly waits on dbt
        runtime = get_settings().data_dir / "dbt"
        invocation = dbt.cli(
            ["build", "--vars", json.dumps(variables), *selection.exclude_args(manifest)],
            context=context,
            target_path=invocation_target(runtime, context.run_id),
        )
        try:
            yield from per_quarter_events(context, invocation.stream())
            keep_partial_parse(invocation.target_path, runtime)
        except Exception:
            kept = keep_debug_log(invocation.target_path, get_settings().data_dir / "logs", context.run_id)
            if kept:
                context.log.error(f"dbt's debug log of this build (every statement it ran): {kept}")
            raise
        finally:
            shutil.rmtree(invocation.target_path, ignore_errors=True)  # one target/ folder per invocation
    with connect(url) as conn, conn.transaction():
        for key in keys:
            partition_state.record(conn, DBT_TARGET, key, key, context.run_id)
        if not subset:
            partition_state.record_dbt_inputs(
                conn, dbt_selection.built_records(changed, keys, state, digest), context.run_id
            )
