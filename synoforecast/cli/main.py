"""`synoforecast` command: the sale-out forecasting platform from the shell.

Errors a user can fix are printed as one short paragraph with a non-zero exit,
never as a traceback. Exit codes: 0 done, 1 failed, 2 refused (the input was not
accepted), 64 usage error (the command line itself is wrong), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import time
import warnings
from pathlib import Path

EXIT_REFUSED = 2
EXIT_FAILED = 1
EXIT_USAGE = 64  # sysexits EX_USAGE: argparse's own 2 would read as "refused"


_LOG = None  # the `synoforecast.cli` logger when SYNOFORECAST_LOG_FORMAT=json (main() sets it)


def _eprint(message: str) -> None:
    if _LOG is not None:
        _LOG.error(message)
        return
    print(message, file=sys.stderr, flush=True)


def _progress(message: str) -> None:
    if _LOG is not None:
        _LOG.info(message)
        return
    print(f"synoforecast: {message}", file=sys.stderr, flush=True)


def _configure_logs() -> None:
    """Progress and error lines as JSON objects when the settings ask for it (lib/logs.py)."""
    global _LOG
    try:
        from synoforecast.settings import get_settings

        log_format = get_settings().log_format
    except Exception:  # a bad setting is reported by the command itself, in text
        return
    if log_format == "json":
        import logging

        from synoforecast.lib.logs import configure

        _LOG = logging.getLogger("synoforecast.cli")
        configure("json", sys.stderr)


def cmd_sample_workbook(args: argparse.Namespace) -> int:
    from synoforecast.sample.generator import SampleSpec, write_sample_workbook

    spec = SampleSpec(
        rows=args.rows,
        seed=args.seed,
        quarters=args.quarters,
        start=dt.date.fromisoformat(args.start) if args.start else None,
        cutoff=dt.date.fromisoformat(args.as_of) if args.as_of else None,
    )
    started = time.perf_counter()
    try:
        stats = write_sample_workbook(args.out, spec)
    except OSError as exc:
        _eprint(_unwritable(args.out, exc, "pass --out a path in a folder you can write"))
        return EXIT_FAILED
    result = stats.to_dict()
    result["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(result, indent=2, default=str))
    return 0


def _unwritable(path: str | Path, exc: OSError, fix: str) -> str:
    """One line for a sample workbook that could not be written: where, why, what to do."""
    return f"error: cannot write the sample workbook {path}: {exc.strerror or exc}; {fix}"


def cmd_ingest(args: argparse.Namespace) -> int:
    from synoforecast.lib.ingest.workbook import WorkbookRefused, read_workbook
    from synoforecast.settings import get_settings, reader_options

    path = Path(args.path)
    settings = get_settings()
    if args.dry_run:
        try:
            read = read_workbook(path, **reader_options(settings))
            report = read.report()
        except WorkbookRefused as exc:
            report = {
                "ok": False,
                "refused": True,
                "file": str(path.resolve()),
                "sha256": _sha_or_none(path),
                "error": str(exc),
                "sheets": {},
                "ignored_sheets": [],
            }
    else:
        from synoforecast.cli.runner import ingest_workbook

        quiet = args.json or args.quiet
        with _tool_output(settings, "ingest", quiet) as progress:
            outcome = ingest_workbook(
                path, progress=progress, quiet=quiet, allow_shrink=args.allow_shrink, republish=args.republish
            )
        report = outcome.report()
    if args.json:
        print(json.dumps(report, default=str))
    elif report["ok"]:
        _print_ingest(report, dry_run=args.dry_run)
    if not report["ok"]:
        refused = report.get("refused", False)
        if not args.json:
            _eprint(f"{'refused' if refused else 'failed'}: {report['error']}")
        return EXIT_REFUSED if refused else EXIT_FAILED
    return 0


def _sha_or_none(path: Path) -> str | None:
    from synoforecast.lib.ingest.inbox import file_sha256

    return file_sha256(path) if path.is_file() else None


INGEST_COLUMNS = (
    ("sheet", "<"),
    ("rows read", ">"),
    ("loaded", ">"),
    ("dupes", ">"),
    ("quarant.", ">"),
    ("unknown", ">"),
    ("units", ">"),
    ("revenue", ">"),
    ("quarters", "<"),
)


def ingest_table(sheets: dict) -> list[str]:
    """The per-sheet table, each column as wide as its widest figure plus two spaces."""
    rows = [
        [
            name,
            f"{s['rows_read']:,}",
            f"{s['rows_loaded']:,}",
            f"{s['duplicates_removed']:,}",
            f"{s['rows_quarantined']:,}",
            f"{s['unknown_models']:,}",
            f"{s['units_total']:,}",
            f"{s['revenue_total']:,.2f}",
            f"{s['quarters'][0]}..{s['quarters'][-1]}" if s["quarters"] else "-",
        ]
        for name, s in sheets.items()
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, (h, _) in enumerate(INGEST_COLUMNS)]

    def line(cells):
        return "  " + "  ".join(f"{c:{a}{w}}" for c, (_, a), w in zip(cells, INGEST_COLUMNS, widths)).rstrip()

    return [line([h for h, _ in INGEST_COLUMNS]), *(line(r) for r in rows)]


def _print_ingest(report: dict, dry_run: bool) -> None:
    print(f"{'valid' if dry_run else 'ingested'}: {report['file']} (sha256 {report['sha256'][:12]})")
    for row in ingest_table(report["sheets"]):
        print(row)
    if report.get("ignored_sheets"):
        print(f"  ignored sheets: {', '.join(report['ignored_sheets'])}")
    if report.get("republished"):
        print("  re-published on purpose: an export older than the one published before (--republish)")
    if report.get("restated"):
        print(f"  restated published quarters ({len(report['restated'])}, largest first; ops.restatements):")
        for line in report["restated"][:10]:
            print(f"    {line}")
    if report.get("partitions"):
        print(
            f"  materialised {len(report['partitions'])} quarter partitions in {report['seconds']} s; "
            f"runs {', '.join(r[:8] for r in report['run_ids'])}"
        )


def cmd_forecast(args: argparse.Namespace) -> int:
    from synoforecast.lib.forecasting import ForecastInputError, forecast_csv

    try:
        frame = forecast_csv(
            args.input, args.output, horizon=args.horizon, season_length=args.season_length, levels=tuple(args.level)
        )
    except (ForecastInputError, FileNotFoundError) as exc:
        _eprint(f"error: {exc}")
        return EXIT_REFUSED
    print(f"wrote {len(frame)} forecast rows for {frame['unique_id'].nunique()} series to {args.output}")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from synoforecast.lib.forecasting import ForecastInputError, read_long_csv
    from synoforecast.lib.forecasting.backtest import rolling_backtest, scorecard

    try:
        history = read_long_csv(args.input)
        bt = rolling_backtest(history, windows=args.windows, season_length=args.season_length, levels=tuple(args.level))
    except (ForecastInputError, FileNotFoundError) as exc:
        _eprint(f"error: {exc}")
        return EXIT_REFUSED
    card = scorecard(bt, levels=tuple(args.level))
    if args.json:
        print(
            json.dumps(
                {
                    "windows": args.windows,
                    "horizon": 1,
                    "series": int(history["unique_id"].nunique()),
                    "models": card.astype(object).where(card.notna(), None).to_dict(orient="records"),
                },
                indent=2,
            )
        )
        return 0
    print(f"rolling-origin backtest: {args.windows} origins, h=1, {history['unique_id'].nunique()} series")
    print(card.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from synoforecast.cli.runner import ingest_workbook
    from synoforecast.lib.redaction import safe_url
    from synoforecast.lib.warehouse.connection import WarehouseError
    from synoforecast.sample.generator import SampleSpec, write_sample_workbook
    from synoforecast.settings import ensure_dagster_home, get_settings

    started = time.perf_counter()
    settings = get_settings()
    ensure_dagster_home(settings)
    _progress(f"project home {settings.home}; Dagster storage in {os.environ['DAGSTER_HOME']}")
    try:
        url = _warehouse_url()
    except WarehouseError as exc:
        _eprint(f"error: {exc}")
        return EXIT_FAILED
    _progress(f"warehouse {safe_url(url)}")
    path = settings.inbox_dir / f"sample-sale-out-{dt.date.today().isoformat()}.xlsx"
    _progress(f"writing a sample workbook ({args.rows:,} SVR-RM rows) to {path}")
    try:
        write_sample_workbook(path, SampleSpec(rows=args.rows, seed=args.seed))
    except OSError as exc:
        _eprint(
            _unwritable(
                path,
                exc,
                "the demo drops it into the inbox (SYNOFORECAST_INBOX), which must be writable; the image's "
                "/inbox is the NAS share the stack mounts read-only: set SYNOFORECAST_INBOX to a folder of your own",
            )
        )
        return EXIT_FAILED
    with _tool_output(settings, "demo", args.quiet) as progress:
        outcome = ingest_workbook(path, progress=progress, quiet=args.quiet)
    if not outcome.ok:
        _eprint(f"demo failed: {outcome.error}")
        return EXIT_FAILED
    _print_forecasts(url)
    _print_landing(url, evaluation=False)
    print(f"\nDone in {time.perf_counter() - started:.0f} s.")
    print(f"Open the Dagster UI (asset graph, runs, checks):  {_own_command()} ui   then browse http://127.0.0.1:3000")
    print(
        f"Query the warehouse:  psql \"{safe_url(url)}\"   (analysts: published.chart_series, published.latest, "
        "published.latest_landing, published.vintages, published.accuracy, published.narratives; docs/analysts.md)"
    )
    print(
        f"The landing's replay evaluation by week:  {_own_command()} landing;  every narrative:  "
        f"{_own_command()} narratives"
    )
    _print_narratives(url, "svr_rm_overall", "revenue")
    return 0


def _own_command() -> str:
    """How to run this command again: its full path when the venv is not activated."""
    import shutil

    beside = Path(sys.executable).with_name("synoforecast")
    on_path = shutil.which("synoforecast")
    if beside.exists() and (on_path is None or Path(on_path).resolve() != beside.resolve()):
        return str(beside)
    return "synoforecast"


class _ToolSink:
    """Where Dagster's step logs and dbt's console lines go when they are not for the reader:
    a log file. (dagster-dbt writes every dbt line to stdout, which runner sends to stderr.)"""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, text: str) -> int:
        return self._fh.write(text)

    def flush(self) -> None:
        self._fh.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        self._fh.close()


@contextlib.contextmanager
def _tool_output(settings, command: str, quiet: bool):
    """On a terminal (and not --quiet) step logs and dbt's lines stream to stderr as before.
    Otherwise (--quiet, --json, or stderr is a file or pipe) they go to
    <data>/logs/<command>-<time>.log and stderr keeps the progress lines and errors only."""
    real = sys.stderr
    if not quiet and real.isatty():
        yield _progress
        return
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sink = _ToolSink(logs / f"{command}-{dt.datetime.now():%Y%m%d-%H%M%S}.log")

    def progress(message: str) -> None:
        if _LOG is not None:  # its handler writes to the real stderr
            _LOG.info(message)
        else:
            print(f"synoforecast: {message}", file=real, flush=True)

    progress(f"step logs and dbt output: {sink.path}")
    sys.stderr = sink
    try:
        yield progress
    finally:
        sys.stderr = real
        sink.close()


def _warehouse_url() -> str:
    from synoforecast.settings import warehouse_url

    return warehouse_url()


def _reachable_warehouse_url() -> str | None:
    """The warehouse URL, or None after printing why there is none (the caller exits 1)."""
    from synoforecast.lib.warehouse.connection import WarehouseError

    try:
        return _warehouse_url()
    except WarehouseError as exc:
        _eprint(f"error: {exc}")
        return None


def _print_forecasts(url: str) -> None:
    from synoforecast.lib.forecasting.cohorts import COHORTS
    from synoforecast.lib.forecasting.report import latest_forecasts
    from synoforecast.lib.rendering import text_table

    rows = latest_forecasts(url)
    if rows.is_empty():
        print("no forecasts published")
        return
    first = rows.row(0, named=True)
    print(f"\nNext-quarter forecasts for {first['target_label']} (trained on data up to {first['as_of_label']}):")
    sections, table = [], []  # (cohort heading, its rows in the table, the line after them)
    for cohort in COHORTS:
        part = rows.filter(rows["cohort"] == cohort.name)
        series = part["series_id"].unique(maintain_order=True).to_list()
        for sid in series[:6]:
            units = part.filter((part["series_id"] == sid) & (part["metric"] == "units")).row(0, named=True)
            revenue = part.filter((part["series_id"] == sid) & (part["metric"] == "revenue")).row(0, named=True)
            interval = (
                f"{units['yhat_lo_80']:,.0f}..{units['yhat_hi_80']:,.0f}" if units["yhat_lo_80"] is not None else "-"
            )
            name = units["series_name"] if units["series_name"] == sid else f"{units['series_name']} ({sid})"
            table.append((f"  {name}", f"{units['yhat']:,.0f}", interval, f"{revenue['yhat']:,.0f}"))
        more = (
            f"      ... and {len(series) - 6} more series (forecast.forecasts where cohort = '{cohort.name}')"
            if len(series) > 6
            else None
        )
        sections.append((f"  {cohort.name} - {cohort.title}", min(len(series), 6), more))
    # one table, so the columns line up across cohorts; the headings stand between its rows
    header, *body = text_table(("cohort / series", "units", "80% interval", "revenue USD"), table).split("\n")
    print(header)
    for heading, count, more in sections:
        print(heading)
        for _ in range(count):
            print(body.pop(0))
        if more:
            print(more)


def _print_landing(url: str, evaluation: bool = True, cutoff: str | None = None) -> bool:
    """The landing of the quarter in progress (SVR-RM and C2 totals first, every cohort's
    totals), and with `evaluation` the replay backtest by week: False when there is none."""
    from synoforecast.lib.forecasting.cohorts import COHORTS
    from synoforecast.lib.landing.report import landing_at, landing_evaluation_at
    from synoforecast.lib.rendering import text_table

    rows = landing_at(url, cutoff)
    if rows.is_empty():
        print(
            "\nno landing published"
            + (f" for {cutoff}" if cutoff else "")
            + " (a snapshot with a quarter in progress lands it after its pipeline run)"
        )
        return False
    first = rows.row(0, named=True)
    print(
        f"\nWhere {first['quarter_label']} will land (export of {first['cutoff_date']}, week "
        f"{first['week_of_quarter']} of 13, {first['elapsed_share']:.0%} of the quarter elapsed):"
    )
    table = []
    for cohort in COHORTS:
        heads = [cohort.parent or "total"] if cohort.parent or cohort.name != "regional" else []
        part = rows.filter((rows["cohort"] == cohort.name) & (rows["series_id"].is_in(heads) if heads else True))
        for r in part.head(4 if not heads else 2).iter_rows(named=True):
            change = "-" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%"
            table.append(
                (
                    f"{cohort.name} / {r['series_name']}",
                    r["metric"],
                    f"{r['qtd_actual']:,.0f}",
                    f"{r['forecast_start']:,.0f}",
                    f"{r['yhat']:,.0f}",
                    change,
                    f"{r['yhat_lo_80']:,.0f}..{r['yhat_hi_80']:,.0f}",
                )
            )
    print(text_table(("cohort / series", "metric", "to date", "forecast", "landing", "vs fcst", "80% range"), table))
    print(f"  ... {rows.height} rows in all: forecast.latest_landing")
    scores = landing_evaluation_at(url, cutoff) if evaluation else None
    if scores is None or scores.is_empty():
        return True
    print(
        "\nReplay evaluation (past quarters replayed at every week; sMAPE, weights learned without the "
        "quarter replayed): landing vs the quarter-start forecast alone vs QTD / elapsed share"
    )
    print(
        text_table(
            ("cohort", "metric", "level", "week", "elapsed", "landing", "forecast", "QTD/share", "cov80", "cov95", "n"),
            [
                (
                    r["cohort"],
                    r["metric"],
                    r["level"],
                    r["week_of_quarter"],
                    f"{r['elapsed_share']:.0%}",
                    f"{r['smape_landing']:.2f}",
                    f"{r['smape_start']:.2f}",
                    f"{r['smape_qtd_share']:.2f}",
                    f"{r['coverage_80']:.1f}",
                    f"{r['coverage_95']:.1f}",
                    r["replays"],
                )
                for r in scores.iter_rows(named=True)
            ],
        )
    )
    return True


def cmd_landing(args: argparse.Namespace) -> int:
    url = _reachable_warehouse_url()
    if url is None:
        return EXIT_FAILED
    if args.json:
        from synoforecast.lib.landing.report import landing_at, landing_evaluation_at

        rows, scores = landing_at(url, args.cutoff), landing_evaluation_at(url, args.cutoff)
        print(json.dumps({"landing": rows.to_dicts(), "evaluation": scores.to_dicts()}, default=str, indent=2))
        return 0 if rows.height else EXIT_FAILED
    return 0 if _print_landing(url, evaluation=True, cutoff=args.cutoff) else EXIT_FAILED


def _print_narratives(url: str, cohort: str | None = None, metric: str | None = None) -> bool:
    """The published export's narratives (published.narratives), optionally one cohort/metric."""
    import textwrap

    from synoforecast.lib.activation.cohort_narratives import published_narratives

    rows = published_narratives(url)
    if cohort:
        rows = rows.filter(rows["cohort"] == cohort)
    if metric:
        rows = rows.filter(rows["metric"] == metric)
    if rows.is_empty():
        print("\nno narrative published (the pipeline writes them when it publishes an export)")
        return False
    for r in rows.iter_rows(named=True):
        print(f"\n{r['cohort']} · {r['metric']} · {r['target_label']}:")
        print(textwrap.fill(r["narrative"], width=100, initial_indent="  ", subsequent_indent="  "))
    return True


