"""Metrics scrape benchmark: what one Prometheus scrape of `synoforecast metrics serve` costs with
a 1M-row warehouse, against a full-table count of the same warehouse, in the same run.

    python benchmarks/metrics_scrape.py [--rows 1000000] [--landing-rows 1000000] [--runs 60] [--url ...]

Builds, in a throwaway PostgreSQL (pgserver; or --url) and a throwaway Dagster home:

- the warehouse as a real ingest leaves it: a sample workbook of ROWS SVR-RM lines (plus ROWS/2
  Consumer lines and C2) read and validated by the platform's reader, its snapshot recorded in
  ops.snapshots, its sheets loaded into raw.* a quarter per transaction (as benchmarks/ingest.py);
- years of history beside it: 2,000 older accepted exports in ops.snapshots, LANDING_ROWS rows of
  forecast.landing over those exports' cut-offs (the published pointer on the newest), and
  forecast.evaluation for every cohort over 200 quarters;
- RUNS finished runs of a 12-asset job with 40 checks (blocking and not) and a
  `activation/metabase_refresh` asset in the Dagster instance (SQLite, the embedded default's
  storage).

Then, after ANALYZE: EXPLAIN ANALYZE of every statement a scrape sends (lib/monitoring/metrics.py
QUERIES), the warehouse and Dagster sources alone, and whole HTTP scrapes of the real endpoint
(the first one after start, and warm), against the baseline `select count(*) from raw.svr_rm`
(and from forecast.landing). Prints times, ratios and the machine's load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

SHEETS = ("SVR-RM", "Consumer", "C2")


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    """Median wall seconds of `repeat` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


