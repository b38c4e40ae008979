"""The Dagster instance's part of the Prometheus metrics (the rest, and the shaping into metric
families, is synoforecast/lib/monitoring/metrics.py): read at every scrape, every query bounded.

* Runs by job and status: the runs created in the last `window_s` (newest first, at most
  `recent_limit`) and the runs queued or running now (at most 500), from the run storage.
* Each job's latest finished run (among the newest `finished_limit` finished runs) and the
  durations of its steps (`get_run_step_stats`, one run's events).
* Asset check outcomes: for each check, its evaluations in the newest finished run that
  evaluated it, looked for in the newest `check_runs` finished runs (a run's events of one
  type, by run id), so a partitioned check reports every quarter its latest run judged, not
  only the last one written; the freshness checks, which the sensor reports without a run,
  by their latest completed evaluation.
* The last Metabase refresh of `activation/metabase_refresh` and
  `activation/landing_metabase_refresh`: the latest materialisation's `status` metadata, unless
  a run planned the asset after it and its step failed (this Dagster records no
  "failed to materialize" event for a step that raised, so the failed step is the record).

A finished run never changes, so its step durations and check evaluations are read once and
kept by run id (at most `cache_runs` runs); everything else is read again at every scrape.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dagster as dg
from prometheus_client.core import Metric

from synoforecast.lib.monitoring.metrics import (
    CheckOutcome,
    DagsterFacts,
    JobRun,
    RefreshOutcome,
    StepTime,
    dagster_families,
)

S = dg.DagsterRunStatus
FINISHED = [S.SUCCESS, S.FAILURE, S.CANCELED]
IN_PROGRESS = [S.QUEUED, S.NOT_STARTED, S.STARTING, S.STARTED, S.CANCELING]
REFRESH_ASSETS = (
    dg.AssetKey(["activation", "metabase_refresh"]),
    dg.AssetKey(["activation", "landing_metabase_refresh"]),
)


@dataclass(frozen=True)
class _Evaluation:
    asset: str
    check: str
    severity: str
    blocking: bool
    passed: bool
    at: float


@dataclass(frozen=True)
class _RunSummary:
    steps: tuple[tuple[str, str, float], ...]  # (step key, status, seconds)
    evaluations: tuple[_Evaluation, ...]


def runless_check_keys() -> list[dg.AssetCheckKey]:
    """The checks freshness_sensor evaluates without a run (defs/freshness.py)."""
    from synoforecast.defs.freshness import QUARTER_CHECK, SNAPSHOT_CHECK
    from synoforecast.defs.runs import SNAPSHOT_KEY
    from synoforecast.lib.forecasting.cohorts import COHORTS

    return [dg.AssetCheckKey(SNAPSHOT_KEY, SNAPSHOT_CHECK)] + [
        dg.AssetCheckKey(dg.AssetKey(["forecast", c.name]), QUARTER_CHECK) for c in COHORTS
    ]


def _evaluation(check: dg.AssetCheckEvaluation, at: float) -> _Evaluation:
    severity = check.severity.value if check.severity is not None else "ERROR"
    return _Evaluation(
        check.asset_key.to_user_string(), check.check_name, severity, bool(check.blocking), bool(check.passed), at
    )


def outcomes(evaluations: Sequence[_Evaluation]) -> list[CheckOutcome]:
    """Evaluations of one run (or one run-less evaluation) -> counts per check, severity and blocking."""
    grouped: dict[tuple[str, str, str, bool], list[_Evaluation]] = {}
    for e in evaluations:
        grouped.setdefault((e.asset, e.check, e.severity, e.blocking), []).append(e)
    return [
        CheckOutcome(
            asset,
            check,
            severity,
            blocking,
            passed=sum(e.passed for e in items),
            failed=sum(not e.passed for e in items),
            evaluated_at=max(e.at for e in items),
        )
        for (asset, check, severity, blocking), items in sorted(grouped.items())
    ]


class DagsterSource:
    """A metrics source (lib/monitoring/metrics.py PlatformCollector) over a Dagster instance.

    `instance`: the instance, or a callable giving it (called until it answers: a Dagster storage
    that is down at start is a source down, not a process that cannot start)."""

    def __init__(
        self,
        instance: dg.DagsterInstance | Callable[[], dg.DagsterInstance],
        window_s: float = 86400.0,
        recent_limit: int = 1000,
        finished_limit: int = 200,
        check_runs: int = 20,
        runless_checks: Sequence[dg.AssetCheckKey] = (),
        cache_runs: int = 256,
    ):
        self._instance = instance if isinstance(instance, dg.DagsterInstance) else None
        self._factory = None if self._instance is not None else instance
        self.window_s = window_s
        self.recent_limit = recent_limit
        self.finished_limit = finished_limit
        self.check_runs = check_runs
        self.runless_checks = list(runless_checks)
        self.cache_runs = cache_runs
        self._runs: OrderedDict[str, _RunSummary] = OrderedDict()
        self._lock = threading.Lock()  # two scrapes at once (the server is threaded) share the cache

    def __call__(self) -> list[Metric]:
        return dagster_families(self.facts())

    @property
    def instance(self) -> dg.DagsterInstance:
        if self._instance is None:
            self._instance = self._factory()
        return self._instance

    # ------------------------------------------------------------------ per finished run, once

    def _summary(self, record: dg.RunRecord) -> _RunSummary:
        run_id = record.dagster_run.run_id
        with self._lock:
            found = self._runs.get(run_id)
            if found is not None:
                self._runs.move_to_end(run_id)
                return found
        instance = self.instance
        steps = tuple(
            (s.step_key, s.status.value if s.status else "UNKNOWN", s.end_time - s.start_time)
            for s in instance.get_run_step_stats(run_id)
            if s.start_time is not None and s.end_time is not None
        )
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        evaluations = tuple(
            _evaluation(r.event_log_entry.dagster_event.event_specific_data, r.timestamp) for r in records
        )
        summary = _RunSummary(steps, evaluations)
        with self._lock:
            self._runs[run_id] = summary
            while len(self._runs) > self.cache_runs:
                self._runs.popitem(last=False)
        return summary

    # ------------------------------------------------------------------ facts

    def facts(self, now: float | None = None) -> DagsterFacts:
        instance = self.instance
        now = time.time() if now is None else now
        since = dt.datetime.fromtimestamp(now - self.window_s, tz=dt.UTC)
        recent: dict[tuple[str, str], int] = {}
        for r in instance.get_run_records(dg.RunsFilter(created_after=since), limit=self.recent_limit):
            key = (r.dagster_run.job_name, r.dagster_run.status.value)
            recent[key] = recent.get(key, 0) + 1
        in_progress: dict[tuple[str, str], int] = {}
        for r in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS), limit=500):
            key = (r.dagster_run.job_name, r.dagster_run.status.value)
            in_progress[key] = in_progress.get(key, 0) + 1
        finished = list(instance.get_run_records(dg.RunsFilter(statuses=FINISHED), limit=self.finished_limit))
        last_runs, steps = self._last_runs(finished)
        return DagsterFacts(
            window_seconds=self.window_s,
            recent=recent,
            in_progress=in_progress,
            last_runs=tuple(last_runs),
            steps=tuple(steps),
            checks=tuple(self._checks(finished[: self.check_runs])),
            refreshes=tuple(o for key in REFRESH_ASSETS if (o := self.refresh_outcome(key)) is not None),
        )

    def _last_runs(self, finished: Sequence[dg.RunRecord]) -> tuple[list[JobRun], list[StepTime]]:
        runs, steps, seen = [], [], set()
        for r in finished:  # newest first
            job = r.dagster_run.job_name
            if job in seen:
                continue
            seen.add(job)
            duration = r.end_time - r.start_time if r.start_time and r.end_time else None
            runs.append(JobRun(job, r.dagster_run.status.value, r.dagster_run.run_id, r.end_time, duration))
            steps += [StepTime(job, key, status, seconds) for key, status, seconds in self._summary(r).steps]
        return runs, steps

    def _checks(self, finished: Sequence[dg.RunRecord]) -> list[CheckOutcome]:
        latest: dict[tuple[str, str], list[_Evaluation]] = {}
        for r in finished:  # newest first: a check's first run here is its latest
            mine: dict[tuple[str, str], list[_Evaluation]] = {}
            for e in self._summary(r).evaluations:
                if (e.asset, e.check) not in latest:
                    mine.setdefault((e.asset, e.check), []).append(e)
            latest.update(mine)
        if self.runless_checks:
            records = self.instance.event_log_storage.get_asset_check_summary_records(self.runless_checks)
            for key, summary in records.items():
                done = summary.last_completed_check_execution_record
                if done is None or done.evaluation is None:
                    continue
                at = done.event.timestamp if done.event is not None else done.create_timestamp
                named = (key.asset_key.to_user_string(), key.name)
                if named not in latest or at > max(e.at for e in latest[named]):
                    latest[named] = [_evaluation(done.evaluation, at)]
        return [o for _key, items in sorted(latest.items()) for o in outcomes(items)]

    def refresh_outcome(self, key: dg.AssetKey) -> RefreshOutcome | None:
        """The asset's last Metabase refresh: its latest materialisation, or a failed step of a run
        that planned it later. None when it never ran (or every later run skipped it)."""
        instance = self.instance
        asset = key.to_user_string()
        done = instance.fetch_materializations(key, limit=1).records
        outcome = None
        if done:
            record = done[0]
            status = record.asset_materialization.metadata.get("status")
            text = getattr(status, "value", status) or "materialized"
            outcome = RefreshOutcome(asset, str(text), True, record.timestamp, record.run_id)
        planned = instance.get_latest_planned_materialization_info(key)
        if planned is None or (done and planned.storage_id <= done[0].storage_id):
            return outcome
        run = instance.get_run_record_by_id(planned.run_id)
        if run is None or run.dagster_run.status not in FINISHED:
            return outcome  # running now, or gone: the last outcome stands
        step = "__".join(key.path)
        for stats in instance.get_run_step_stats(planned.run_id, step_keys=[step]):
            if stats.status is not None and stats.status.value == "FAILURE":
                at = stats.end_time or run.end_time or time.time()
                return RefreshOutcome(asset, "failed", False, at, planned.run_id)
        return outcome


# --------------------------------------------------------------------------- the process


def platform_collector(
    settings,
    volumes: Sequence[str] = (),
    window_s: float = 86400.0,
    instance: dg.DagsterInstance | Callable[[], dg.DagsterInstance] | None = None,
):
    """The collector `synoforecast metrics serve` registers: the warehouse the settings name (the
    embedded one started if it is not running, as every command does), the Dagster instance of
    DAGSTER_HOME (the embedded default's is set up like `synoforecast ui`'s) and the data folder."""
    import importlib.metadata

    from synoforecast.lib.forecasting.cohorts import COHORTS
    from synoforecast.lib.monitoring.metrics import (
        DAGSTER,
        VOLUME,
        WAREHOUSE,
        Limits,
        PlatformCollector,
        volume_source,
        warehouse_source,
    )
    from synoforecast.lib.warehouse.connection import resolve_url
    from synoforecast.settings import configured_warehouse_url, ensure_dagster_home

    resolved: dict[str, str] = {}

    def url() -> str:
        if "url" not in resolved:  # until it answers once: the embedded server may start later
            resolved["url"] = resolve_url(configured_warehouse_url(settings), settings.pgdata_dir)
        return resolved["url"]

    def dagster_instance() -> dg.DagsterInstance:
        ensure_dagster_home(settings)
        return dg.DagsterInstance.get()

    try:
        version = importlib.metadata.version("synoforecast")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    sources = [
        (WAREHOUSE, warehouse_source(url, [c.name for c in COHORTS], [c.name for c in COHORTS if c.by_customer])),
        (DAGSTER, DagsterSource(instance or dagster_instance, window_s=window_s, runless_checks=runless_check_keys())),
        (VOLUME, volume_source(list(volumes) or [settings.data_dir])),
    ]
    limits = Limits(
        freshness_max_age_days=settings.freshness_max_age_days,
        accuracy_drop_points=settings.accuracy_drop_points,
        max_smape=settings.max_smape,
    )
    return PlatformCollector(sources, limits, version)
