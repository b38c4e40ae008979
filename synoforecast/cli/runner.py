"""Run the platform's jobs in this process against the persistent Dagster instance.

`synoforecast ingest` and `demo` use this; it launches the same two jobs the sensors
launch (snapshot, then the downstream partition range from `downstream_run_request`),
so runs show up in the Dagster UI exactly like sensor-triggered ones.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from synoforecast.lib.ingest.inbox import file_sha256
from synoforecast.settings import (
    DBT_PROJECT_DIR,
    configured_warehouse_url,
    ensure_dagster_home,
    get_settings,
    reader_options,
    warehouse_url,
)

if TYPE_CHECKING:  # Dagster is imported only when there is something to run (see ingest_workbook)
    import dagster as dg

Progress = Callable[[str], None]
PIPELINE_LOCK = "synoforecast-pipeline-run"  # one in-process pipeline run per warehouse at a time


@dataclass
class IngestOutcome:
    ok: bool
    file: str
    refused: bool = False  # the workbook itself was refused (as opposed to a later step failing)
    sha256: str | None = None
    error: str | None = None
    manifest: dict = field(default_factory=dict)
    partitions: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    landing_cutoff: str | None = None  # the cut-off of the landing made for the quarter in progress

    def report(self) -> dict:
        return {
            "ok": self.ok,
            "refused": self.refused,
            "file": self.file,
            "sha256": self.sha256,
            "error": self.error,
            "sheets": self.manifest.get("sheets", {}),
            "ignored_sheets": self.manifest.get("ignored_sheets", []),
            "hidden_sheets": self.manifest.get("hidden_sheets", []),
            "changed_quarters": self.manifest.get("changed_quarters", []),
            "restated": self.manifest.get("restated", []),
            "republished": self.manifest.get("republished", False),
            "partitions": self.partitions,
            "run_ids": self.run_ids,
            "landing_cutoff": self.landing_cutoff,
            "seconds": round(self.seconds, 1),
        }


def root_cause(error) -> str:
    """The innermost error of a SerializableErrorInfo chain, as one paragraph: Dagster wraps
    the real cause (cannot connect, PermissionError, a value out of range) in
    DagsterExecutionStepExecutionError, whose own message says nothing."""
    seen = error
    while seen is not None and (seen.cause is not None or seen.context is not None):
        seen = seen.cause or seen.context
    message = (seen or error).message.strip()
    message = message.removeprefix("dagster._core.definitions.events.Failure: ")
    text = " ".join(ln.strip() for ln in message.splitlines() if ln.strip())
    return text if len(text) <= 1200 else text[:1200] + " ..."


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            return (
                f"{root_cause(event.step_failure_data.error)} (step {event.step_key}, run {result.run_id}; "
                "the Dagster UI has the full log)"
            )
    for event in result.all_events:
        if (
            event.is_failure
            and event.event_specific_data is not None
            and getattr(event.event_specific_data, "error", None) is not None
        ):
            return f"{root_cause(event.event_specific_data.error)} (run {result.run_id})"
    return f"run {result.run_id} failed (the Dagster UI has the full log)"


def _refusal(result: dg.ExecuteInProcessResult) -> str | None:
    """The workbook's refusal paragraph, carried in the Failure's metadata by workbook_snapshot."""
    for event in result.all_events:
        failure = event.step_failure_data if event.is_step_failure else None
        user = failure.user_failure_data if failure else None
        if user and "error" in user.metadata:
            return str(user.metadata["error"].value)
    return None


def _execute(job: dg.JobDefinition, **kwargs) -> dg.ExecuteInProcessResult:
    """Run in-process; tool output (dbt's console) goes to stderr so stdout stays for results."""
    with contextlib.redirect_stdout(sys.stderr):
        return job.execute_in_process(raise_on_error=False, **kwargs)


def _run_config(quiet: bool) -> dict:
    return {"loggers": {"console": {"config": {"log_level": "WARNING" if quiet else "INFO"}}}}


# the snapshot step's story is told by the progress lines and the one-line refusal or the
# failure's cause paragraph; Dagster's console would add two stack traces to a refusal
_SNAPSHOT_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _shrink_hold(snapshot: dg.ExecuteInProcessResult) -> tuple[dict, str | None]:
    """The snapshot's materialization metadata and, if the shrink guard held it, why."""
    materializations = snapshot.asset_materializations_for_node("workbook_snapshot")
    if not materializations:
        return {}, None
    metadata = materializations[0].metadata
    blocked = metadata.get("shrink_blocked")
    return metadata, (str(metadata["shrink_summary"].value) if blocked is not None and blocked.value else None)


def _already_published(settings, path: Path, sha: str | None) -> str | None:
    """Why an identical re-ingest has nothing to do (lib/ingest/reingest.py), checked before Dagster
    and the code location load: half a second instead of a snapshot run."""
    from synoforecast.lib.ingest import reingest
    from synoforecast.lib.warehouse.connection import WarehouseError, resolve_url

    if sha is None:
        return None
    try:
        url = resolve_url(configured_warehouse_url(settings), settings.pgdata_dir)
    except WarehouseError:
        return None  # the full path reports it
    digest = reingest.reader_digest(reader_options(settings), DBT_PROJECT_DIR / "seeds", settings.partitions_start)
    return reingest.already_published(url, path, sha, digest)


def ingest_workbook(
    path: str | Path,
    progress: Progress = print,
    quiet: bool = False,
    allow_shrink: bool = False,
    republish: bool = False,
) -> IngestOutcome:
    """Snapshot the workbook, then materialise its complete quarters downstream.

    Runs left STARTED by a killed process are marked failed first (their slots freed); a
    concurrency limit held by another live run is waited for, at most
    `limit_wait_seconds`, then the ingest gives up saying which run holds it."""
    started = time.perf_counter()
    settings = get_settings()
    path = Path(path).resolve()
    sha = file_sha256(path) if path.is_file() else None
    unchanged = _already_published(settings, path, sha)
    if unchanged:
        progress(f"nothing to do: {unchanged}")
        return IngestOutcome(ok=True, file=str(path), sha256=sha, seconds=time.perf_counter() - started)
    import dagster as dg

    ensure_dagster_home(settings)
    from synoforecast.definitions import defs
    from synoforecast.defs.ingestion.sensors import snapshot_run_request
    from synoforecast.defs.pipeline import DOWNSTREAM_IN_PROCESS_TAG, downstream_run_request
    from synoforecast.defs.runs import ALLOW_SHRINK_TAG, PIPELINE_JOB, REPUBLISH_TAG, SNAPSHOT_JOB
    from synoforecast.instance.runs import process_tags, reap_stuck_runs, wait_for_limits

    instance = dg.DagsterInstance.get()
    reap_stuck_runs(instance, progress)
    request = snapshot_run_request(str(path), sha or "unknown")
    extra_tags = {
        **process_tags(),
        **({ALLOW_SHRINK_TAG: "true"} if allow_shrink else {}),
        **({REPUBLISH_TAG: "true"} if republish else {}),
    }
    progress(f"[1/3] validating and snapshotting {path.name}")
    snapshot = _execute(
        defs.resolve_job_def(SNAPSHOT_JOB),
        run_config={**request.run_config, **_SNAPSHOT_LOGS},
        instance=instance,
        tags={**request.tags, DOWNSTREAM_IN_PROCESS_TAG: "in-process", **extra_tags},
    )
    outcome = IngestOutcome(ok=False, file=str(path), sha256=sha, run_ids=[snapshot.run_id])
    metadata, held = _shrink_hold(snapshot)
    if held:
        outcome.refused = True
        outcome.error = (
            f"{path.name}: publication stopped by the snapshot_shrink check: {held}. Nothing was "
            "published; if the export is right, ingest it again with --allow-shrink"
        )
        outcome.seconds = time.perf_counter() - started
        return outcome
    if not snapshot.success:
        refusal = _refusal(snapshot)
        outcome.refused = refusal is not None
        outcome.error = refusal or _failure_message(snapshot)
        outcome.seconds = time.perf_counter() - started
        return outcome
    outcome.manifest = {
        "sheets": metadata["sheets"].value,
        "ignored_sheets": metadata["ignored_sheets"].value,
        "hidden_sheets": metadata["hidden_sheets"].value if "hidden_sheets" in metadata else [],
    }
    keys = list(metadata["complete_quarter_keys"].value)
    changed = list(metadata["changed_quarter_keys"].value)
    outcome.manifest["changed_quarters"] = metadata["changed_quarters"].value
    outcome.manifest["restated"] = metadata["restated"].value if "restated" in metadata else []
    outcome.manifest["republished"] = bool(metadata["republished"].value) if "republished" in metadata else False
    follow_up = downstream_run_request(changed, keys, sha)
    if isinstance(follow_up, dg.SkipReason):
        outcome.ok, outcome.error = True, None
        progress(f"nothing downstream to run: {follow_up.skip_message}")
        land_in_process(instance, defs, sha, outcome, progress, quiet)
        outcome.seconds = time.perf_counter() - started
        return outcome
    first, last = (
        follow_up.tags["dagster/asset_partition_range_start"],
        follow_up.tags["dagster/asset_partition_range_end"],
    )
    from synoforecast.defs.partitions import label, quarterly_partitions

    outcome.partitions = quarterly_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
    blockers = wait_for_limits(instance, ["dbt"], PIPELINE_JOB, settings.limit_wait_seconds, progress)
    if blockers:
        outcome.error = (
            f"gave up after waiting {settings.limit_wait_seconds:.0f} s for a concurrency limit: "
            f"{'; '.join(blockers)} "
            "(still running). Wait for it to finish, or cancel it in the Dagster UI, then ingest again; "
            "SYNOFORECAST_LIMIT_WAIT_SECONDS sets the wait"
        )
        outcome.seconds = time.perf_counter() - started
        return outcome
    from synoforecast.lib.warehouse.connection import session_lock

    wait = settings.limit_wait_seconds
    with session_lock(
        warehouse_url(settings),
        PIPELINE_LOCK,
        wait,  # CLI runs bypass the run queue
        on_wait=lambda: progress(
            f"waiting up to {wait:.0f} s: another synoforecast ingest is publishing into this warehouse"
        ),
    ) as turn:
        if not turn:
            outcome.error = (
                f"gave up after waiting {wait:.0f} s for a concurrency limit: another synoforecast "
                "ingest is still publishing into this warehouse; ingest again once it finished "
                "(SYNOFORECAST_LIMIT_WAIT_SECONDS sets the wait)"
            )
            outcome.seconds = time.perf_counter() - started
            return outcome
        progress(
            f"[2/3] materialising {label(first)}..{label(last)} ({len(outcome.partitions)} quarters): "
            f"sheets -> dbt marts -> forecasts -> evaluation -> published snapshot -> Metabase/notifications"
        )
        downstream = _execute(
            defs.resolve_job_def(PIPELINE_JOB),
            run_config=_run_config(quiet),
            instance=instance,
            tags={**follow_up.tags, **process_tags()},
        )
    outcome.run_ids.append(downstream.run_id)
    outcome.ok = downstream.success
    outcome.error = None if downstream.success else _failure_message(downstream)
    if downstream.success:
        land_in_process(instance, defs, sha, outcome, progress, quiet)
    outcome.seconds = time.perf_counter() - started
    return outcome


def land_in_process(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    sha: str | None,
    outcome: IngestOutcome,
    progress: Progress,
    quiet: bool,
) -> None:
    """The landing of the snapshot's quarter in progress (what `landing_sensor` launches under
    the daemon), once its complete quarters are published; a snapshot without one has none."""
    import dagster as dg

    from synoforecast.defs.landing.assets import LANDING_CUTOFFS
    from synoforecast.defs.landing.sensors import LANDING_JOB, landing_run_request
    from synoforecast.instance.runs import process_tags

    request, key = landing_run_request(warehouse_url(), sha)
    if isinstance(request, dg.SkipReason):
        progress(f"[3/3] no landing: {request.skip_message}")
        return
    if not instance.has_dynamic_partition(LANDING_CUTOFFS.name, key):
        instance.add_dynamic_partitions(LANDING_CUTOFFS.name, [key])
    progress(f"[3/3] landing the quarter in progress at its cut-off {key}: quarter-to-date -> forecast.landing")
    result = _execute(
        defs.resolve_job_def(LANDING_JOB),
        run_config=_run_config(quiet),
        instance=instance,
        partition_key=key,
        tags={**request.tags, **process_tags()},
    )
    outcome.run_ids.append(result.run_id)
    outcome.landing_cutoff = key
    if not result.success:
        outcome.ok, outcome.error = False, _failure_message(result)
