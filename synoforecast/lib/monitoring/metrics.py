"""What on-call watches, for Prometheus: read from the platform's own records when Prometheus
scrapes, shaped into metric families. No Dagster import here: the Dagster instance's part is
read by synoforecast/instance/metrics.py into :class:`DagsterFacts`, and served by
`synoforecast metrics serve` (synoforecast/cli/main.py).

Three sources, each read afresh at every scrape (no thread keeps numbers between scrapes):

* ``warehouse``: the newest accepted export and its rows per sheet (ops.snapshots), the
  published export (ops.published_snapshot), each cohort's sMAPE at its latest scored quarter
  and the one before (forecast.evaluation), the landing of the quarter in progress at the
  published export's newest cut-off (forecast.landing). Every statement is bounded by an index
  or a LIMIT (:data:`QUERIES`; the integration test EXPLAINs them on a real PostgreSQL): a
  scrape never reads raw.* or a whole forecast table.
* ``dagster``: runs by job and status, each job's latest finished run and its steps, asset
  check outcomes, the last Metabase refresh (see :class:`DagsterFacts`).
* ``volume``: free and total bytes of the data folder(s) (``shutil.disk_usage``).

A source that fails (the warehouse is down, the Dagster storage unreachable) is reported as
``synoforecast_scrape_source_up{source="..."} 0`` with none of its metrics: the endpoint still
answers 200 with the others, and the reason is logged once per outage (again when the source
answers, "back"). Prometheus alerts on the 0 (deploy/prometheus/rules.yml).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from synoforecast.lib.redaction import safe_url

log = logging.getLogger("synoforecast.metrics")

PREFIX = "synoforecast_"
WAREHOUSE, DAGSTER, VOLUME = "warehouse", "dagster", "volume"
UTC = dt.UTC

# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class SheetRows:
    """One sheet of an export as ops.snapshots.sheets records it."""

    sheet: str
    loaded: int
    read: int | None = None
    quarantined: int | None = None


@dataclass(frozen=True)
class ExportFacts:
    sha256: str
    file: str
    export_date: dt.datetime  # the file's modification time: how the reader and snapshot_freshness date it
    sheets: tuple[SheetRows, ...] = ()


@dataclass(frozen=True)
class PublishedFacts:
    sha256: str
    switched_at: dt.datetime  # when ops.published_snapshot moved to it
    export_date: dt.datetime | None  # its export date (None: ops.snapshots does not know it)


@dataclass(frozen=True)
class AccuracyFacts:
    """A cohort's sMAPE for one metric and level at its latest scored quarter, and the quarter before."""

    cohort: str
    metric: str
    level: str
    quarter_label: str
    smape: float | None
    series_scored: int
    previous_quarter_label: str | None = None
    previous_smape: float | None = None


@dataclass(frozen=True)
class LandingFacts:
    cohort: str
    series_id: str
    metric: str
    quarter_label: str
    cutoff_date: dt.date
    elapsed_share: float
    qtd_actual: float
    forecast_start: float
    yhat: float


@dataclass(frozen=True)
class WarehouseFacts:
    now: dt.datetime  # the warehouse's clock: ages are measured against it
    newest: ExportFacts | None = None
    published: PublishedFacts | None = None
    accuracy: tuple[AccuracyFacts, ...] = ()
    landing: tuple[LandingFacts, ...] = ()


@dataclass(frozen=True)
class JobRun:
    """A job's latest finished run."""

    job: str
    status: str  # SUCCESS / FAILURE / CANCELED
    run_id: str
    end_time: float | None
    duration: float | None


@dataclass(frozen=True)
class StepTime:
    job: str
    step: str
    status: str
    seconds: float


@dataclass(frozen=True)
class CheckOutcome:
    """A check's evaluations in the latest run that evaluated it (a partitioned check: one per
    quarter of the run), by severity and blocking; or its latest run-less evaluation."""

    asset: str
    check: str
    severity: str  # ERROR / WARN
    blocking: bool
    passed: int
    failed: int
    evaluated_at: float


@dataclass(frozen=True)
class RefreshOutcome:
    """The last outcome of a Metabase refresh asset: a materialisation (refreshed, requested via
    n8n, skipped: not configured) or a failed step after its latest materialisation."""

    asset: str
    status: str
    succeeded: bool
    at: float
    run_id: str


