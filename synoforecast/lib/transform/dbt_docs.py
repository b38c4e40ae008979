"""The dbt docs site of the project: generated offline from the parsed manifest, one HTML file.

`dbt docs generate --static` writes a single page with the manifest and the catalog inside it,
which any web server (or a browser opening the file) shows without dbt. It is generated with
`--no-compile --empty-catalog`, so it needs no database: the release builds it where no
warehouse exists (deploy/Dockerfile). What that leaves out is the catalog, the column types and
row statistics dbt reads from the database, and the compiled SQL; the models, their SQL as
written, the descriptions and columns documented in YAML, tests, lineage and exposures are all
in the manifest.

dbt runs as a subprocess with an environment that cannot reach a database: the profile's host is
a folder without a socket and every PG* and DBT_* variable is dropped, so a password in the
caller's environment never reaches dbt either. Its target and log folders are a scratch folder:
the project (which may be an installed, read-only package) is only read.

`serve` answers `/` with the page (2.8 MB; 0.6 MB gzipped, when the browser accepts it) and
`/healthz` with "ok", from memory, with one log line a request (none for /healthz, which the
container health check asks every 30 s).
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from synoforecast.lib.serving import serve_until

PAGE = "index.html"  # the single-file site, as `build_docs_site` leaves it in its folder
_STATIC = "static_index.html"  # what dbt writes with --static: the page with the JSON inside
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TIMESTAMP = re.compile(r"^\d\d:\d\d:\d\d\s+")
HEALTH = "/healthz"
log = logging.getLogger("synoforecast.dbt_docs")


class DbtDocsError(RuntimeError):
    """The docs site could not be generated; the message is one line naming what failed."""


def offline_env(scratch: Path) -> dict[str, str]:
    """This process's environment without any way to a database: no PG* (libpq's defaults, a
    password), no DBT_* (a target or profiles folder elsewhere), the profile's SYNOFORECAST_DBT_*
    replaced by a host that is a path with no socket in it (libpq: a unix-socket folder) and port 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DBT_", "SYNOFORECAST_DBT_"))}
    env.update(
        SYNOFORECAST_DBT_HOST=str(scratch / "no-database"),
        SYNOFORECAST_DBT_PORT="1",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    return env


def _reason(output: str) -> str:
    """dbt's error in one line: what follows "Encountered an error:", else its last lines."""
    lines = [_TIMESTAMP.sub("", _ANSI.sub("", line)).strip() for line in output.splitlines()]
    lines = [line for line in lines if line and not set(line) <= set("-")]
    if "Encountered an error:" in lines:
        lines = lines[lines.index("Encountered an error:") + 1 :]
    else:
        lines = lines[-3:]
    text = " ".join(lines)
    return text if len(text) <= 400 else text[:400] + " ..."


def build_docs_site(project_dir: Path, manifest: Path, out: Path, dbt: str = "dbt", timeout_s: float = 600.0) -> Path:
    """Generate the static docs site of `project_dir` from its parsed `manifest` into `out`
    (created; an existing page is replaced) and return the page, `out/index.html`.

    `dbt`: the executable (the platform passes the one beside its interpreter). Raises
    DbtDocsError when the manifest is missing, `out` cannot be written, or dbt fails."""
    # absolute: dbt reads a relative --target-path from the project folder, not from here
    project_dir, manifest, out = (Path(p).resolve() for p in (project_dir, manifest, out))
    if not manifest.is_file():
        raise DbtDocsError(
            f"no dbt manifest at {manifest}: parse the project first (dbt parse, or the platform's ensure_manifest)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".dbt-docs-", dir=out))
    except OSError as exc:
        raise DbtDocsError(f"cannot write the docs site to {out}: {exc.strerror or exc}") from None
    try:
        target = scratch / "target"
        target.mkdir()
        # --no-compile reads the manifest from the target folder instead of compiling (which
        # connects); the parse dbt still does is of the project's files only
        shutil.copyfile(manifest, target / "manifest.json")
        command = [
            dbt,
            "--no-use-colors",
            "docs",
            "generate",
            "--static",
            "--no-compile",
            "--empty-catalog",
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(project_dir),
            "--target-path",
            str(target),
            "--log-path",
            str(scratch / "logs"),
        ]
        try:
            result = subprocess.run(
                command,
                cwd=scratch,
                env=offline_env(scratch),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except FileNotFoundError:
            raise DbtDocsError(f"cannot run dbt: {dbt} not found") from None
        except subprocess.TimeoutExpired:
            raise DbtDocsError(f"dbt docs generate for {project_dir} took more than {timeout_s:.0f} s") from None
        page = target / _STATIC
        if result.returncode != 0 or not page.is_file():
            raise DbtDocsError(
                f"dbt docs generate failed for {project_dir} (exit {result.returncode}): "
                f"{_reason(result.stdout + result.stderr) or 'no output'}"
            )
        final = out / PAGE
        os.replace(page, final)  # same folder: a server reading the old page never sees half a new one
        return final
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- serving


class _PageHandler(BaseHTTPRequestHandler):
    server_version = "synoforecast-dbt-docs"  # the whole Server header: no Python version in it
    page: bytes = b""
    page_gzip: bytes = b""

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
        if path in ("/", "/" + PAGE):
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            content = self.page_gzip if gzipped else self.page
            headers |= {"Content-Type": "text/html; charset=utf-8", "Vary": "Accept-Encoding"}
            if gzipped:
                headers["Content-Encoding"] = "gzip"
            self._send(200, content, headers, body)
        elif path == HEALTH:
            self._send(200, b"ok\n", {**headers, "Content-Type": "text/plain; charset=utf-8"}, body)
        else:
            self._send(404, b"not found: the dbt docs are at /\n", {**headers, "Content-Type": "text/plain"}, body)

    def _send(self, status: int, content: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(content))}.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            try:
                self.wfile.write(content)
            except (BrokenPipeError, ConnectionResetError):  # the browser went away: nothing to tell
                pass

    def log_request(self, code="-", size="-") -> None:
        if self.path != HEALTH:
            log.info('%s "%s" %s', self.client_address[0], self.requestline, code)

    def log_message(self, format, *args) -> None:
        pass  # errors and timeouts: the request line above, never a second line


def page_server(page: Path, host: str, port: int) -> ThreadingHTTPServer:
    """A threaded HTTP server bound to host:port (0: any free port) answering with `page`, read
    (and compressed) once here: the page of a release never changes while it is served."""
    content = Path(page).read_bytes()
    handler = type("Handler", (_PageHandler,), {"page": content, "page_gzip": gzip.compress(content, 6)})
    return ThreadingHTTPServer((host, port), handler)


def serve(
    page: Path, host: str, port: int, stop: threading.Event, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve `page` at http://host:port/ until `stop` is set (as lib/monitoring/metrics.py serve)."""
    server = page_server(page, host, port)
    serve_until(server, stop, f"http://{host}:{server.server_port}/", on_ready)