def cmd_narratives(args: argparse.Namespace) -> int:
    url = _reachable_warehouse_url()
    if url is None:
        return EXIT_FAILED
    if args.json:
        from synoforecast.lib.activation.cohort_narratives import published_narratives

        rows = published_narratives(url)
        print(json.dumps(rows.to_dicts(), default=str, indent=2))
        return 0 if rows.height else EXIT_FAILED
    return 0 if _print_narratives(url, args.cohort, args.metric) else EXIT_FAILED


# Dagster messages `synoforecast ui` makes untrue: the project's dagster.yaml IS used (copied into
# DAGSTER_HOME), and `dagster dev` is what the docs start. Matched literally, nothing else hidden.
UI_SILENCED_WARNINGS = ("ignore:Function `dev_command` is superseded",)


def cmd_ui(args: argparse.Namespace) -> int:
    from synoforecast.settings import ensure_dagster_home, get_settings, instance_template

    settings = get_settings()
    home = ensure_dagster_home(settings)
    template, used = instance_template(settings), home / "dagster.yaml"
    if used.exists() and template.read_bytes() != used.read_bytes():
        _progress(
            f"note: {used} (the instance config in use) differs from {template}; "
            "it was copied on first use: compare them if the project's file changed"
        )
    dagster = Path(sys.executable).with_name("dagster")
    workspace = settings.home / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.exists() else ["-m", "synoforecast.definitions"]
    command = [str(dagster) if dagster.exists() else "dagster", "dev", *target, "-h", args.host, "-p", str(args.port)]
    _progress(f"DAGSTER_HOME={home}; starting {' '.join(command[1:])}")
    warnings = [w for w in (os.environ.get("PYTHONWARNINGS") or "").split(",") if w]
    os.environ["PYTHONWARNINGS"] = ",".join([*warnings, *UI_SILENCED_WARNINGS])
    # run from DAGSTER_HOME: from the checkout, Dagster warns that the dagster.yaml it finds there is
    # not used, although its copy in DAGSTER_HOME is (workspace.yaml paths are relative to that file)
    os.chdir(home)
    os.execv(command[0], command) if dagster.exists() else os.execvp(command[0], command)
    return 0