@dataclass(frozen=True)
class DagsterFacts:
    window_seconds: float
    recent: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (job, status) -> runs created in window
    in_progress: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (job, status) -> runs not finished
    last_runs: tuple[JobRun, ...] = ()
    steps: tuple[StepTime, ...] = ()
    checks: tuple[CheckOutcome, ...] = ()
    refreshes: tuple[RefreshOutcome, ...] = ()


@dataclass(frozen=True)
class VolumeFacts:
    path: str
    total_bytes: int
    free_bytes: int  # available to the platform's (non-root) user


@dataclass(frozen=True)
class Limits:
    """The platform's settings the alert rules compare with (synoforecast/settings.py)."""

    freshness_max_age_days: int = 8
    accuracy_drop_points: float = 10.0
    max_smape: float = 30.0


# --------------------------------------------------------------------------- warehouse SQL

PRESENT_SQL = """select now(), to_regclass('ops.snapshots') is not null, to_regclass('ops.published_snapshot') is not null,
       to_regclass('forecast.evaluation') is not null, to_regclass('forecast.landing') is not null"""

# the newest accepted export as snapshot_freshness dates it (lib/monitoring/freshness_state.py):
# the partial index snapshots_accepted_mtime_idx (lib/warehouse/schema.py) answers it
NEWEST_EXPORT_SQL = """select sha256, file, file_mtime, sheets from ops.snapshots
 where status = 'accepted' order by file_mtime desc, first_seen_at desc limit 1"""

# the pointer (a table of one row at most: its key is `id boolean check (id)`), and its export by
# primary key
PUBLISHED_SQL = """select p.snapshot_sha256, p.published_at, s.file_mtime
  from ops.published_snapshot p left join ops.snapshots s on s.sha256 = p.snapshot_sha256
 where p.id
 limit 1"""

# per cohort, its latest scored quarter and the one before (index evaluation_partition_idx:
# cohort, quarter), every metric and level of those two quarters. The LIMIT keeps each lateral
# read a parameterised index scan per cohort (without it the planner may flatten the join into a
# hash join over the whole table); two quarters x 2 metrics x 2 levels is 8 rows.
ACCURACY_SQL = """select c.cohort, e.metric, e.level, e.quarter = latest.q as is_latest, e.quarter_label, e.smape,
       e.series_scored
  from unnest(%(cohorts)s::text[]) as c(cohort)
  cross join lateral (select max(x.quarter) as q from forecast.evaluation x where x.cohort = c.cohort) latest
  cross join lateral (select max(y.quarter) as q from forecast.evaluation y
                       where y.cohort = c.cohort and y.quarter < latest.q) previous
  cross join lateral (select z.metric, z.level, z.quarter, z.quarter_label, z.smape, z.series_scored
                        from forecast.evaluation z
                       where z.cohort = c.cohort and z.quarter in (latest.q, previous.q)
                       limit 64) e
 order by c.cohort, e.metric, e.level, e.quarter"""

# the landing analysts see (published.latest_landing): the published export's newest cut-off,
# by the index landing_snapshot_idx (snapshot_sha256, cutoff_date); per-customer series of the
# by-customer cohorts left out (their count is a setting: top_customers_n), their total kept
LANDING_SQL = """select l.cohort, l.series_id, l.metric, l.quarter_label, l.cutoff_date, l.elapsed_share, l.qtd_actual,
       l.forecast_start, l.yhat
  from forecast.landing l
 where l.snapshot_sha256 = %(sha256)s
   and l.cutoff_date = (select max(m.cutoff_date) from forecast.landing m where m.snapshot_sha256 = %(sha256)s)
   and (l.cohort <> all(%(by_customer)s::text[]) or l.series_id in ('total', 'all_other'))
 order by l.cohort, l.series_id, l.metric"""

# what a scrape asks the warehouse, by name (the integration test EXPLAINs each one)
QUERIES = {
    "newest_export": NEWEST_EXPORT_SQL,
    "published": PUBLISHED_SQL,
    "accuracy": ACCURACY_SQL,
    "landing": LANDING_SQL,
}


def _sheets(recorded: Mapping | None) -> tuple[SheetRows, ...]:
    out = []
    for name, sheet in sorted((recorded or {}).items()):
        if not isinstance(sheet, Mapping) or sheet.get("rows_loaded") is None:
            continue
        out.append(SheetRows(name, int(sheet["rows_loaded"]), sheet.get("rows_read"), sheet.get("rows_quarantined")))
    return tuple(out)


