"""`synoforecast doctor`: check every part the platform needs and say how to fix it.

It lives beside the CLI, not in `lib/`: it checks the platform as the definitions see
it (the dbt executable and the Metabase/webhook/email configuration of defs/resources.py).

Each check returns a :class:`Check` (status ``ok`` / ``warn`` / ``fail`` / ``skipped``).
Required parts (warehouse, Dagster storage, dbt, inbox) fail the command; Metabase, the
webhooks and email are optional and only checked when configured, but a configured one that
does not work is a failure too (the refresh or the notification would fail).

Nothing is posted: Metabase gets ``GET /api/health`` and an authenticated
``GET /api/user/current`` (or ``POST /api/session`` for user + password), webhooks get a
plain ``GET`` that only proves the endpoint exists: 405 (POST only), n8n's 404 "not
registered for GET requests. Did you mean to make a POST request?" and Slack's 400
``invalid_payload`` say so; any other 4xx (404 ``no_service``, 403 ``invalid_token``, 410
``channel_is_archived``, an unregistered n8n path) means a post would be refused: a failure.
Email gets the conversation of a real message up to the message itself: connect, STARTTLS
(certificate verified), login, sender and recipients accepted, then RSET and QUIT (no DATA).
Secrets never appear in the output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from synoforecast.lib.redaction import redact, safe_url, url_secrets

__all__ = ["Check", "exit_code", "render_table", "run_checks"]

OK, WARN, FAIL, SKIPPED = "ok", "warn", "fail", "skipped"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""
    required: bool = True

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def _one_line(text: object, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


# --------------------------------------------------------------------------- required parts


def check_warehouse(settings) -> tuple[Check, str | None]:
    from synoforecast.lib.warehouse.connection import connect, resolve_url
    from synoforecast.settings import configured_warehouse_url

    configured = configured_warehouse_url(settings)
    try:
        url = resolve_url(configured, settings.pgdata_dir)
        with connect(url) as conn:
            version = conn.execute("show server_version").fetchone()[0]
            schemas = {r[0] for r in conn.execute("select schema_name from information_schema.schemata").fetchall()}
    except Exception as exc:  # WarehouseError, pgserver start-up problems, ...
        fix = (
            "check SYNOFORECAST_WAREHOUSE_URL (host, port, user, password, database) and that "
            "PostgreSQL accepts connections"
            if configured
            else f"the embedded PostgreSQL in {settings.pgdata_dir} did not start: remove a stale "
            "postmaster.pid or set SYNOFORECAST_WAREHOUSE_URL"
        )
        return Check("warehouse", FAIL, _one_line(exc), fix), None
    missing = [s for s in ("raw", "forecast", "ops") if s not in schemas]
    where = safe_url(url) if configured else f"embedded ({settings.pgdata_dir})"
    if missing:
        return Check(
            "warehouse",
            WARN,
            f"PostgreSQL {version} at {where}; schemas {', '.join(missing)} not created yet",
            "run `synoforecast ingest` or `synoforecast demo` once",
        ), url
    return Check("warehouse", OK, f"PostgreSQL {version} at {where}"), url


def check_dagster_storage(settings, env: Mapping[str, str]) -> Check:
    home = Path(env.get("DAGSTER_HOME") or settings.dagster_home)
    source = "DAGSTER_HOME" if env.get("DAGSTER_HOME") else "default"
    if not home.exists():
        parent = home.parent
        if parent.exists() and os.access(parent, os.W_OK):
            return Check(
                "dagster storage",
                WARN,
                f"{home} ({source}) does not exist yet",
                "it is created by `synoforecast ui` / `ingest`; or create it and copy dagster.yaml",
            )
        return Check(
            "dagster storage",
            FAIL,
            f"{home} ({source}) does not exist and cannot be created",
            "set DAGSTER_HOME to a writable folder",
        )
    if not os.access(home, os.W_OK):
        return Check("dagster storage", FAIL, f"{home} is not writable", "fix the folder's owner/permissions")
    try:
        from synoforecast.instance.sqlite_storage import open_instance

        with open_instance(home) as instance:
            runs = instance.get_runs_count()
            storage = type(instance.run_storage).__name__
    except Exception as exc:
        return Check(
            "dagster storage",
            FAIL,
            f"{home}: {_one_line(exc)}",
            "check dagster.yaml in DAGSTER_HOME (storage section, Postgres credentials)",
        )
    return Check("dagster storage", OK, f"{home} ({storage}, {runs} run(s))")


def check_dbt(url: str | None) -> Check:
    from synoforecast.defs.resources import dbt_executable
    from synoforecast.lib.warehouse.connection import parse_url
    from synoforecast.settings import DBT_PROJECT_DIR

    if url is None:
        return Check("dbt", SKIPPED, "needs a working warehouse", "fix the warehouse first")
    env = {**os.environ, **parse_url(url).as_env()}
    with tempfile.TemporaryDirectory(prefix="synoforecast-doctor-") as tmp:
        env.update(DBT_LOG_PATH=tmp, DBT_TARGET_PATH=tmp, DBT_SEND_ANONYMOUS_USAGE_STATS="false")
        command = [
            dbt_executable(),
            "debug",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
        ]
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=180, check=False, cwd=DBT_PROJECT_DIR
            )
        except FileNotFoundError:
            return Check("dbt", FAIL, "dbt executable not found", "pip install dbt-postgres in this venv")
        except subprocess.TimeoutExpired:
            return Check("dbt", FAIL, "`dbt debug` timed out after 180 s", "check the warehouse connection")
    out = done.stdout + done.stderr
    secret = parse_url(url).password
    if done.returncode == 0:
        version = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if "installed:" in ln), "")
        return Check("dbt", OK, f"`dbt debug` passed{f' (dbt {version})' if version else ''}")
    errors = [ln.strip() for ln in out.splitlines() if "ERROR" in ln or "error" in ln.lower()]
    return Check(
        "dbt",
        FAIL,
        redact(_one_line("; ".join(errors[:3]) or out[-300:]), secret),
        "run `dbt debug --project-dir synoforecast_dbt --profiles-dir synoforecast_dbt` "
        "and fix what it reports (profiles.yml reads SYNOFORECAST_DBT_*)",
    )


def check_inbox(settings) -> Check:
    inbox = Path(settings.inbox_dir)
    if not inbox.exists():
        return Check(
            "inbox", FAIL, f"{inbox} does not exist", f"mkdir -p {inbox} (or set SYNOFORECAST_INBOX to the NAS share)"
        )
    if not inbox.is_dir() or not os.access(inbox, os.R_OK | os.X_OK):
        return Check("inbox", FAIL, f"{inbox} is not a readable folder", "fix its permissions")
    workbooks = len(list(inbox.glob("*.xlsx")))
    return Check("inbox", OK, f"{inbox} ({workbooks} workbook(s))")


def check_stuck_runs(settings, env: Mapping[str, str]) -> Check:
    """Runs killed mid-way that still hold the run limit or the dbt pool (synoforecast/instance/runs.py)."""
    from synoforecast.instance.runs import stuck_runs_report

    try:
        status, detail, fix = stuck_runs_report(Path(env.get("DAGSTER_HOME") or settings.dagster_home))
    except Exception as exc:
        return Check("stuck runs", SKIPPED, f"Dagster storage not readable: {_one_line(exc)}", "")
    return Check("stuck runs", status, detail, fix)


FRESHNESS_NAMES = {"snapshot": "freshness: export", "quarter_close": "freshness: quarter close"}


def freshness_lines(findings: Mapping[str, object], alerts: Mapping[str, object]) -> list[Check]:
    """One line per freshness rule (lib/monitoring/freshness.py findings at a given clock, and the alert
    state of ops.freshness_alerts): a breach fails with its fix and says where it was posted."""
    import datetime as dt

    from synoforecast.lib.monitoring.freshness import BREACH, PASS

    lines = []
    for rule, finding in findings.items():
        name = FRESHNESS_NAMES.get(rule, f"freshness: {rule}")
        if finding.status == PASS:
            lines.append(Check(name, OK, _one_line(finding.headline, 400), required=False))
            continue
        if finding.status != BREACH:
            lines.append(Check(name, WARN, _one_line(finding.headline, 400), finding.fix, required=False))
            continue
        alert = alerts.get(rule)
        if alert is None or alert.breach != finding.breach:
            posted = "alert not posted yet (freshness_sensor posts it at its next tick)"
        elif alert.posted_to:
            posted = f"alert posted to {', '.join(sorted(alert.posted_to))}"
            if alert.posted_at:
                posted += f" on {alert.posted_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
        else:
            posted = "alert not posted: no channel configured"
        if alert is not None and alert.breach == finding.breach and alert.error:
            posted += f"; NOT delivered: {alert.error}"
        lines.append(Check(name, FAIL, _one_line(f"{finding.headline} ({posted})", 600), finding.fix, required=False))
    return lines


def check_freshness(settings, url: str | None, now=None) -> list[Check]:
    """The freshness rules on what the warehouse holds, at `now` (default: the clock)."""
    import datetime as dt

    if url is None:
        return [
            Check(name, SKIPPED, "needs a working warehouse", "fix the warehouse first", required=False)
            for name in FRESHNESS_NAMES.values()
        ]
    from synoforecast.lib.monitoring.freshness_state import evaluate, load_alerts
    from synoforecast.settings import effective_partitions_start

    try:
        findings = evaluate(
            url,
            now or dt.datetime.now(dt.UTC),
            max_age_days=settings.freshness_max_age_days,
            grace_days=settings.quarter_close_grace_days,
            fiscal_start_month=settings.fiscal_year_start_month,
            partitions_start=effective_partitions_start(settings),
        )
        alerts = load_alerts(url)
    except Exception as exc:  # tables not created yet (no ingest so far), a permission missing
        return [
            Check(
                name,
                SKIPPED,
                f"not readable: {_one_line(exc, 160)}",
                "run `synoforecast ingest` or `synoforecast demo` once",
                required=False,
            )
            for name in FRESHNESS_NAMES.values()
        ]
    return freshness_lines(findings, alerts)


# --------------------------------------------------------------------------- optional parts


def check_metabase(env: Mapping[str, str], client: httpx.Client) -> list[Check]:
    """Metabase healthy and its credentials accepted, asked through the refresh's own client."""
    from synoforecast.lib.activation.metabase import MetabaseConfig, MetabaseError, check_metabase_access

    try:
        cfg = MetabaseConfig.from_variables(env)  # the checks MetabaseResource uses
    except MetabaseError as exc:
        return [Check("metabase config", FAIL, str(exc), "fix the variable named", required=False)]
    if not cfg.configured:
        return [
            Check(
                "metabase",
                SKIPPED,
                "not configured (METABASE_URL unset)",
                "optional: set METABASE_URL and METABASE_API_KEY",
                required=False,
            )
        ]
    shown = safe_url(cfg.url)
    healthy = Check("metabase health", OK, f"{shown} healthy", required=False)
    starting = Check(
        "metabase health",
        WARN,
        f"{shown} still initializing",
        "wait for Metabase to finish starting, then run doctor again",
        required=False,
    )
    try:
        health = healthy if check_metabase_access(cfg, client) == "ok" else starting
    except MetabaseError as exc:
        if not str(exc).startswith("credentials: "):
            return [
                Check("metabase health", FAIL, _one_line(exc), "start Metabase or fix METABASE_URL", required=False)
            ]
        var = "METABASE_API_KEY" if cfg.auth_method == "api_key" else "METABASE_USER and METABASE_PASSWORD"
        return [
            starting if exc.initializing else healthy,
            Check(
                "metabase credentials",
                FAIL,
                _one_line(str(exc).removeprefix("credentials: ")),
                f"check {var}",
                required=False,
            ),
        ]
    targets = f"{len(cfg.card_ids)} card(s), {len(cfg.dashboard_ids)} dashboard(s)" + (
        f", provisioned questions on database {cfg.database_id}" if cfg.database_id else ""
    )
    warn = not cfg.card_ids and not cfg.dashboard_ids and not cfg.database_id
    return [
        health,
        Check(
            "metabase credentials",
            WARN if warn else OK,
            f"{cfg.auth_method} accepted; {targets}",
            "set METABASE_DATABASE_ID (the provisioned questions query it) or METABASE_CARD_IDS / "
            "METABASE_DASHBOARD_IDS to refresh something"
            if warn
            else "",
            required=False,
        ),
    ]


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "<invalid url>"