def cmd_warehouse_url(args: argparse.Namespace) -> int:
    from synoforecast.lib.warehouse.connection import WarehouseError

    try:
        print(_warehouse_url())
    except WarehouseError as exc:
        _eprint(f"error: {exc}")
        return EXIT_FAILED
    return 0


def cmd_warehouse(args: argparse.Namespace) -> int:
    """status / stop of the embedded PostgreSQL; `url` prints the URL (starting it if needed)."""
    from synoforecast.lib.redaction import safe_url
    from synoforecast.lib.warehouse.embedded_pg import embedded_status, stop_embedded
    from synoforecast.settings import configured_warehouse_url, get_settings

    if args.action == "url":
        return cmd_warehouse_url(args)
    settings = get_settings()
    configured = configured_warehouse_url(settings)
    if configured:
        print(f"configured warehouse {safe_url(configured)}: its lifecycle is not managed here")
        return 0 if args.action == "status" else EXIT_FAILED
    if args.action == "status":
        print(f"embedded PostgreSQL {embedded_status(settings.pgdata_dir).describe()}")
        return 0
    was_running = stop_embedded(settings.pgdata_dir)
    print(f"embedded PostgreSQL {'stopped' if was_running else 'was not running'} ({settings.pgdata_dir})")
    return 0