def accuracy_facts(rows: Iterable[Mapping]) -> tuple[AccuracyFacts, ...]:
    """Rows of ACCURACY_SQL (cohort, metric, level, is_latest, quarter_label, smape, series_scored)
    -> one fact per cohort, metric and level at the latest quarter, with the quarter before."""
    latest: dict[tuple[str, str, str], Mapping] = {}
    before: dict[tuple[str, str, str], Mapping] = {}
    for r in rows:
        key = (r["cohort"], r["metric"], r["level"])
        (latest if r["is_latest"] else before)[key] = r
    out = []
    for key in sorted(latest):
        r, p = latest[key], before.get(key)
        out.append(
            AccuracyFacts(
                *key,
                quarter_label=r["quarter_label"],
                smape=None if r["smape"] is None else float(r["smape"]),
                series_scored=int(r["series_scored"]),
                previous_quarter_label=p["quarter_label"] if p else None,
                previous_smape=None if p is None or p["smape"] is None else float(p["smape"]),
            )
        )
    return tuple(out)


def _dicts(cursor: psycopg.Cursor) -> list[dict]:
    names = [d.name for d in cursor.description or []]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def read_warehouse(conn: psycopg.Connection, cohorts: Sequence[str], by_customer: Sequence[str]) -> WarehouseFacts:
    """Everything the warehouse tells, from one consistent snapshot (a read-only, repeatable-read
    transaction). Tables a new warehouse does not have yet give no facts, not an error."""
    with conn.transaction():
        conn.execute("set transaction isolation level repeatable read, read only")
        now, snapshots, pointer, evaluation, landing = conn.execute(PRESENT_SQL).fetchone()
        newest = published = None
        if snapshots:
            row = conn.execute(NEWEST_EXPORT_SQL).fetchone()
            if row:
                newest = ExportFacts(row[0], row[1], row[2], _sheets(row[3]))
        if pointer and snapshots:
            row = conn.execute(PUBLISHED_SQL).fetchone()
            if row:
                published = PublishedFacts(row[0], row[1], row[2])
        accuracy: tuple[AccuracyFacts, ...] = ()
        if evaluation:
            accuracy = accuracy_facts(_dicts(conn.execute(ACCURACY_SQL, {"cohorts": list(cohorts)})))
        lands: tuple[LandingFacts, ...] = ()
        if landing and published is not None:
            params = {"sha256": published.sha256, "by_customer": list(by_customer)}
            lands = tuple(LandingFacts(**r) for r in _dicts(conn.execute(LANDING_SQL, params)))
    return WarehouseFacts(now=now, newest=newest, published=published, accuracy=accuracy, landing=lands)


def warehouse_source(
    url: str | Callable[[], str],
    cohorts: Sequence[str],
    by_customer: Sequence[str] = (),
    connect_timeout_s: int = 3,
    statement_timeout_ms: int = 5000,
) -> Callable[[], list[Metric]]:
    """A source reading the warehouse at `url` (or from a callable giving it, called at each
    scrape until it answers) on a connection of its own per scrape, read-only, with short
    timeouts: a warehouse that hangs costs a scrape seconds, not Prometheus' whole timeout."""

    def read() -> list[Metric]:
        target = url() if callable(url) else url
        try:
            conn = psycopg.connect(
                target,
                autocommit=True,
                connect_timeout=connect_timeout_s,
                application_name="synoforecast-metrics",
                options=f"-c statement_timeout={int(statement_timeout_ms)} -c default_transaction_read_only=on",
            )
        except psycopg.OperationalError as exc:
            raise SourceError(f"cannot connect to {safe_url(target)}: {str(exc).strip()}") from None
        with conn:
            facts = read_warehouse(conn, cohorts, by_customer)
        return warehouse_families(facts)

    return read


# --------------------------------------------------------------------------- volume


def volume_facts(paths: Sequence[str | Path]) -> tuple[VolumeFacts, ...]:
    out = []
    for path in paths:
        usage = shutil.disk_usage(path)
        out.append(VolumeFacts(str(path), int(usage.total), int(usage.free)))
    return tuple(out)


def volume_source(paths: Sequence[str | Path]) -> Callable[[], list[Metric]]:
    return lambda: volume_families(volume_facts(paths))


