"""Lifecycle of the embedded PostgreSQL (pgserver) under the data folder.

The embedded server is shared by every process of the platform (the UI, the daemon, run
workers, the CLI): a command that starts it leaves it running for the next one, so
stopping is explicit (`synoforecast warehouse stop`), never a side effect of a command
ending. pgserver runs the server as the system user ``pgserver`` when started by root
(PostgreSQL refuses root), so ``pg_ctl stop`` runs as that user too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmbeddedStatus:
    pgdata: Path
    initialised: bool
    running: bool
    pid: int | None = None
    port: int | None = None
    size_bytes: int = 0

    def describe(self) -> str:
        size = f"{self.size_bytes / 1e6:,.0f} MB"
        if self.running:
            return f"running (pid {self.pid}, port {self.port}) in {self.pgdata}, {size}"
        if self.initialised:
            return f"stopped; data in {self.pgdata}, {size}"
        return f"not created yet ({self.pgdata})"


def _size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                pass
    return total


def embedded_status(pgdata: Path) -> EmbeddedStatus:
    """What runs there now, read from postmaster.pid: never starts the server."""
    from pgserver.utils import PostmasterInfo

    initialised = (pgdata / "PG_VERSION").exists()
    info = PostmasterInfo.read_from_pgdata(pgdata) if initialised else None
    if info is None or not info.is_running():
        return EmbeddedStatus(pgdata, initialised, False, size_bytes=_size(pgdata) if initialised else 0)
    return EmbeddedStatus(
        pgdata, True, True, pid=info.pid, port=int(info.port) if info.port else None, size_bytes=_size(pgdata)
    )


def stop_embedded(pgdata: Path, timeout_s: int = 60) -> bool:
    """Stop the server if it runs (fast shutdown: open sessions are ended). True when it was running."""
    from pgserver._commands import pg_ctl

    if not embedded_status(pgdata).running:
        return False
    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=timeout_s)
    return True
