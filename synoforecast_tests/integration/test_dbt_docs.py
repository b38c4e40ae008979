"""The dbt docs site (issue 30 item 3): generated offline by real dbt from the project's manifest,
with a database listener in the environment that must never be called, then served by
`synoforecast dbt-docs serve` as a process of its own, fetched over HTTP and stopped with Ctrl-C.

One site is generated for the module (dbt: 7-12 s here); the CLI serves that one, from the data
folder where a checkout keeps it. Marked integration: real dbt, not a few seconds."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from synoforecast.cli.dbt_docs import local_site
from synoforecast.defs.resources import dbt_executable
from synoforecast.defs.transform.project import ensure_manifest
from synoforecast.lib.transform.dbt_docs import PAGE, DbtDocsError, build_docs_site
from synoforecast.settings import DBT_PROJECT_DIR
from synoforecast_tests.e2e.test_cli import CLI, _env
from synoforecast_tests.support.processes import LoggingServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXPOSURE = "synoforecast_dashboard"
MART = "mart_svr_rm_quarterly"


def embedded(page: str, label: str) -> dict:
    """The JSON dbt 1.11's static page carries as `{manifest:{...},catalog:{...}}`."""
    start = page.index(f"{label}:{{", page.index("{manifest:")) + len(label) + 1
    return json.JSONDecoder().raw_decode(page, start)[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, generated into the data folder `synoforecast dbt-docs serve` reads in a checkout,
    with the profile's variables and libpq's pointing at a listener that counts connections."""
    data = tmp_path_factory.mktemp("dbt-docs") / "data"
    manifest = ensure_manifest()
    with socket.socket() as listener, pytest.MonkeyPatch.context() as env:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = str(listener.getsockname()[1])
        for name, value in {
            "SYNOFORECAST_DBT_HOST": "127.0.0.1",
            "SYNOFORECAST_DBT_PORT": port,
            "PGHOST": "127.0.0.1",
            "PGPORT": port,
            "PGPASSWORD": "must-not-reach-dbt",
        }.items():
            env.setenv(name, value)
        started = time.perf_counter()
        page = build_docs_site(DBT_PROJECT_DIR, manifest, local_site(data), dbt=dbt_executable())
        seconds = time.perf_counter() - started
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # nobody knocked
            listener.accept()
    return {"data": data, "page": page, "manifest": manifest, "seconds": seconds}


def test_the_page_holds_the_parsed_project_its_descriptions_and_the_exposure(site):
    page = site["page"]
    assert page == local_site(site["data"]) / PAGE
    assert [p.name for p in page.parent.iterdir()] == [PAGE], "one file: no dbt target or logs left beside it"
    text = page.read_text()
    parsed = json.loads(site["manifest"].read_text())
    shown = embedded(text, "manifest")
    assert EXPOSURE in shown["exposures"][f"exposure.synoforecast.{EXPOSURE}"]["name"]
    mart = shown["nodes"][f"model.synoforecast.{MART}"]
    assert mart["description"].startswith("SVR-RM sale-out per quarter")  # models/marts/_marts.yml
    assert mart["columns"]["quarter_label"]["description"] == "Quarter label, e.g. '2025-Q3'."
    models = {k: v for k, v in parsed["nodes"].items() if v["resource_type"] == "model"}
    assert len(models) > 10
    for key, node in models.items():
        assert shown["nodes"][key]["description"] == node["description"], key
        assert {c: v["description"] for c, v in shown["nodes"][key]["columns"].items()} == {
            c: v["description"] for c, v in node["columns"].items()
        }, key
    assert embedded(text, "catalog")["nodes"] == {}  # no database was read: no column types


def test_a_missing_manifest_is_refused_in_one_line_before_anything_is_written(tmp_path):
    out = tmp_path / "site"
    with pytest.raises(DbtDocsError) as refused:
        build_docs_site(DBT_PROJECT_DIR, tmp_path / "target" / "manifest.json", out)
    assert "\n" not in str(refused.value) and str(tmp_path / "target" / "manifest.json") in str(refused.value)
    assert not out.exists()


def test_an_unwritable_folder_a_missing_dbt_and_a_failing_dbt_are_one_line_each(site, tmp_path):
    taken = tmp_path / "a-file"
    taken.write_text("")
    with pytest.raises(DbtDocsError, match="cannot write the docs site to"):
        build_docs_site(DBT_PROJECT_DIR, site["manifest"], taken)
    with pytest.raises(DbtDocsError, match="cannot run dbt: /nowhere/dbt not found"):
        build_docs_site(DBT_PROJECT_DIR, site["manifest"], tmp_path / "x", dbt="/nowhere/dbt")

    broken = tmp_path / "project"
    shutil.copytree(DBT_PROJECT_DIR, broken, ignore=shutil.ignore_patterns("target", "logs", "__pycache__"))
    with (broken / "dbt_project.yml").open("a") as yml:
        yml.write("name: [unclosed\n")
    with pytest.raises(DbtDocsError) as failed:
        build_docs_site(broken, site["manifest"], tmp_path / "y", dbt=dbt_executable())
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"dbt docs generate failed for {broken} (exit 2)")
    assert "Syntax error" in message, message
    assert not list((tmp_path / "y").iterdir()), "the scratch folder is removed"


def served(data: Path, tmp_path: Path) -> LoggingServer:
    """`synoforecast dbt-docs serve --port 0` on the site's data folder; its URL from its stderr."""
    server = LoggingServer([CLI, "dbt-docs", "serve", "--port", "0"], _env(tmp_path, SYNOFORECAST_DATA_DIR=str(data)))
    server.url = server.wait_for(r"dbt docs on (http://\S+)", timeout_s=120).group(1)
    return server


def fetch(url: str, **headers: str) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as answer:
        return answer.code, dict(answer.headers), answer.read()


def test_serve_answers_the_page_and_healthz_passes_the_health_check_and_ctrl_c_ends_it(site, tmp_path):
    server = served(site["data"], tmp_path)
    try:
        status, headers, body = fetch(server.url)
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert body == site["page"].read_bytes() and EXPOSURE.encode() in body and MART.encode() in body
        status, headers, zipped = fetch(server.url, **{"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped) == body
        assert len(zipped) < len(body) / 3
        assert fetch(server.url + "healthz")[::2] == (200, b"ok\n")
        assert fetch(server.url + "manifest.json")[0] == 404

        port = server.url.rsplit(":", 1)[1].strip("/")
        probe = subprocess.run(
            ["bash", str(REPO / "deploy" / "scripts" / "healthcheck.sh")],
            env={**os.environ, "SYNOFORECAST_SERVICE": "dbt-docs", "SYNOFORECAST_DBT_DOCS_PORT": port},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert probe.returncode == 0, probe.stderr
        server.wait_for(r'"GET /manifest.json HTTP/1.1" 404', timeout_s=10)

        server.proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert server.proc.wait(timeout=30) == 0
    finally:
        server.close()
    log = "\n".join(server.stderr())
    assert "generating" not in log, "the data folder's page is newer than the manifest: reused"
    assert "Traceback" not in log and "healthz" not in log, log  # the health checks are not logged
    assert len([line for line in server.log if '"GET ' in line]) == 3, log  # one line a request


def test_build_into_a_file_fails_in_one_line(tmp_path, capsys):
    """`synoforecast dbt-docs build` in this process (the serve test above starts the command)."""
    from synoforecast.cli.main import main

    taken = tmp_path / "taken"
    taken.write_text("")
    assert main(["dbt-docs", "build", "--out", str(taken)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write the docs site to {taken}") and err.count("\n") == 1, err