# --------------------------------------------------------------------------- families


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, labels=list(labels))


def _seconds(moment: dt.datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def limit_families(limits: Limits, version: str = "") -> list[Metric]:
    """The settings the alert rules compare with, and the platform's version."""
    max_age = gauge(
        "export_max_age_seconds",
        "SYNOFORECAST_FRESHNESS_MAX_AGE_DAYS in seconds: snapshot_freshness fails when the newest "
        "export is this old (default 8 days)",
    )
    max_age.add_metric([], limits.freshness_max_age_days * 86400.0)
    drop = gauge(
        "accuracy_drop_threshold_points",
        "SYNOFORECAST_ACCURACY_DROP_POINTS: sMAPE points of worsening against the previous scored quarter "
        "that the summary reports as an accuracy drop",
    )
    drop.add_metric([], float(limits.accuracy_drop_points))
    ceiling = gauge(
        "accuracy_max_smape", "SYNOFORECAST_MAX_SMAPE: the forecast accuracy check's sMAPE ceiling, percent"
    )
    ceiling.add_metric([], float(limits.max_smape))
    build = InfoMetricFamily(PREFIX + "build", "The synoforecast version serving these metrics")
    build.add_metric([], {"version": version or "unknown"})
    return [max_age, drop, ceiling, build]


def warehouse_families(f: WarehouseFacts) -> list[Metric]:
    now = _seconds(f.now)
    out: list[Metric] = []
    if f.newest is not None:
        when = _seconds(f.newest.export_date)
        stamp = gauge(
            "export_timestamp_seconds",
            "Export date (file modification time) of the newest accepted export, Unix seconds",
        )
        stamp.add_metric([], when)
        age = gauge(
            "export_age_seconds",
            "Age of the newest accepted export (its export date) on the warehouse clock, seconds; "
            "snapshot_freshness fails at synoforecast_export_max_age_seconds",
        )
        age.add_metric([], max(0.0, now - when))
        loaded = gauge("export_rows_loaded", "Rows the newest accepted export loaded, per sheet", ["sheet"])
        quarantined = gauge(
            "export_rows_quarantined", "Rows the newest accepted export quarantined, per sheet", ["sheet"]
        )
        read = gauge("export_rows_read", "Rows read from each sheet of the newest accepted export", ["sheet"])
        for s in f.newest.sheets:
            loaded.add_metric([s.sheet], s.loaded)
            if s.quarantined is not None:
                quarantined.add_metric([s.sheet], s.quarantined)
            if s.read is not None:
                read.add_metric([s.sheet], s.read)
        out += [stamp, age, loaded, quarantined, read]
    if f.published is not None:
        switched = gauge(
            "published_switch_timestamp_seconds",
            "When the published snapshot (what analysts and Metabase read) last switched, Unix seconds",
        )
        switched.add_metric([], _seconds(f.published.switched_at))
        out.append(switched)
        if f.published.export_date is not None:
            age = gauge(
                "published_export_age_seconds", "Age of the published export (its export date) on the warehouse clock"
            )
            age.add_metric([], max(0.0, now - _seconds(f.published.export_date)))
            out.append(age)
        if f.newest is not None:
            newest = gauge(
                "published_is_newest_export",
                "1 when analysts read the newest accepted export, 0 when a newer one waits",
            )
            newest.add_metric([], 1.0 if f.newest.sha256 == f.published.sha256 else 0.0)
            out.append(newest)
    if f.accuracy:
        labels = ["cohort", "metric", "level"]
        smape = gauge("forecast_smape", "sMAPE (0-200) of each cohort at its latest scored quarter", labels)
        previous = gauge(
            "forecast_smape_previous", "sMAPE of the same cohort, metric and level a scored quarter earlier", labels
        )
        scored = gauge("forecast_series_scored", "Series scored at the latest scored quarter", labels)
        quarter = InfoMetricFamily(
            PREFIX + "forecast_scored_quarter",
            "Each cohort's latest scored quarter and the one before",
            labels=["cohort"],
        )
        seen = set()
        for a in f.accuracy:
            key = [a.cohort, a.metric, a.level]
            if a.smape is not None:
                smape.add_metric(key, a.smape)
            if a.previous_smape is not None:
                previous.add_metric(key, a.previous_smape)
            scored.add_metric(key, a.series_scored)
            if a.cohort not in seen:
                seen.add(a.cohort)
                quarter.add_metric(
                    [a.cohort], {"quarter": a.quarter_label, "previous_quarter": a.previous_quarter_label or ""}
                )
        out += [smape, previous, scored, quarter]
    if f.landing:
        labels = ["cohort", "series", "metric"]
        yhat = gauge(
            "landing_forecast", "Where the quarter in progress will land (published export's newest cut-off)", labels
        )
        start = gauge("landing_quarter_start_forecast", "The quarter's forecast made at the last quarter close", labels)
        qtd = gauge("landing_quarter_to_date", "Quarter-to-date actual at the cut-off", labels)
        ratio = gauge(
            "landing_vs_forecast_ratio",
            "Landing divided by the quarter-start forecast (1 = on forecast; absent when that forecast is 0)",
            labels,
        )
        for r in f.landing:
            key = [r.cohort, r.series_id, r.metric]
            yhat.add_metric(key, r.yhat)
            start.add_metric(key, r.forecast_start)
            qtd.add_metric(key, r.qtd_actual)
            if r.forecast_start:
                ratio.add_metric(key, r.yhat / r.forecast_start)
        first = f.landing[0]
        cutoff = gauge("landing_cutoff_timestamp_seconds", "Cut-off (export day, 00:00 UTC) of the landing shown")
        cutoff.add_metric([], _seconds(dt.datetime.combine(first.cutoff_date, dt.time(), tzinfo=UTC)))
        elapsed = gauge("landing_elapsed_ratio", "Share of the quarter in progress elapsed at the cut-off")
        elapsed.add_metric([], first.elapsed_share)
        info = InfoMetricFamily(PREFIX + "landing", "The quarter in progress and the cut-off of the landing shown")
        info.add_metric([], {"quarter": first.quarter_label, "cutoff": first.cutoff_date.isoformat()})
        out += [yhat, start, qtd, ratio, cutoff, elapsed, info]
    return out


def dagster_families(f: DagsterFacts) -> list[Metric]:
    window = gauge("runs_recent_window_seconds", "The window synoforecast_runs_recent counts runs created in")
    window.add_metric([], f.window_seconds)
    recent = gauge("runs_recent", "Dagster runs created within the window, by job and status", ["job", "status"])
    for (job, status), n in sorted(f.recent.items()):
        recent.add_metric([job, status], n)
    active = gauge(
        "runs_in_progress", "Dagster runs queued or running now (any age), by job and status", ["job", "status"]
    )
    for (job, status), n in sorted(f.in_progress.items()):
        active.add_metric([job, status], n)
    last = gauge(
        "job_last_run_status",
        "1 for the status of each job's latest finished run (SUCCESS, FAILURE, CANCELED)",
        ["job", "status"],
    )
    ended = gauge("job_last_run_end_timestamp_seconds", "When each job's latest finished run ended", ["job"])
    took = gauge("job_last_run_duration_seconds", "Wall time of each job's latest finished run", ["job"])
    for r in f.last_runs:
        last.add_metric([r.job, r.status], 1.0)
        if r.end_time is not None:
            ended.add_metric([r.job], r.end_time)
        if r.duration is not None:
            took.add_metric([r.job], r.duration)
    steps = gauge(
        "step_duration_seconds", "Duration of each step of each job's latest finished run", ["job", "step", "status"]
    )
    for s in f.steps:
        steps.add_metric([s.job, s.step, s.status], s.seconds)
    checks = gauge(
        "check_evaluations",
        "Asset check evaluations in the latest run that evaluated each check (one per quarter for a "
        "partitioned check), by outcome, severity and blocking",
        ["asset", "check", "severity", "blocking", "outcome"],
    )
    checked = gauge("check_last_evaluation_timestamp_seconds", "When each check was last evaluated", ["asset", "check"])
    stamps: dict[tuple[str, str], float] = {}
    for c in sorted(f.checks, key=lambda c: (c.asset, c.check, c.severity, c.blocking)):
        base = [c.asset, c.check, c.severity, "true" if c.blocking else "false"]
        checks.add_metric([*base, "passed"], c.passed)
        checks.add_metric([*base, "failed"], c.failed)
        stamps[(c.asset, c.check)] = max(c.evaluated_at, stamps.get((c.asset, c.check), 0.0))
    for (asset, check), at in stamps.items():
        checked.add_metric([asset, check], at)
    refreshed = gauge(
        "metabase_refresh_success",
        "1 when the last Metabase refresh succeeded (refreshed, requested via n8n, or skipped: not configured), 0 when it failed",
        ["asset"],
    )
    refresh_status = gauge("metabase_refresh_status", "1 for the last Metabase refresh's outcome", ["asset", "status"])
    refresh_at = gauge(
        "metabase_refresh_timestamp_seconds", "When the last Metabase refresh's outcome was recorded", ["asset"]
    )
    for r in f.refreshes:
        refreshed.add_metric([r.asset], 1.0 if r.succeeded else 0.0)
        refresh_status.add_metric([r.asset, r.status], 1.0)
        refresh_at.add_metric([r.asset], r.at)
    return [window, recent, active, last, ended, took, steps, checks, checked, refreshed, refresh_status, refresh_at]


def volume_families(volumes: Sequence[VolumeFacts]) -> list[Metric]:
    free = gauge("volume_free_bytes", "Bytes free for the platform on the volume holding each data folder", ["path"])
    total = gauge("volume_size_bytes", "Size of the volume holding each data folder", ["path"])
    for v in volumes:
        free.add_metric([v.path], v.free_bytes)
        total.add_metric([v.path], v.total_bytes)
    return [free, total]


# --------------------------------------------------------------------------- the collector


class SourceError(RuntimeError):
    """A source could not be read; the message says why (and never holds a secret)."""


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, SourceError) else text