def cmd_metabase(args: argparse.Namespace) -> int:
    """`provision`: create or update the synoforecast collection, questions and dashboard
    (lib/activation/metabase_provision.py) in the Metabase of the METABASE_* variables."""
    import json

    from synoforecast.lib.activation.metabase import MetabaseConfig, MetabaseError
    from synoforecast.lib.activation.metabase_catalog import catalog_docs
    from synoforecast.lib.activation.metabase_provision import provision_metabase
    from synoforecast.lib.warehouse.connection import WarehouseError
    from synoforecast.settings import DBT_PROJECT_DIR

    try:
        config = MetabaseConfig.from_variables(os.environ)
        report = provision_metabase(config, docs=catalog_docs(DBT_PROJECT_DIR, _warehouse_url()))
    except (MetabaseError, WarehouseError) as exc:
        _eprint(f"error: {' '.join(str(exc).split())}")
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report.to_metadata(), indent=2))
        return 0
    for key, state in report.objects.items():
        card = report.card_ids.get(key)
        where = f" (card {card})" if card else f" (dashboard {report.dashboard_id})" if key == "dashboard" else ""
        print(f"{key:<28} {state}{where}")
    print(f"collection {report.collection_id}, dashboard {report.dashboard_id}: {report.writes} object(s) changed")
    if report.catalog is not None:
        print(
            f"catalog: {len(report.catalog.tables)} table(s) described from dbt, "
            f"{report.catalog_writes} description(s) written"
        )
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    """The Prometheus endpoint (lib/monitoring/metrics.py): `serve` until stopped, or `print` one scrape."""
    from synoforecast.instance.metrics import platform_collector
    from synoforecast.lib.logs import configure
    from synoforecast.lib.monitoring.metrics import registry_for, serve
    from synoforecast.settings import get_settings

    settings = get_settings()
    if _LOG is None:  # text: the sources' "down" and "back" lines, on stderr
        configure(settings.log_format)
    collector = platform_collector(settings, volumes=args.volume or [], window_s=args.runs_window_hours * 3600)
    registry = registry_for(collector)
    if args.action == "print":
        from prometheus_client import generate_latest

        sys.stdout.write(generate_latest(registry).decode())
        return EXIT_FAILED if collector.down() else 0
    return _serve_until_stopped(
        "metrics",
        args,
        lambda stop: serve(registry, args.host, args.port, stop, on_ready=lambda url: _progress(f"metrics on {url}")),
    )