def check_webhook(name: str, var: str, env: Mapping[str, str], client: httpx.Client) -> Check:
    url = (env.get(var) or "").strip()
    label = f"{name} webhook"
    if not url:
        return Check(label, SKIPPED, f"not configured ({var} unset)", f"optional: set {var}", required=False)
    host = _host(url)  # the path is the secret: never shown
    if not url.startswith(("http://", "https://")):
        return Check(label, FAIL, f"{var} is not an http(s) URL", f"copy the full URL into {var}", required=False)
    try:
        resp = client.get(url)  # never POST: that would deliver a message
    except httpx.HTTPError as exc:
        return Check(
            label,
            FAIL,
            f"{host} unreachable ({type(exc).__name__})",
            f"check {var} and the network/proxy from this host",
            required=False,
        )
    if resp.status_code >= 500:
        return Check(
            label, FAIL, f"{host} answered HTTP {resp.status_code}", "the service is down; retry later", required=False
        )
    if 400 <= resp.status_code < 500 and not _exists_but_wants_post(resp):
        answer = _one_line(redact(resp.text, *url_secrets(url)), 120)
        return Check(
            label,
            FAIL,
            f"{host} refused the webhook (HTTP {resp.status_code} {answer})".rstrip(),
            f"the webhook is revoked or the URL is wrong: copy it again into {var}",
            required=False,
        )
    return Check(label, OK, f"{host} reachable (GET answered HTTP {resp.status_code}; nothing posted)", required=False)