Source = Callable[[], Iterable[Metric]]


class PlatformCollector(Collector):
    """A prometheus_client collector over named sources, each read at every scrape. A source that
    raises is ``synoforecast_scrape_source_up{source} 0``, logged once per outage."""

    def __init__(
        self,
        sources: Sequence[tuple[str, Source]],
        limits: Limits = Limits(),
        version: str = "",
        logger: logging.Logger = log,
    ):
        self._sources = list(sources)
        self._limits = limits
        self._version = version
        self._log = logger
        self._down: dict[str, str] = {}
        self._lock = threading.Lock()

    def describe(self) -> Iterator[Metric]:
        return iter(())  # registering must not scrape

    def down(self) -> dict[str, str]:
        """Sources failing now, with the reason logged."""
        with self._lock:
            return dict(self._down)

    def collect(self) -> Iterator[Metric]:
        up = gauge(
            "scrape_source_up", "1 when the source answered this scrape, 0 when it failed (see the log)", ["source"]
        )
        took = gauge("scrape_source_duration_seconds", "Time this scrape spent reading each source", ["source"])
        out: list[Metric] = limit_families(self._limits, self._version)
        for name, read in self._sources:
            started = time.perf_counter()
            try:
                families = list(read())
            except Exception as exc:  # a source down never fails the scrape
                self._failed(name, exc)
                up.add_metric([name], 0.0)
            else:
                self._answered(name)
                up.add_metric([name], 1.0)
                out += families
            took.add_metric([name], time.perf_counter() - started)
        yield from out
        yield up
        yield took

    def _failed(self, source: str, exc: BaseException) -> None:
        reason = _reason(exc)
        with self._lock:
            first = source not in self._down
            self._down[source] = reason
        if first:
            self._log.warning(
                "metrics source %s is down: %s (synoforecast_scrape_source_up{source=\"%s\"} is 0 until it answers; "
                "logged once)",
                source,
                reason,
                source,
            )

    def _answered(self, source: str) -> None:
        with self._lock:
            was = self._down.pop(source, None)
        if was is not None:
            self._log.warning("metrics source %s is back (it failed with: %s)", source, was)


# --------------------------------------------------------------------------- serving


def registry_for(collector: Collector, process: bool = True):
    """A registry of its own holding `collector` (and this process's CPU and memory)."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if process:
        ProcessCollector(registry=registry)
    return registry


def serve(registry, host: str, port: int, stop: threading.Event, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve `registry` over HTTP on host:port (prometheus_client's threaded server: every path
    answers the exposition) until `stop` is set."""
    from prometheus_client import start_http_server

    from synoforecast.lib.serving import serve_until

    server, thread = start_http_server(port, addr=host, registry=registry)
    serve_until(server, stop, f"http://{host}:{server.server_port}/metrics", on_ready, thread=thread)