def _serve_until_stopped(what: str, args: argparse.Namespace, serve) -> int:
    """`serve(stop)` in the foreground: SIGTERM (docker stop) sets `stop` and Ctrl-C interrupts it,
    both exit 0; an address that cannot be bound (port in use, address not available) is one line."""
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        serve(stop)
    except OSError as exc:
        _eprint(f"error: cannot serve {what} on {args.host}:{args.port}: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        pass
    return 0


def cmd_dbt_docs(args: argparse.Namespace) -> int:
    """The dbt docs site (cli/dbt_docs.py): `build` it into a folder, or `serve` it until stopped."""
    from synoforecast.cli.dbt_docs import build, page_to_serve
    from synoforecast.lib.logs import configure
    from synoforecast.lib.transform.dbt_docs import serve
    from synoforecast.settings import get_settings

    settings = get_settings()
    try:
        page = build(Path(args.out)) if args.action == "build" else page_to_serve(settings.data_dir, _progress)
    except RuntimeError as exc:  # DbtDocsError, or ensure_manifest's: one line either way
        _eprint(f"error: {' '.join(str(exc).split())}")
        return EXIT_FAILED
    if args.action == "build":
        print(f"wrote {page} ({page.stat().st_size / 1e6:.1f} MB): open it in a browser, or put it on any web server")
        return 0
    if _LOG is None:  # text: one line a request, on stderr
        configure(settings.log_format)
    return _serve_until_stopped(
        "the dbt docs",
        args,
        lambda stop: serve(page, args.host, args.port, stop, on_ready=lambda url: _progress(f"dbt docs on {url}")),
    )


def cmd_doctor(args: argparse.Namespace) -> int:
    from synoforecast.cli.doctor import exit_code, render_table, run_checks

    checks = run_checks(progress=lambda m: _progress(f"doctor: checking {m}"))
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        print(render_table(checks))
    return exit_code(checks)


class _Parser(argparse.ArgumentParser):
    """argparse, but a wrong command line exits 64, not 2 (which means "refused" here)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="synoforecast",
        description=__doc__.split("\n\n")[0].strip(),
        epilog="Run `synoforecast COMMAND --help` for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="write a sample workbook, run the whole graph, print forecasts")
    demo.add_argument("--rows", type=int, default=20_000, help="SVR-RM rows in the sample (default 20000)")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument(
        "--quiet", action="store_true", help="step logs and dbt output to a log file (progress lines and errors stay)"
    )
    demo.set_defaults(func=cmd_demo)

    ingest = sub.add_parser("ingest", help="validate a workbook and materialise it and everything downstream")
    ingest.add_argument("path")
    ingest.add_argument("--dry-run", action="store_true", help="validate and count only; change nothing")
    ingest.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ingest.add_argument(
        "--quiet", action="store_true", help="step logs and dbt output to a log file (progress lines and errors stay)"
    )
    ingest.add_argument(
        "--allow-shrink",
        action="store_true",
        help="publish even if a sheet's rows or totals fell by more than the allowed share "
        "(SYNOFORECAST_SHRINK_MAX_SHARE, default 50%%) against the published snapshot",
    )
    ingest.add_argument(
        "--republish",
        action="store_true",
        help="publish this export although it is older (export date or last sale date) than the "
        "published one: a deliberate rollback, recorded in ops.snapshots",
    )
    ingest.set_defaults(func=cmd_ingest)

    forecast = sub.add_parser("forecast", help="forecast a long-format CSV (unique_id, ds, y)")
    forecast.add_argument("--input", required=True)
    forecast.add_argument("--output", required=True)
    forecast.add_argument("--horizon", type=int, default=1)
    forecast.add_argument("--season-length", type=int, default=4)
    forecast.add_argument("--level", type=int, nargs="+", default=[80, 95])
    forecast.set_defaults(func=cmd_forecast)

    backtest = sub.add_parser(
        "backtest", help="rolling-origin backtest (h=1) of every candidate model and the selection"
    )
    backtest.add_argument("--input", required=True)
    backtest.add_argument("--windows", type=int, default=4, help="forecast origins (default 4)")
    backtest.add_argument("--season-length", type=int, default=4)
    backtest.add_argument("--level", type=int, nargs="+", default=[80, 95])
    backtest.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    backtest.set_defaults(func=cmd_backtest)

    landing = sub.add_parser("landing", help="where the quarter in progress will land, and the replay evaluation")
    landing.add_argument("--cutoff", help="YYYY-MM-DD: a past snapshot's cut-off (default: the newest)")
    landing.add_argument("--json", action="store_true", help="print the landing rows and the evaluation as JSON")
    landing.set_defaults(func=cmd_landing)

    told = sub.add_parser("narratives", help="the published forecasts in words, per cohort and metric")
    told.add_argument("--cohort", help="one cohort, e.g. svr_rm_overall")
    told.add_argument("--metric", choices=("units", "revenue"))
    told.add_argument("--json", action="store_true", help="print the narratives as JSON")
    told.set_defaults(func=cmd_narratives)

    sample = sub.add_parser("sample-workbook", help="write a realistic sample sale-out workbook")
    sample.add_argument("--out", required=True)
    sample.add_argument("--rows", type=int, default=20_000)
    sample.add_argument("--seed", type=int, default=42)
    sample.add_argument("--start", help="first quarter start, YYYY-MM-DD (default: --quarters back from today)")
    sample.add_argument("--quarters", type=int, default=24)
    sample.add_argument(
        "--as-of",
        help="YYYY-MM-DD: the export as it would have looked on that day (the same "
        "history as without the option, cut at that day, with that export date)",
    )
    sample.set_defaults(func=cmd_sample_workbook)

    ui = sub.add_parser("ui", help="start the Dagster UI and daemon (dagster dev) with persistent storage")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    url = sub.add_parser("warehouse-url", help="print the warehouse URL (starts the embedded one if needed)")
    url.set_defaults(func=cmd_warehouse_url)

    wh = sub.add_parser(
        "warehouse", help="the embedded PostgreSQL: status, stop, url (it keeps running between commands until stopped)"
    )
    wh.add_argument("action", choices=["status", "stop", "url"])
    wh.set_defaults(func=cmd_warehouse)

    metrics = sub.add_parser(
        "metrics", help="the Prometheus endpoint: export age, runs, checks, accuracy, landing, Metabase, disk"
    )
    metrics.add_argument("action", choices=["serve", "print"], help="serve over HTTP, or print one scrape")
    metrics.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    metrics.add_argument("--port", type=int, default=9109, help="port (default 9109)")
    metrics.add_argument(
        "--volume",
        action="append",
        metavar="PATH",
        help="a folder whose volume's free bytes to expose (repeatable; default the data folder)",
    )
    metrics.add_argument(
        "--runs-window-hours",
        type=float,
        default=24.0,
        help="synoforecast_runs_recent counts the runs created in this many hours (default 24)",
    )
    metrics.set_defaults(func=cmd_metrics)

    docs = sub.add_parser(
        "dbt-docs", help="the dbt docs site (models, columns, lineage, exposures): serve it, or build it into a folder"
    )
    docs_actions = docs.add_subparsers(dest="action", required=True, metavar="ACTION")
    docs_serve = docs_actions.add_parser("serve", help="serve the page over HTTP (the release's, or one generated)")
    docs_serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    docs_serve.add_argument("--port", type=int, default=8580, help="port (default 8580)")
    docs_build = docs_actions.add_parser("build", help="generate the single-file site, offline (no database)")
    docs_build.add_argument("--out", required=True, metavar="DIR", help="the folder to write index.html into")
    docs.set_defaults(func=cmd_dbt_docs)

    mb = sub.add_parser("metabase", help="Metabase as code: provision the synoforecast collection and dashboard")
    mb.add_argument("action", choices=["provision"], help="create or update the questions and the dashboard")
    mb.add_argument("--json", action="store_true", help="print the report as JSON")
    mb.set_defaults(func=cmd_metabase)

    doctor = sub.add_parser("doctor", help="check warehouse, Dagster storage, dbt, inbox, Metabase and webhooks")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not os.environ.get("SYNOFORECAST_DEBUG"):
        # Third-party warnings (platformdirs' RuntimeDirWarning as root, library deprecations)
        # are not for the person reading the output; SYNOFORECAST_DEBUG=1 shows them
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", module=r"synoforecast(\.|$)")
    _configure_logs()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _eprint("interrupted")
        return 130
    except Exception as exc:  # the last line of defence: one clear line, details on request
        if os.environ.get("SYNOFORECAST_DEBUG"):
            raise
        from synoforecast.settings import SettingsError

        if isinstance(exc, SettingsError):  # the operator's to fix, and the message says how
            _eprint(f"error: {exc}")
            return EXIT_FAILED
        _eprint(f"error: {type(exc).__name__}: {exc}\n(set SYNOFORECAST_DEBUG=1 for the traceback)")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
