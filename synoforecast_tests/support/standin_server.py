"""The HTTP stand-in (`http_standin.StandIn`) as a process of its own, for the Docker smoke
stack (deploy/smoke/): it replaces Metabase, which cannot be had without Docker Hub.

    python -m synoforecast_tests.support.standin_server --port 3001 --api-key KEY \\
        [--host 127.0.0.1] [--warehouse-url postgresql://...]

Metabase's API as `StandIn` speaks it, plus two endpoints for the test that drives the
stack (no API key needed, loopback only):
    GET /_standin/requests   [{"method", "path", "query", "json"}, ...] every request so far
    GET /api/health          as Metabase: {"status": "ok"} (the container's health check)
"""

from __future__ import annotations

import argparse
import signal
import threading

from synoforecast_tests.support.http_standin import RecordedRequest, StandIn, _Answer, _json_answer

LOG_PATH = "/_standin/requests"


class ServedStandIn(StandIn):
    def _answer(self, req: RecordedRequest) -> _Answer:
        if req.path == LOG_PATH:
            with self._lock:
                log = [{"method": r.method, "path": r.path, "query": r.query, "json": r.json} for r in self.requests]
            return _json_answer(200, log)
        return super()._answer(req)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--warehouse-url", help="schema syncs read this PostgreSQL's information_schema")
    args = parser.parse_args(argv)
    standin = ServedStandIn(api_key=args.api_key, address=(args.host, args.port))
    standin.warehouse_url = args.warehouse_url
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    standin.start()
    print(f"metabase stand-in listening on {standin.url}", flush=True)
    stopped.wait()
    standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