def _exists_but_wants_post(resp: httpx.Response) -> bool:
    """The 4xx answers a GET gets from a webhook that a POST would reach."""
    text = resp.text.lower()
    return (
        resp.status_code == 405
        or (resp.status_code == 404 and "did you mean to make a post request" in text)  # n8n
        or (resp.status_code == 400 and text.strip() in ("invalid_payload", "no_text"))
    )  # Slack


def check_email(env: Mapping[str, str]) -> Check:
    """The SMTP route asked through the sender's own conversation, without sending a message."""
    from synoforecast.lib.activation.email import EmailConfig, EmailError, check_email_access

    try:
        cfg = EmailConfig.from_variables(env)  # the checks WebhooksResource uses
    except EmailError as exc:
        return Check("email", FAIL, _one_line(exc), "fix the variables named", required=False)
    if not cfg.configured:
        return Check(
            "email",
            SKIPPED,
            "not configured (SMTP_HOST unset)",
            "optional: set SMTP_HOST, SMTP_FROM and SMTP_TO",
            required=False,
        )
    try:
        detail = check_email_access(cfg)
    except EmailError as exc:
        return Check(
            "email",
            FAIL,
            _one_line(exc, 400),
            "fix what the detail names (the SMTP_* variables, or the network to SMTP_HOST)",
            required=False,
        )
    return Check("email", OK, _one_line(detail, 400), required=False)


