"""Inbox sensor tick with N files: the platform's stat-and-cursor scan against a naive
tick that hashes every file each time, in the same run.

    python benchmarks/sensor_tick.py [--files 5000] [--size 200000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from synoforecast.lib.ingest.inbox import InboxCursor, file_sha256, list_workbooks, scan_inbox


def naive_tick(inbox: Path) -> int:
    return len({file_sha256(e.path) for e in list_workbooks(inbox)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--size", type=int, default=200_000, help="bytes per file (a small workbook)")
    args = parser.parse_args()
    inbox = Path(tempfile.mkdtemp(prefix="synoforecast-inbox-"))
    try:
        payload = bytearray(args.size)
        for i in range(args.files):
            payload[:8] = i.to_bytes(8, "little")
            (inbox / f"export-{i:05d}.xlsx").write_bytes(payload)
        _, cursor = scan_inbox(inbox, InboxCursor())
        started = time.perf_counter()
        _, cursor = scan_inbox(inbox, cursor)
        first_stable = time.perf_counter() - started
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            restored = InboxCursor.load(cursor.dump())  # as the sensor does between ticks
            ready, cursor = scan_inbox(inbox, restored)
            timings.append(time.perf_counter() - started)
        steady = min(timings)
        started = time.perf_counter()
        naive_tick(inbox)
        naive = time.perf_counter() - started
        print(f"{args.files} files of {args.size / 1e3:.0f} kB")
        print(f"platform tick, steady state (stat + cursor round-trip): {steady * 1000:8.1f} ms")
        print(f"platform tick that hashes every newly stable file:      {first_stable * 1000:8.1f} ms (once)")
        print(f"naive tick hashing every file every time:               {naive * 1000:8.1f} ms")
        print(f"ratio: steady-state tick is {naive / steady:.0f}x faster than the naive tick")
    finally:
        shutil.rmtree(inbox, ignore_errors=True)


if __name__ == "__main__":
    main()
