"""Dagster's PostgreSQL storage as deployed (PooledPostgresStorage) against dagster-postgres' own
(one new connection per statement), in the same run, on the same workbook.

    python benchmarks/dagster_storage.py [--rows 3000] [--quarters 6] [--rounds 2] [--url URL]

Both ingest the same sample workbook with `synoforecast ingest` (snapshot, pipeline and landing
runs in one process), each into fresh databases of one PostgreSQL server that authenticates TCP
clients with scram-sha-256, as the Synology stack's does. Without --url the benchmark starts a
throwaway cluster (initdb and pg_ctl from /usr/lib/postgresql/*/bin or PATH; as root, run as the
`postgres` user). Rounds alternate stock and pooled. Prints, per variant, the median wall time of
the ingest, of the pipeline run's dbt step, and the connections the server accepted, with the
pooled/stock ratios and the machine's load.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import yaml

VARIANTS = {
    "stock": None,  # dagster-postgres' storage: postgres
    "pooled": ("synoforecast.instance.postgres_storage", "PooledPostgresStorage"),  # deploy/dagster.yaml
}
PASSWORD = "bench-password"


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        sys.exit(f"{name} not found: install PostgreSQL's server package or pass --url")
    return found[-1]


@contextmanager
def scram_cluster(port: int):
    """A throwaway cluster on 127.0.0.1:`port`, TCP clients authenticated with scram-sha-256."""
    folder = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    (folder / "pw").write_text(PASSWORD + "\n")
    shutil.chown(folder, "postgres") if as_postgres else None
    shutil.chown(folder / "pw", "postgres") if as_postgres else None
    data = folder / "data"
    subprocess.run(
        [*as_postgres, _pg_bin("initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={folder / 'pw'}",
         "--auth-local=trust", "--auth-host=scram-sha-256"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [*as_postgres, _pg_bin("pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "start", "-o",
         f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c max_connections=80"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_postgres, _pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _sessions(server: str) -> int:
    time.sleep(1.5)  # the cumulative statistics are flushed within a second of a backend's activity
    with psycopg.connect(f"{server}/postgres") as conn:
        return int(conn.execute("select coalesce(sum(sessions), 0) from pg_stat_database").fetchone()[0])


def _dbt_step_seconds(dagster_url: str) -> float:
    with psycopg.connect(dagster_url) as conn:
        return conn.execute(
            """select extract(epoch from e.timestamp - s.timestamp)::float from event_logs s
                 join event_logs e on e.run_id = s.run_id and e.step_key = s.step_key
                where s.step_key = 'synoforecast_dbt_assets' and s.dagster_event_type = 'STEP_START'
                  and e.dagster_event_type = 'STEP_SUCCESS' order by s.id desc limit 1"""
        ).fetchone()[0]


def one_ingest(server: str, variant: str, workbook: Path, round_no: int, work: Path) -> dict:
    dagster_db, warehouse_db = f"dagster_{variant}_{round_no}", f"warehouse_{variant}_{round_no}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        for db in (dagster_db, warehouse_db):
            conn.execute(f"drop database if exists {db}")
            conn.execute(f"create database {db}")
    storage_url = "postgresql+psycopg2" + f"{server}/{dagster_db}".removeprefix("postgresql")
    storage = (
        {"postgres": {"postgres_url": storage_url}}
        if VARIANTS[variant] is None
        else {
            "custom": {
                "module": VARIANTS[variant][0],
                "class": VARIANTS[variant][1],
                "config": {"postgres_url": storage_url},
            }
        }
    )
    home = work / f"{variant}-{round_no}"
    (home / "dagster_home").mkdir(parents=True)
    (home / "dagster_home" / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": storage, "telemetry": {"enabled": False}})
    )
    env = {
        **os.environ,
        "SYNOFORECAST_HOME": str(home / "project"),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "SYNOFORECAST_WAREHOUSE_URL": f"{server}/{warehouse_db}",
        "SYNOFORECAST_FORECAST_WORKERS": "1",
    }
    before = _sessions(server)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "synoforecast.cli.main", "ingest", str(workbook), "--quiet"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{variant}: the ingest failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return {
        "seconds": seconds,
        "dbt_step": _dbt_step_seconds(f"{server}/{dagster_db}"),
        "connections": _sessions(server) - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--quarters", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=55497)
    parser.add_argument("--url", help="postgresql://user:password@host:port of a scram-sha-256 server (no database)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-storage-work-"))
    try:
        workbook = work / "sample.xlsx"
        subprocess.run(
            [sys.executable, "-m", "synoforecast.cli.main", "sample-workbook", "--out", str(workbook),
             "--rows", str(args.rows), "--quarters", str(args.quarters)],
            check=True, capture_output=True, env={**os.environ, "SYNOFORECAST_HOME": str(work / "sample-home")},
        )  # fmt: skip
        cluster = scram_cluster(args.port) if args.url is None else None
        server = cluster.__enter__() if cluster else args.url.rstrip("/")
        try:
            results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
            for round_no in range(args.rounds):
                for variant in VARIANTS if round_no % 2 == 0 else reversed(VARIANTS):
                    result = one_ingest(server, variant, workbook, round_no, work)
                    results[variant].append(result)
                    print(
                        f"round {round_no + 1} {variant:>6}: ingest {result['seconds']:6.1f} s, dbt step "
                        f"{result['dbt_step']:6.1f} s, {result['connections']:5d} connections, "
                        f"load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        finally:
            if cluster:
                cluster.__exit__(None, None, None)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    median = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in results.items()}
    print(f"\nsample: --rows {args.rows} --quarters {args.quarters}; medians of {args.rounds} round(s)")
    print(f"{'':>12} {'stock':>10} {'pooled':>10} {'pooled/stock':>13}")
    for key, unit in (("seconds", "s"), ("dbt_step", "s"), ("connections", "")):
        s, p = median["stock"][key], median["pooled"][key]
        print(f"{key:>12} {s:>9.1f}{unit or ' '} {p:>9.1f}{unit or ' '} {p / s:>12.2f}x")
    print(f"load average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