# --------------------------------------------------------------------------- driver


def run_checks(
    env: Mapping[str, str] | None = None,
    *,
    settings=None,
    timeout_s: float = 10.0,
    progress: Callable[[str], None] | None = None,
) -> list[Check]:
    from synoforecast.settings import get_settings

    env = os.environ if env is None else env
    settings = settings or get_settings()
    note = progress or (lambda _m: None)
    checks: list[Check] = []
    note("warehouse")
    warehouse, url = check_warehouse(settings)
    checks.append(warehouse)
    note("dagster storage")
    checks.append(check_dagster_storage(settings, env))
    note("dbt debug")
    checks.append(check_dbt(url))
    checks.append(check_inbox(settings))
    note("stuck runs")
    checks.append(check_stuck_runs(settings, env))
    note("freshness")
    checks += check_freshness(settings, url)
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        note("metabase")
        checks += check_metabase(env, client)
        for name, var in (("slack", "SLACK_WEBHOOK_URL"), ("teams", "TEAMS_WEBHOOK_URL"), ("n8n", "N8N_WEBHOOK_URL")):
            checks.append(check_webhook(name, var, env, client))
    note("email")
    checks.append(check_email(env))
    return checks


def render_table(checks: list[Check]) -> str:
    from synoforecast.lib.rendering import text_table

    rows = [(c.name, c.status.upper(), c.detail, c.fix if c.status in (FAIL, WARN) else "") for c in checks]
    failed = [c for c in checks if c.failed]
    return "\n".join(
        [
            text_table(("check", "status", "detail", "fix"), rows, left=4, indent="", rule=True),
            "",
            f"{len(failed)} failure(s)" if failed else "all required parts work",
        ]
    )


def exit_code(checks: list[Check]) -> int:
    """1 when a required part fails or a configured integration does not work."""
    return 1 if any(c.failed for c in checks) else 0


if __name__ == "__main__":  # pragma: no cover
    result = run_checks(progress=lambda m: print(f"doctor: checking {m}", file=sys.stderr))
    print(render_table(result))
    sys.exit(exit_code(result))
