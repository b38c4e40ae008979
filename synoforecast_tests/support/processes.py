"""Stopping the servers the tests start (webserver, `synoforecast ui`, chromedriver)."""

from __future__ import annotations

import os
import signal
import subprocess


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
