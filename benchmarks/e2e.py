"""End-to-end benchmark: the whole `synoforecast ingest` as a user runs it, stage by stage.

    python benchmarks/e2e.py [--rows 20000 200000 1000000] [--no-changed] [--no-reingest]
                             [--no-ingest-baseline] [--no-forecast-baseline] [--changed-max-rows N]
                             [--baseline-max-rows N] [--quick] [--json OUT]

For each size, in a brand-new project home (embedded PostgreSQL, SQLite Dagster storage):

1. `synoforecast ingest` of a sample workbook (first load: every quarter);
2. the same workbook again (re-ingest of identical content: nothing may change);
3. the weekly export: the first workbook is dated a week ago, this one today, so only
   the quarter in progress differs (`--no-weekly` skips it; so does a quarter that began
   less than a week ago); its baseline, in the same run, lands that snapshot again with the
   landing's replay store emptied;
4. a workbook in which only the latest complete quarter differs from the one before
   (`--no-changed` skips it);
5. baselines in the same run: the ingestion baseline (pandas.read_excel(openpyxl) +
   to_sql, benchmarks/ingest.py) against the snapshot + sheet stages, and the forecast
   baseline (the per-partition path, `SYNOFORECAST_FORECAST_PASS=per_partition`, a
   second first load in its own home) against the cohort stages.

Every `synoforecast ingest` runs as its own process: wall time and peak RSS are that
process's (dbt, a child of it, included; the PostgreSQL server is not). Stage times come
from the Dagster runs' step stats in the run storage. `--quick` is a CI smoke test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import run_measured  # benchmarks/measure.py: peak RSS without this process's own

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLI = str(Path(sys.executable).with_name("synoforecast"))
STAGES = (
    "snapshot",
    "sheets",
    "dbt",
    "svr_rm_overall",
    "svr_rm_top_customers",
    "regional",
    "consumer_trend",
    "c2_scorecard",
    "evaluation",
    "published",
    "activation",
    "landing",
)


def stage_of(step_key: str) -> str:
    """The benchmark's stage of a Dagster step key (asset key path joined by '__'; a check's
    step key is its asset's plus the check name). Checks count with their asset's stage."""
    if step_key.startswith("workbook_snapshot"):
        return "snapshot"
    if step_key.startswith(("raw_running__", "forecast__landing", "activation__landing_")):
        return "landing"  # the landing job: the quarter in progress, its landing, summary
    if step_key.startswith("raw__"):
        return "sheets"
    if "dbt" in step_key:
        return "dbt"
    if step_key.startswith("forecast__forecast_evaluation"):
        return "evaluation"
    if step_key.startswith("forecast__"):
        name = step_key.removeprefix("forecast__")
        return next((c for c in STAGES[3:8] if name == c or name == f"{c}_{c}_published"), "other")
    if step_key.startswith("published__"):
        return "published"
    if step_key.startswith("activation__"):
        return "activation"
    return "other"


def _env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNOFORECAST_", "DAGSTER_"))}
    env.update(SYNOFORECAST_HOME=str(home), DAGSTER_HOME=str(home / "data" / "dagster_home"))
    passthrough = os.environ.get("SYNOFORECAST_FORECAST_PASS")
    if passthrough:
        env["SYNOFORECAST_FORECAST_PASS"] = passthrough
    env.update(extra or {})
    return env


def step_times(home: Path, run_ids: list[str]) -> dict[str, float]:
    """Seconds per Dagster step of the runs (from Dagster's run storage)."""
    from synoforecast.instance.sqlite_storage import open_instance

    steps: dict[str, float] = {}
    with open_instance(home / "data" / "dagster_home") as instance:
        for run_id in run_ids:
            for stat in instance.get_run_step_stats(run_id):
                if stat.start_time is not None and stat.end_time is not None:
                    steps[stat.step_key] = round(steps.get(stat.step_key, 0.0) + stat.end_time - stat.start_time, 2)
    return steps


def stages(steps: dict[str, float]) -> dict[str, float]:
    """The steps summed per benchmark stage."""
    out: dict[str, float] = {}
    for key, seconds in steps.items():
        out[stage_of(key)] = out.get(stage_of(key), 0.0) + seconds
    return {k: round(v, 2) for k, v in out.items()}


def ingest(home: Path, workbook: Path, extra_env: dict[str, str] | None = None) -> dict:
    """One whole `synoforecast ingest` process: wall, peak RSS, stages and steps, its report.
    The home holds the project's dagster.yaml, as a checkout's home (the demo's) does."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    result, wall, rss = run_measured([CLI, "ingest", str(workbook), "--json"], _env(home, extra_env))
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit(
            f"ingest of {workbook} printed no report (exit {result.returncode}):\n{result.stderr[-3000:]}"
        ) from None
    if not report.get("ok"):
        raise SystemExit(f"ingest of {workbook} failed: {report.get('error')}\n{result.stderr[-3000:]}")
    return {**measured(home, report, wall, rss), "partitions": len(report["partitions"]), "report": report}


RELAND = """
import json, sys
from synoforecast.settings import ensure_dagster_home, get_settings
ensure_dagster_home(get_settings())
import dagster as dg
from synoforecast.definitions import defs
from synoforecast.cli.runner import IngestOutcome, land_in_process
outcome = IngestOutcome(ok=True, file="baseline", sha256=sys.argv[1])
with dg.DagsterInstance.get() as instance:
    land_in_process(instance, defs, sys.argv[1], outcome, lambda _: None, True)
print(json.dumps({"ok": outcome.ok, "error": outcome.error, "run_ids": outcome.run_ids}))
"""


def landing_without_stored_replays(home: Path, sha256: str) -> dict:
    """The weekly case's baseline: the same snapshot landed again with the replay store
    emptied, so every complete quarter is replayed (the landing as it was before the store)."""
    from synoforecast.settings import load_settings

    shutil.rmtree(load_settings(_env(home)).landing_replays_dir, ignore_errors=True)
    result, wall, rss = run_measured([sys.executable, "-c", RELAND, sha256], _env(home))
    report = json.loads(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 else {}
    if not report.get("ok"):
        raise SystemExit(f"landing baseline failed: {report.get('error')}\n{result.stderr[-3000:]}")
    return {**measured(home, report, wall, rss), "partitions": 0}


def measured(home: Path, report: dict, wall: float, rss: float) -> dict:
    """What a measured run reports: wall time, peak memory and its Dagster steps by stage."""
    steps = step_times(home, report["run_ids"])
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(rss),
        "stages": stages(steps),
        "steps": steps,
        "runs": len(report["run_ids"]),
    }


def stop_warehouse(home: Path) -> None:
    subprocess.run([CLI, "warehouse", "stop"], env=_env(home), capture_output=True, text=True)


def warehouse_url(home: Path) -> str:
    out = subprocess.run([CLI, "warehouse-url"], env=_env(home), capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def write_workbook(path: Path, rows: int, quarters: int, cutoff: dt.date | None = None) -> float:
    from synoforecast.sample.generator import SampleSpec, write_sample_workbook

    started = time.perf_counter()
    write_sample_workbook(
        path, SampleSpec(rows=rows, seed=1, quarters=quarters, cutoff=cutoff)
    )  # `sample-workbook --as-of`
    return time.perf_counter() - started


def previous_week() -> dt.date | None:
    """The export date a week ago, if that day lies in today's quarter (else no weekly case):
    its complete quarters are today's, only the quarter in progress is a week shorter."""
    today = dt.date.today()
    last = today - dt.timedelta(days=7)
    return last if (last.year, (last.month - 1) // 3) == (today.year, (today.month - 1) // 3) else None


def change_last_complete_quarter(source: Path, target: Path, quarter_key: str, lines: int = 25) -> int:
    """A copy of `source` in which only SVR-RM lines of the quarter `quarter_key` differ
    (their units + 1): every other quarter keeps its content. Returns the lines changed."""
    import openpyxl
    import polars as pl

    from synoforecast.lib.ingest.workbook import Reference, read_workbook
    from synoforecast.settings import DBT_PROJECT_DIR

    read = read_workbook(source, reference=Reference.from_seeds(Path(DBT_PROJECT_DIR) / "seeds"))
    frame = read.sheets["SVR-RM"].frame
    rows = frame.filter(pl.col("quarter_start") == dt.date.fromisoformat(quarter_key))["source_row"].to_list()
    book = openpyxl.load_workbook(source)
    sheet = next(ws for ws in book.worksheets if ws.title.strip().casefold() == "svr-rm")
    header_row = read.sheets["SVR-RM"].header_row
    units_col = next(c.column for c in sheet[header_row] if str(c.value or "").strip().casefold() in ("units", "qty"))
    changed = 0
    for row in rows:
        cell = sheet.cell(row=row, column=units_col)
        if isinstance(cell.value, int) and not isinstance(cell.value, bool):
            cell.value += 1
            changed += 1
            if changed == lines:
                break
    book.save(target)
    stamp = source.stat().st_mtime + 60  # a later export of the same period
    os.utime(target, (stamp, stamp))
    return changed


def ingestion_baseline(workbook: Path, url: str) -> dict:
    """benchmarks/ingest.py's two sides on this workbook and warehouse, each in its own process:
    the platform's read + validate + COPY, and pandas.read_excel(openpyxl) + to_sql."""
    out = {}
    for side in ("platform", "baseline"):
        result, wall, rss = run_measured(
            [sys.executable, str(HERE / "ingest.py"), "--child", side, "--workbook", str(workbook), "--url", url],
            dict(os.environ),
        )
        if result.returncode != 0:
            raise SystemExit(f"ingestion {side} failed:\n{result.stderr[-2000:]}")
        out[side] = {**json.loads(result.stdout.strip().splitlines()[-1]), "peak_rss_mb": round(rss)}
    return out


def _cohort_seconds(stages: dict[str, float]) -> float:
    return sum(stages.get(s, 0.0) for s in STAGES[3:8])


def bench_size(rows: int, quarters: int, work: Path, args: argparse.Namespace) -> dict:
    workbook = work / f"sample-{rows}.xlsx"
    week_ago = None if args.no_weekly else previous_week()
    out: dict = {
        "rows": rows,
        "quarters": quarters,
        "generate_s": round(write_workbook(workbook, rows, quarters, cutoff=week_ago), 1),
    }
    home = work / f"home-{rows}"
    try:
        out["first"] = first = ingest(home, workbook)
        print(_line(f"{rows:>9,} first ingest", first), flush=True)
        if not args.no_reingest:
            out["reingest"] = again = ingest(home, workbook)
            print(_line(f"{rows:>9,} re-ingest (same)", again), flush=True)
        latest = workbook
        if week_ago is not None:  # the weekly export: a week more of the running quarter, nothing else
            latest = work / f"sample-{rows}-weekly.xlsx"
            write_workbook(latest, rows, quarters)
            out["weekly"] = weekly = ingest(home, latest)
            print(_line(f"{rows:>9,} weekly (running quarter only)", weekly), flush=True)
            out["weekly_baseline"] = relanded = landing_without_stored_replays(home, weekly["report"]["sha256"])
            ours, theirs = weekly["stages"].get("landing", 0.0), relanded["stages"].get("landing", 0.0)
            out["weekly_landing_ratio"] = round(theirs / ours, 2) if ours else None
            print(
                f"{rows:>9,} weekly landing step: replays reused {ours:.1f} s, every quarter replayed "
                f"{theirs:.1f} s: {out['weekly_landing_ratio']}x",
                flush=True,
            )
        if not args.no_changed and rows <= args.changed_max_rows and first["report"]["partitions"]:
            changed_wb = work / f"sample-{rows}-changed.xlsx"
            out["changed_lines"] = change_last_complete_quarter(latest, changed_wb, first["report"]["partitions"][-1])
            out["changed"] = changed = ingest(home, changed_wb)
            print(_line(f"{rows:>9,} last quarter changed", changed), flush=True)
        if not args.no_ingest_baseline and rows <= args.baseline_max_rows:
            out["ingest_baseline"] = base = ingestion_baseline(workbook, warehouse_url(home))
            ours, theirs = base["platform"], base["baseline"]
            out["ingest_ratio"] = round(theirs["seconds"] / ours["seconds"], 1)
            print(
                f"{rows:>9,} read+validate+COPY: platform {ours['seconds']:.1f} s (peak {ours['peak_rss_mb']} MB), "
                f"pandas read_excel(openpyxl)+to_sql {theirs['seconds']:.1f} s (peak {theirs['peak_rss_mb']} MB): "
                f"{out['ingest_ratio']}x",
                flush=True,
            )
    finally:
        stop_warehouse(home)
    if not args.no_forecast_baseline and rows <= args.baseline_max_rows:
        base_home = work / f"home-{rows}-per-partition"
        try:
            out["forecast_baseline"] = base = ingest(
                base_home, workbook, {"SYNOFORECAST_FORECAST_PASS": "per_partition"}
            )
            print(_line(f"{rows:>9,} per-partition first", base), flush=True)
            ours, theirs = _cohort_seconds(first["stages"]), _cohort_seconds(base["stages"])
            out["forecast_ratio"] = round(theirs / ours, 2) if ours else None
            print(
                f"{rows:>9,} cohort forecasts: default {ours:.1f} s, per-partition {theirs:.1f} s: "
                f"{out['forecast_ratio']}x; whole ingest {base['wall_s'] / first['wall_s']:.2f}x",
                flush=True,
            )
        finally:
            stop_warehouse(base_home)
    for run in ("first", "reingest", "weekly", "changed", "forecast_baseline"):
        if run in out:
            out[run].pop("report", None)
    return out


def _line(title: str, m: dict) -> str:
    stages = ", ".join(
        f"{k} {v:.1f}"
        for k, v in sorted(m["stages"].items(), key=lambda kv: STAGES.index(kv[0]) if kv[0] in STAGES else 99)
    )
    return (
        f"{title:<34} wall {m['wall_s']:6.1f} s  peak {m['peak_rss_mb']:5} MB  "
        f"{m['partitions']:2} partitions  [{stages}]"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 200_000, 1_000_000])
    parser.add_argument("--quarters", type=int, default=24, help="quarters in the sample (default 24)")
    parser.add_argument("--no-reingest", action="store_true")
    parser.add_argument(
        "--no-weekly",
        action="store_true",
        help="skip the weekly case (the first export dated a week ago, then today's)",
    )
    parser.add_argument("--no-changed", action="store_true", help="skip the 'only the last quarter changed' case")
    parser.add_argument(
        "--changed-max-rows",
        type=int,
        default=200_000,
        help="sizes above this skip the changed case (openpyxl rewrites the workbook: minutes at 1M)",
    )
    parser.add_argument(
        "--baseline-max-rows",
        type=int,
        default=200_000,
        help="sizes above this skip both baselines (pandas+openpyxl takes ~8 min at 1M)",
    )
    parser.add_argument("--no-ingest-baseline", action="store_true", help="skip pandas+openpyxl+to_sql")
    parser.add_argument("--no-forecast-baseline", action="store_true", help="skip the per-partition forecast run")
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke (~35 s): 2,000 rows, 8 quarters, first ingest and re-ingest only"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.quarters = [2_000], 8
        args.no_ingest_baseline = args.no_forecast_baseline = args.no_changed = args.no_weekly = True
    load = os.getloadavg()
    print(
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (others may share the machine)",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="synoforecast-e2e-"))
    results = []
    try:
        for rows in args.rows:
            results.append(bench_size(rows, args.quarters, work, args))
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"load_average": load, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
