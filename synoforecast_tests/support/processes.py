"""Stopping the servers the tests start (webserver, `synoforecast ui`, chromedriver), and a
server process whose stderr lines the test waits for (`synoforecast metrics serve`, `dbt-docs serve`)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path


def stop(proc: subprocess.Popen, grace_s: float = 30.0, group: bool = False) -> None:
    """SIGTERM (to the whole process group when `group`), then SIGKILL after `grace_s`:
    a server still shutting down on a loaded CI machine must not fail the test it served."""
    send = (lambda sig: os.killpg(proc.pid, sig)) if group else (lambda sig: proc.send_signal(sig))
    try:
        send(signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            send(signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


class LoggingServer:
    """A server the test starts (`command`, stdout discarded) whose stderr is read line by line on a
    thread: `wait_for` a line (its URL, a request), `stderr()` every line so far, `close()` it."""

    def __init__(self, command: list[str], env: dict[str, str]):
        self.name = " ".join(Path(command[0]).name.split() + command[1:3])
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match:
        """The first line from now on matching `pattern`; fails when the process exits first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, f"{self.name} exited {self.proc.returncode}: {self.log}"
                continue
            self.log.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no line like {pattern!r} from {self.name} in {timeout_s} s: {self.log}")

    def stderr(self) -> list[str]:
        while True:
            try:
                self.log.append(self.lines.get_nowait())
            except queue.Empty:
                return self.log

    def close(self) -> None:
        stop(self.proc, grace_s=15)
