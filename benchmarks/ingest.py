"""Ingest benchmark: the platform's read + validate + load against a pandas baseline.

    python benchmarks/ingest.py [--rows 1000000] [--url postgresql://...] [--skip-baseline]

Generates a sample workbook with ROWS SVR-RM lines (plus ROWS/2 Consumer lines and the
C2 sheet), then, each in its own child process so peak memory is measured per side:

- platform: `read_workbook` (calamine, header detection, parsing, validation,
  duplicates, quarantine) + one transaction per quarter (delete + COPY) into raw.*,
  exactly what the workbook_snapshot and sheet assets do;
- baseline: `pandas.read_excel(engine="openpyxl")` of the same three sheets +
  `DataFrame.to_sql` into PostgreSQL.

Prints both wall times, the ratio and each side's peak RSS. Without --url it starts a
throwaway PostgreSQL (pgserver) in a temp folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from measure import run_measured  # benchmarks/measure.py: peak RSS without this process's own

SHEETS = ("SVR-RM", "Consumer", "C2")


def platform_load(path: str, url: str) -> dict:
    import polars as pl

    from synoforecast.lib.ingest.workbook import read_workbook
    from synoforecast.lib.quarters import to_key
    from synoforecast.lib.warehouse.connection import ensure_schema, replace_rows
    from synoforecast.lib.warehouse.schema import RAW_TABLES, column_names
    from synoforecast.settings import get_settings, reader_options

    ensure_schema(url)
    started = time.perf_counter()
    read = read_workbook(path, **reader_options(get_settings()))
    read_s = time.perf_counter() - started
    rows = 0
    for name in SHEETS:
        sheet = read.sheets[name]
        table = sheet.spec.table
        frame = sheet.frame.with_columns(snapshot_id=pl.lit(1, dtype=pl.Int32)).select(column_names(RAW_TABLES[table]))
        for quarter in read.complete_quarters:
            part = frame.filter(pl.col("quarter_start") == quarter)
            rows += replace_rows(
                url, f"raw.{table}", part, "quarter_start = %s", (quarter,), "bench", to_key(quarter)
            ).rows_written
    return {"seconds": time.perf_counter() - started, "read_validate_s": read_s, "rows_loaded": rows}


def baseline_load(path: str, url: str) -> dict:
    import pandas as pd
    import sqlalchemy

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    started = time.perf_counter()
    rows = 0
    for name in SHEETS:
        frame = pd.read_excel(path, sheet_name=name, engine="openpyxl")
        frame.to_sql(
            f"baseline_{name.lower().replace('-', '_')}",
            engine,
            schema="public",
            if_exists="replace",
            index=False,
            chunksize=10_000,
        )
        rows += len(frame)
    return {"seconds": time.perf_counter() - started, "rows_loaded": rows}


def _child(side: str, path: str, url: str) -> tuple[dict, float]:
    """Run one side in a fresh interpreter; return its result and its own peak RSS (MB)."""
    result, _wall, peak = run_measured([sys.executable, __file__, "--child", side, "--workbook", path, "--url", url])
    if result.returncode != 0:
        raise SystemExit(f"{side} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1]), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", help="PostgreSQL URL (default: a throwaway pgserver)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--child", choices=["platform", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--workbook", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        run = platform_load if args.child == "platform" else baseline_load
        print(json.dumps(run(args.workbook, args.url)))
        return

    import datetime as dt

    from synoforecast.sample.generator import SampleSpec, write_sample_workbook

    work = Path(tempfile.mkdtemp(prefix="synoforecast-bench-"))
    server = None
    try:
        url = args.url
        if not url:
            import pgserver

            server = pgserver.get_server(str(work / "pg"), cleanup_mode="stop")
            url = server.get_uri()
        path = work / "bench.xlsx"
        started = time.perf_counter()
        stats = write_sample_workbook(path, SampleSpec(rows=args.rows, seed=1, as_of=dt.date(2026, 8, 20)))
        total = sum(stats.sheets[s].rows for s in SHEETS)
        print(
            f"workbook: {args.rows:,} SVR-RM rows ({total:,} rows in {', '.join(SHEETS)}), "
            f"{path.stat().st_size / 1e6:.0f} MB, written in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        platform, platform_rss = _child("platform", str(path), url)
        print(
            f"platform  read+validate+load: {platform['seconds']:7.1f} s  (read+validate "
            f"{platform['read_validate_s']:.1f} s)  rows loaded {platform['rows_loaded']:,}  "
            f"peak RSS {platform_rss:,.0f} MB",
            flush=True,
        )
        if args.skip_baseline:
            return
        baseline, baseline_rss = _child("baseline", str(path), url)
        print(
            f"baseline  read_excel+to_sql:  {baseline['seconds']:7.1f} s  rows loaded {baseline['rows_loaded']:,}  "
            f"peak RSS {baseline_rss:,.0f} MB"
        )
        print(
            f"ratio: platform is {baseline['seconds'] / platform['seconds']:.1f}x faster, "
            f"uses {platform_rss / baseline_rss:.2f}x the baseline's peak memory"
        )
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
