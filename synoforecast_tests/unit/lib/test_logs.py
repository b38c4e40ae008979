"""lib/logs.py: one JSON object per line for a log aggregator, text otherwise."""

import io
import json
import logging
import subprocess
import sys

from synoforecast.lib.logs import configure


def test_json_lines_carry_time_level_logger_message_extras_and_the_exception():
    stream = io.StringIO()
    configure("json", stream)
    log = logging.getLogger("synoforecast.lib.warehouse.connection")
    log.warning("retrying %s", "COPY", extra={"table": "raw.svr_rm", "attempt": 2})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "warning" and first["logger"] == "synoforecast.lib.warehouse.connection"
    assert first["message"] == "retrying COPY" and first["table"] == "raw.svr_rm" and first["attempt"] == 2
    assert first["ts"].endswith("+00:00") and "T" in first["ts"]
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]
    configure("text", io.StringIO())  # a second call replaces the handler, not adds one
    assert sum(getattr(h, "_synoforecast", False) for h in logging.getLogger("synoforecast").handlers) == 1


def test_the_cli_writes_its_errors_as_json_when_asked(tmp_path):
    missing = tmp_path / "nope.xlsx"
    env = {"SYNOFORECAST_LOG_FORMAT": "json", "SYNOFORECAST_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "synoforecast.cli.main", "ingest", str(missing), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode != 0
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines), done.stderr
    assert any(line["level"] == "error" and "nope.xlsx" in line["message"] for line in lines), done.stderr