def load_export(url: str, rows: int, work: Path) -> dict:
    """A sample workbook read, recorded and loaded the way the snapshot and sheet assets do it."""
    import polars as pl

    from synoforecast.lib.ingest.snapshots import record_accepted, write_snapshot
    from synoforecast.lib.ingest.workbook import read_workbook
    from synoforecast.lib.quarters import to_key
    from synoforecast.lib.warehouse.connection import replace_rows
    from synoforecast.lib.warehouse.schema import RAW_TABLES, column_names
    from synoforecast.sample.generator import SampleSpec, write_sample_workbook
    from synoforecast.settings import get_settings, reader_options

    path = work / "bench.xlsx"
    started = time.perf_counter()
    write_sample_workbook(path, SampleSpec(rows=rows, seed=1, as_of=dt.date(2026, 8, 20), cutoff=dt.date(2026, 8, 20)))
    print(f"workbook: {rows:,} SVR-RM rows, {path.stat().st_size / 1e6:.0f} MB, {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    read = read_workbook(path, **reader_options(get_settings()))
    manifest = write_snapshot(read, work / "ingestion")
    snapshot_id = record_accepted(url, manifest, "bench")
    loaded = 0
    for name in SHEETS:
        sheet = read.sheets[name]
        table = sheet.spec.table
        frame = sheet.frame.with_columns(snapshot_id=pl.lit(snapshot_id, dtype=pl.Int32)).select(
            column_names(RAW_TABLES[table])
        )
        for quarter in read.complete_quarters:
            part = frame.filter(pl.col("quarter_start") == quarter)
            loaded += replace_rows(
                url, f"raw.{table}", part, "quarter_start = %s", (quarter,), "bench", to_key(quarter)
            ).rows_written
    print(f"loaded {loaded:,} rows into raw.* (read, record, load: {time.perf_counter() - started:.0f} s)")
    return manifest


def add_history(url: str, landing_rows: int) -> None:
    """Older exports, their landings, and 200 quarters of evaluation per cohort."""
    from synoforecast.lib.forecasting.cohorts import COHORTS
    from synoforecast.lib.warehouse.connection import connect

    cohorts = [c.name for c in COHORTS]
    exports = 2000
    per_cutoff = max(1, landing_rows // exports)
    series = max(1, per_cutoff // (len(cohorts) * 2))
    started = time.perf_counter()
    with connect(url) as conn, conn.transaction():
        conn.execute(
            """insert into ops.snapshots (sha256, file, size_bytes, file_mtime, status, sheets)
               select md5(i::text) || md5(i::text), 'old-' || i || '.xlsx', 1000000,
                      timestamptz '2026-08-10' - (i || ' days')::interval, 'accepted',
                      '{"SVR-RM": {"rows_loaded": 1000, "rows_read": 1000, "rows_quarantined": 0}}'::jsonb
                 from generate_series(1, %s) i""",
            (exports,),
        )
        conn.execute(
            """insert into forecast.landing (cohort, series_id, metric, quarter_start, quarter_label, cutoff_date,
                   week_of_quarter, elapsed_share, elapsed_selling_share, qtd_actual, forecast_start,
                   weight_extrapolated, weight_naive, yhat, snapshot_sha256, run_id)
               select c, 's' || s, m, date_trunc('quarter', d)::date, 'Q', d, 1, 0.5, 0.5, 100, 200, 0.3, 0.3,
                      210, md5(i::text) || md5(i::text), 'bench'
                 from generate_series(1, %s) i
                 cross join lateral (select (date '2026-08-10' - i) as d) day
                 cross join unnest(%s::text[]) c
                 cross join generate_series(1, %s) s
                 cross join unnest(array['units', 'revenue']) m""",
            (exports, cohorts, series),
        )
        conn.execute(
            """insert into forecast.evaluation (cohort, quarter, quarter_label, metric, series_scored, mape, smape,
                   run_id, level)
               select c, (date '1976-01-01' + (q * 3 || ' months')::interval)::date, 'Q' || q, m, 10, 12.0,
                      10.0 + (q %% 7), 'bench', lv
                 from unnest(%s::text[]) c cross join generate_series(0, 199) q
                 cross join unnest(array['units', 'revenue']) m cross join unnest(array['total', 'parts']) lv""",
            (cohorts,),
        )
        conn.execute(
            """insert into ops.published_snapshot (id, snapshot_sha256, run_id)
               values (true, md5('1') || md5('1'), 'bench')
               on conflict (id) do update set snapshot_sha256 = excluded.snapshot_sha256"""
        )
    with connect(url, autocommit=True) as conn:
        conn.execute("analyze")
        counts = {
            t: conn.execute(f"select count(*) from {t}").fetchone()[0]
            for t in (
                "raw.svr_rm",
                "raw.consumer",
                "raw.c2",
                "ops.snapshots",
                "forecast.landing",
                "forecast.evaluation",
            )
        }
    print(
        "warehouse: "
        + ", ".join(f"{t} {n:,}" for t, n in counts.items())
        + f" (history {time.perf_counter() - started:.0f} s)"
    )


def dagster_runs(home: Path, runs: int):
    """RUNS finished runs of a job with 12 assets, 40 checks and the Metabase refresh asset."""
    import dagster as dg

    shutil.copyfile(Path(__file__).resolve().parents[1] / "synoforecast" / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)

    def make(key, checks, previous):
        @dg.asset(key=key, deps=[previous] if previous else [], check_specs=checks)
        def _asset(context):
            yield dg.MaterializeResult(asset_key=key)
            for spec in checks:
                yield dg.AssetCheckResult(asset_key=key, check_name=spec.name, passed=True)

        return _asset

    assets, previous = [], None
    for i in range(12):
        key = dg.AssetKey(["bench", f"a{i}"])
        checks = [dg.AssetCheckSpec(f"c{i}_{j}", asset=key, blocking=j % 2 == 0) for j in range(4 if i < 10 else 0)]
        assets.append(make(key, checks, previous))
        previous = key

    @dg.asset(key=dg.AssetKey(["activation", "metabase_refresh"]), deps=[previous])
    def metabase_refresh():
        return dg.MaterializeResult(metadata={"status": "refreshed"})

    instance = dg.DagsterInstance.get()
    started = time.perf_counter()
    for _ in range(runs):
        dg.materialize([*assets, metabase_refresh], instance=instance)
    print(f"dagster: {runs} runs of 13 assets and 40 checks in {time.perf_counter() - started:.0f} s")
    return instance


def explain(url: str) -> None:
    from synoforecast.lib.forecasting.cohorts import COHORTS
    from synoforecast.lib.monitoring.metrics import QUERIES
    from synoforecast.lib.warehouse.connection import connect

    with connect(url) as conn:
        (sha,) = conn.execute("select snapshot_sha256 from ops.published_snapshot").fetchone()
        params = {
            "cohorts": [c.name for c in COHORTS],
            "by_customer": [c.name for c in COHORTS if c.by_customer],
            "sha256": sha,
        }
        print("EXPLAIN ANALYZE of each scrape query (default planner settings):")
        for name, sql in QUERIES.items():
            plan = [r[0] for r in conn.execute(f"explain (analyze, buffers) {sql}", params).fetchall()]
            seq = sorted(set(re.findall(r"Seq Scan on (\S+)", "\n".join(plan))))
            took = next((line.split(":")[1].strip() for line in plan if line.startswith("Execution Time")), "?")
            index = sorted(set(re.findall(r"Index (?:Only )?Scan(?: Backward)? using (\S+)", "\n".join(plan))))
            print(
                f"  {name:14s} {took:>12s}  indexes: {', '.join(index) or '-'}  seq scans: {', '.join(seq) or 'none'}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="SVR-RM rows of the sample export")
    parser.add_argument("--landing-rows", type=int, default=1_000_000, help="rows of forecast.landing history")
    parser.add_argument("--runs", type=int, default=60, help="finished runs in the Dagster instance")
    parser.add_argument("--url", help="PostgreSQL URL (default: a throwaway pgserver)")
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()

    from prometheus_client.parser import text_string_to_metric_families

    from synoforecast.instance.metrics import DagsterSource
    from synoforecast.lib.forecasting.cohorts import COHORTS
    from synoforecast.lib.monitoring.metrics import (
        PlatformCollector,
        registry_for,
        serve,
        volume_source,
        warehouse_source,
    )
    from synoforecast.lib.warehouse.connection import connect, ensure_schema

    cores = os.cpu_count()
    print(f"machine: {cores} cores, load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at start")
    work = Path(tempfile.mkdtemp(prefix="synoforecast-metrics-bench-"))
    server = None
    try:
        url = args.url
        if not url:
            import pgserver

            server = pgserver.get_server(str(work / "pg"), cleanup_mode="stop")
            url = server.get_uri()
        ensure_schema(url)
        load_export(url, args.rows, work)
        add_history(url, args.landing_rows)
        (work / "dagster_home").mkdir()
        instance = dagster_runs(work / "dagster_home", args.runs)
        explain(url)

        def count(table: str):
            with connect(url) as conn:
                return conn.execute(f"select count(*) from {table}").fetchone()[0]

        raw_s, raw_n = timed(lambda: count("raw.svr_rm"), 5)
        landing_s, _ = timed(lambda: count("forecast.landing"), 5)
        cohorts = [c.name for c in COHORTS]
        warehouse = warehouse_source(url, cohorts, [c.name for c in COHORTS if c.by_customer])
        warehouse_s, families = timed(warehouse, args.scrapes)
        cold_source = DagsterSource(instance)
        dagster_cold_s, _ = timed(cold_source)
        dagster_warm_s, _ = timed(cold_source, args.scrapes)

        collector = PlatformCollector(
            [
                ("warehouse", warehouse_source(url, cohorts, [c.name for c in COHORTS if c.by_customer])),
                ("dagster", DagsterSource(instance)),
                ("volume", volume_source([work])),
            ]
        )
        stop, ready = threading.Event(), []
        thread = threading.Thread(target=serve, args=(registry_for(collector), "127.0.0.1", 0, stop, ready.append))
        thread.start()
        while not ready:
            time.sleep(0.05)

        def scrape() -> str:
            with urllib.request.urlopen(ready[0], timeout=60) as response:
                return response.read().decode()

        first_s, text = timed(scrape)
        warm_s, text = timed(scrape, args.scrapes)
        stop.set()
        thread.join()
        samples = sum(len(f.samples) for f in text_string_to_metric_families(text))
        up = re.findall(r'synoforecast_scrape_source_up\{source="(\w+)"\} (\S+)', text)
        print(f"baseline  select count(*) from raw.svr_rm ({raw_n:,} rows): {raw_s * 1000:8.1f} ms (median of 5)")
        print(f"baseline  select count(*) from forecast.landing:           {landing_s * 1000:8.1f} ms (median of 5)")
        print(
            f"warehouse source (connect + 5 queries + shaping):          {warehouse_s * 1000:8.1f} ms (median of {args.scrapes})"
        )
        print(f"dagster source, first read (finished runs' summaries):     {dagster_cold_s * 1000:8.1f} ms")
        print(
            f"dagster source, warm:                                      {dagster_warm_s * 1000:8.1f} ms (median of {args.scrapes})"
        )
        print(f"HTTP scrape, first after start:                            {first_s * 1000:8.1f} ms")
        print(f"HTTP scrape, warm:                                         {warm_s * 1000:8.1f} ms (median of {args.scrapes}); "
              f"{len(text) / 1024:.0f} KiB, {samples} samples; sources up: {dict(up)}")  # fmt: skip
        print(
            f"ratio: a warm scrape costs {warm_s / raw_s:.2f}x one count(*) of raw.svr_rm; its warehouse part "
            f"{warehouse_s / raw_s:.3f}x (the count scans {raw_n:,} rows, the scrape reads none of them)"
        )
        print(f"machine: load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at the end")
        del families
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
