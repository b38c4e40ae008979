"""The platform's own log lines, as text for people or one JSON object per line for a log
aggregator (Loki, Elasticsearch, CloudWatch): `SYNOFORECAST_LOG_FORMAT=json`.

Covers the `synoforecast.*` loggers (warehouse, HTTP, Metabase, notifications) and the CLI's
progress and error lines. Dagster's own run-event lines can use the same formatter through
`python_logs.dagster_handler_config` in dagster.yaml (deploy/RUNBOOK.md, "Logs").
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

LOGGER = "synoforecast"
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO 8601), level, logger, message, any `extra`
    fields, and the exception's text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out |= {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(log_format: str, stream=None) -> logging.Logger:
    """Send the `synoforecast` loggers to `stream` (stderr) as text or JSON, once per process
    (a second call replaces the handler: the format follows the latest setting)."""
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if getattr(h, "_synoforecast", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._synoforecast = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter("%(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = log_format != "json"  # no second, text copy through the root logger
    return logger
