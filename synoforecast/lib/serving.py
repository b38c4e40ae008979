"""Serving HTTP in the foreground until told to stop: the one loop behind `synoforecast metrics
serve` and `synoforecast dbt-docs serve` (the CLI sets `stop` on SIGTERM; Ctrl-C interrupts the
wait). The servers are threaded (one thread a request), so a slow client never holds the next."""

from __future__ import annotations

import threading
from collections.abc import Callable
from socketserver import BaseServer


def serve_until(
    server: BaseServer,
    stop: threading.Event,
    url: str,
    on_ready: Callable[[str], None] | None = None,
    thread: threading.Thread | None = None,
) -> None:
    """Run `server` until `stop` is set, then shut it down and close its socket (also when the wait
    is interrupted). `thread`: the thread already serving it (prometheus_client starts its own);
    otherwise one is started here. `on_ready(url)` once it listens."""
    if thread is None:
        thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        thread.start()
    try:
        if on_ready:
            on_ready(url)
        while not stop.wait(1.0):
            pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
