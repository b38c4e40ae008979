"""Run a command and read its wall time and peak RSS, without the caller's memory in it.

Linux counts a child's peak RSS from the memory it starts with: a child forked (or
vfork-spawned) by a benchmark that has just written a 1M-row workbook in-process starts
its count at the benchmark's own size, whatever the child then uses (the e2e benchmark
reported 1,593 MB for every process after it had rewritten a 200k-row workbook with
openpyxl). So the command runs under a small fresh interpreter that forks it: its count
starts from that interpreter's few MB. The peak is of the command and its reaped children
(dbt, the fit workers), the largest single process among them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

# argv: the file to write the peak (KiB) to, then the command
REAPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run `cmd`; return its result (stdout and stderr captured), wall seconds and peak RSS in MB."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = os.path.join(tmp, "peak")
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-S", "-c", REAPER, peak_file, *cmd], env=env, capture_output=True, text=True
        )
        wall = time.perf_counter() - started
        with open(peak_file) as f:
            peak_kib = int(f.read())
    return result, wall, peak_kib / 1024
