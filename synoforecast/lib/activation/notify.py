"""Post a run summary to Slack, Microsoft Teams and n8n webhooks, and email it.

Pure library (httpx and smtplib, no Dagster). Webhook URLs carry their secret in the path, so
they never appear in ``repr()``, in results or in error messages; nor does the SMTP password.

Endpoints this module speaks:

* Slack incoming webhook: JSON ``{"text": ..., "blocks": [...]}``; answers 200 ``ok``,
  errors are 4xx with a short text such as ``invalid_payload`` or ``no_service``.
* Teams "Workflows" webhook (Power Automate): JSON message with one Adaptive Card
  attachment; answers 202 Accepted (sometimes 200).
* n8n webhook node: receives the raw summary JSON; answers 200.
* Email (lib/activation/email.py): the summary's title as subject, :func:`render_text` as
  the plain-text body, to every SMTP_TO recipient.

Retries (exponential backoff, lib/activation/http.py) happen only on 5xx answers and on failed
connections, where the message was not delivered; a post whose answer timed out may have
been delivered and is not posted again. Email follows the same rule (see its module).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from synoforecast.lib.activation.email import EmailConfig, EmailError, send_email
from synoforecast.lib.activation.http import RetriesExhausted, send_with_retries
from synoforecast.lib.redaction import redact, url_secrets

log = logging.getLogger(__name__)

__all__ = [
    "NotifyConfig",
    "NotifyError",
    "render_text",
    "slack_payload",
    "teams_payload",
    "send_summary",
    "send_alert",
    "request_refresh_via_n8n",
]

WEBHOOKS = ("slack", "teams", "n8n")
CHANNELS = (*WEBHOOKS, "email")
MAX_FORECAST_LINES = 40
_SLACK_SECTION_LIMIT = 2900  # Slack allows 3000 characters per section text
_SLACK_TEXT_LIMIT = 3000


class AlertNotDelivered(RuntimeError):
    """An alert did not reach a configured channel: the sensor tick that sent it fails and says which."""


class NotifyError(RuntimeError):
    """A notification channel is misconfigured or a webhook delivery failed. The message
    never includes a webhook URL or the SMTP password."""


@dataclass(frozen=True, repr=False)
class NotifyConfig:
    slack_webhook_url: str | None = None
    teams_webhook_url: str | None = None
    n8n_webhook_url: str | None = None
    timeout_s: float = 15.0
    retries: int = 2
    backoff_s: float = 1.0
    email: EmailConfig | None = None  # checked when it was built (EmailConfig.from_variables)

    def __post_init__(self) -> None:
        """A webhook URL that cannot work is a configuration error, not "not configured"."""
        for channel in WEBHOOKS:
            url = self.url_for(channel)
            if url is not None and not (url.startswith(("http://", "https://")) and urlsplit(url).netloc):
                raise NotifyError(f"{channel.upper()}_WEBHOOK_URL is set but is not an http(s) URL")

    def url_for(self, channel: str) -> str | None:
        """The URL of a webhook channel (slack, teams, n8n)."""
        return {"slack": self.slack_webhook_url, "teams": self.teams_webhook_url, "n8n": self.n8n_webhook_url}[channel]

    def channels(self) -> list[str]:
        """Configured channels, in the order slack, teams, n8n, email."""
        webhooks = [c for c in WEBHOOKS if self.url_for(c)]
        return webhooks + (["email"] if self.email is not None and self.email.configured else [])

    def only(self, channels: list[str]) -> NotifyConfig:
        """This configuration with every channel not in ``channels`` left out."""
        return dataclasses.replace(
            self,
            **{f"{c}_webhook_url": None for c in WEBHOOKS if c not in channels},
            **({} if "email" in channels else {"email": None}),
        )

    def __repr__(self) -> str:
        def state(url: str | None) -> str:
            return "'<set>'" if url else "None"

        return (
            f"NotifyConfig(slack_webhook_url={state(self.slack_webhook_url)}, "
            f"teams_webhook_url={state(self.teams_webhook_url)}, "
            f"n8n_webhook_url={state(self.n8n_webhook_url)}, timeout_s={self.timeout_s!r}, "
            f"retries={self.retries!r}, backoff_s={self.backoff_s!r}, email={self.email!r})"
        )

    __str__ = __repr__


# --------------------------------------------------------------------------- formatting


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def _finite(v: Any) -> float | None:
    if not _is_num(v):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _fmt_num(v: Any, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    f = _finite(v)
    if f is None:
        return "n/a" if _is_num(v) else str(v)
    return f"{f:,.{digits}f}"


def _fmt_pct(v: Any, *, signed: bool = False, scale: float = 1.0) -> str:
    f = _finite(v)
    if f is None:
        return "n/a" if v is None or _is_num(v) else str(v)
    f *= scale
    return f"{f:+.1f}%" if signed else f"{f:.1f}%"


def _str(v: Any) -> str:
    return "" if v is None else str(v)


def _as_dict(v: Any) -> dict:
    return v if isinstance(v, Mapping) else {}


def _title(summary: Mapping) -> str:
    return _str(summary.get("title")).strip() or "synoforecast run summary"


def _facts(summary: Mapping) -> list[tuple[str, str]]:
    """(label, value) pairs for the header part of every rendering."""
    facts: list[tuple[str, str]] = []
    if summary.get("as_of") is not None:
        facts.append(("As of", _str(summary["as_of"])))
    snap = _as_dict(summary.get("snapshot"))
    if snap:
        parts = []
        if snap.get("file"):
            parts.append(_str(snap["file"]))
        if snap.get("sha256"):
            parts.append(f"sha256 {_str(snap['sha256'])[:12]}")
        if snap.get("rows_loaded") is not None:
            parts.append(f"{_fmt_num(snap['rows_loaded'])} rows loaded")
        if parts:
            facts.append(("Snapshot", ", ".join(parts)))
    dbt = _as_dict(summary.get("dbt"))
    if dbt:
        passed, failed = dbt.get("passed"), dbt.get("failed")
        text = f"{_fmt_num(passed)} passed, {_fmt_num(failed)} failed"
        if _is_num(failed) and failed > 0:
            text += " ⚠"
        facts.append(("dbt tests", text))
    forecasts = summary.get("forecasts")
    if isinstance(forecasts, list):
        facts.append(("Series forecast", f"{len(forecasts):,}"))
    return facts


def _forecast_parts(fc: Mapping) -> tuple[str, str]:
    """(name, detail) for one forecast row."""
    series = fc.get("series_name") or fc.get("series_id")  # a person's name where the summary has one
    name_bits = [_str(v) for v in (fc.get("cohort"), series) if v is not None]
    name = " / ".join(name_bits) or "forecast"
    if fc.get("metric") is not None:
        name += f" · {_str(fc['metric'])}"
    detail = ""
    if fc.get("target") is not None:
        detail += f"{_str(fc['target'])}: "
    detail += _fmt_num(fc.get("yhat"))
    extras = []
    if "last_actual" in fc:
        extras.append(f"last {_fmt_num(fc.get('last_actual'))}")
    if fc.get("change_pct") is not None:
        extras.append(_fmt_pct(fc.get("change_pct"), signed=True))
    if fc.get("smape") is not None:
        extras.append(f"sMAPE {_fmt_pct(fc.get('smape'))}")
    if extras:
        detail += f" ({', '.join(extras)})"
    return name, detail


def landing_line(row: Mapping) -> tuple[str, str]:
    """(name, "tracking +4.2% vs forecast, 80% range ...") for one landing row of a summary."""
    series = row.get("series_name") or row.get("series_id")
    name = f"{_str(row.get('cohort'))} / {_str(series)} · {_str(row.get('metric'))}"
    change = row.get("change_pct")
    tracking = f"tracking {_fmt_pct(change, signed=True)} vs forecast" if _finite(change) is not None else "landing"
    detail = (
        f"{tracking}: {_fmt_num(row.get('yhat'), 0)} (forecast {_fmt_num(row.get('forecast_start'), 0)}, "
        f"to date {_fmt_num(row.get('qtd_actual'), 0)}), 80% range {_fmt_num(row.get('yhat_lo_80'), 0)}"
        f"..{_fmt_num(row.get('yhat_hi_80'), 0)}"
    )
    return name, detail


def _landing_rows(summary: Mapping) -> tuple[str, list[tuple[str, str]]]:
    """(heading, lines) of the landing block that leads a weekly summary ("" when none)."""
    landing = _as_dict(summary.get("landing"))
    rows = landing.get("rows")
    if not isinstance(rows, list) or not rows:
        return "", []
    heading = (
        f"Where {_str(landing.get('quarter'))} will land ({_fmt_pct(landing.get('elapsed_pct'))} elapsed, "
        f"export of {_str(landing.get('cutoff'))})"
    )
    return heading, [landing_line(_as_dict(r)) for r in rows[:MAX_FORECAST_LINES]]


def _narratives(summary: Mapping) -> list[str]:
    """The narratives of the summary (``narratives`` = [{cohort, metric, text}]), as lines."""
    told = summary.get("narratives")
    if not isinstance(told, list):
        return []
    return [_str(_as_dict(n).get("text")) for n in told if _as_dict(n).get("text")]


def _forecast_rows(summary: Mapping) -> tuple[list[tuple[str, str]], int]:
    forecasts = summary.get("forecasts")
    if not isinstance(forecasts, list):
        return [], 0
    rows = [_forecast_parts(_as_dict(fc)) for fc in forecasts[:MAX_FORECAST_LINES]]
    return rows, max(0, len(forecasts) - MAX_FORECAST_LINES)


def _c2_rows(summary: Mapping) -> list[tuple[str, str]]:
    c2 = _as_dict(summary.get("c2"))
    rows = []
    for cohort, stats in c2.items():
        if isinstance(stats, Mapping):
            bits = []
            for key, value in stats.items():
                if key == "subscribers":
                    bits.append(f"{_fmt_num(value)} subscribers")
                elif key == "adoption_rate":
                    bits.append(f"adoption {_fmt_pct(value, scale=100.0)}")
                else:
                    bits.append(f"{str(key).replace('_', ' ')} {_fmt_num(value)}")
            rows.append((_str(cohort), ", ".join(bits) or "n/a"))
        else:
            rows.append((_str(cohort), _fmt_num(stats)))
    return rows


def _restated_rows(summary: Mapping) -> tuple[str, list[str]]:
    """(heading, lines) of the published quarters this export restated materially ("" when none):
    ``restated`` = {"threshold": share, "rows": [{sheet, quarter, metric, before, after, share}], "more": n}."""
    restated = _as_dict(summary.get("restated"))
    rows = restated.get("rows")
    if not isinstance(rows, list) or not rows:
        return "", []
    threshold = _fmt_pct(restated.get("threshold"), scale=100.0)
    lines = []
    for row in (_as_dict(r) for r in rows[:MAX_FORECAST_LINES]):
        digits = 2 if row.get("metric") in ("revenue", "mrr") else 0
        share = "new" if row.get("share") is None else _fmt_pct(row.get("share"), signed=True, scale=100.0)
        lines.append(
            f"{_str(row.get('sheet'))} {_str(row.get('quarter'))} {_str(row.get('metric'))}: "
            f"{_fmt_num(row.get('before'), digits)} → {_fmt_num(row.get('after'), digits)} ({share})"
        )
    more = restated.get("more")
    if _is_num(more) and more > 0:
        lines.append(f"… and {more:,} more (ops.restatements)")
    return f"Restated published quarters (by more than {threshold}, largest first)", lines


def _details(summary: Mapping) -> list[str]:
    """Free-form lines (alerts): ``details`` as a list of strings."""
    details = summary.get("details")
    if isinstance(details, str):
        return [details]
    if isinstance(details, (list, tuple)):
        return [_str(d) for d in details if d is not None][:MAX_FORECAST_LINES]
    return []


def _run_url(summary: Mapping) -> str | None:
    url = summary.get("run_url")
    return str(url) if url else None


def render_text(summary: dict) -> str:
    """A readable plain-text (light markdown) summary. Missing keys are skipped."""
    summary = _as_dict(summary)
    lines = [_title(summary)]
    heading, landing = _landing_rows(summary)
    if landing:
        lines += ["", f"{heading}:"] + [f"- {name}: {detail}" for name, detail in landing] + [""]
    lines += [f"{label}: {value}" for label, value in _facts(summary)]
    details = _details(summary)
    if details:
        lines += [""] + [f"- {d}" for d in details]
    restated_heading, restated = _restated_rows(summary)
    if restated:
        lines += ["", f"{restated_heading}:"] + [f"- {r}" for r in restated]
    rows, more = _forecast_rows(summary)
    if rows:
        lines += ["", "Forecasts:"]
        lines += [f"- {name} → {detail}" for name, detail in rows]
        if more:
            lines.append(f"- … and {more:,} more")
    c2 = _c2_rows(summary)
    if c2:
        lines += ["", "C2:"]
        lines += [f"- {name}: {detail}" for name, detail in c2]
    told = _narratives(summary)  # last: a long text is cut at Slack's limit here, not the figures above
    if told:
        lines += ["", "In words:"] + [f"- {t}" for t in told]
    url = _run_url(summary)
    if url:
        lines += ["", f"Run: {url}"]
    return "\n".join(lines)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_sections(heading: str, lines: list[str]) -> list[dict]:
    """Split lines into mrkdwn sections that respect Slack's per-section limit."""
    sections: list[dict] = []
    current = f"*{heading}*"
    for line in lines:
        if len(current) + 1 + len(line) > _SLACK_SECTION_LIMIT:
            sections.append(current)
            current = line[:_SLACK_SECTION_LIMIT]
        else:
            current += "\n" + line
    sections.append(current)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in sections]


def slack_payload(summary: dict) -> dict:
    """Slack incoming-webhook message: fallback ``text`` plus mrkdwn ``blocks``."""
    summary = _as_dict(summary)
    esc = _slack_escape
    title = _title(summary)
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}}]
    heading, landing = _landing_rows(summary)
    if landing:
        blocks += _slack_sections(esc(heading), [f"• `{esc(n)}` {esc(d)}" for n, d in landing])
    facts = _facts(summary)
    if facts:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "\n".join(f"*{esc(k)}:* {esc(v)}" for k, v in facts)[:_SLACK_SECTION_LIMIT],
                },
            }
        )
    details = _details(summary)
    if details:
        blocks += _slack_sections("Details", [f"• {esc(d)}" for d in details])
    restated_heading, restated = _restated_rows(summary)
    if restated:
        blocks += _slack_sections(esc(restated_heading), [f"• {esc(r)}" for r in restated])
    rows, more = _forecast_rows(summary)
    if rows:
        lines = [f"• `{esc(name)}` → {esc(detail)}" for name, detail in rows]
        if more:
            lines.append(f"• … and {more:,} more")
        blocks.append({"type": "divider"})
        blocks += _slack_sections("Forecasts", lines)
    c2 = _c2_rows(summary)
    if c2:
        blocks += _slack_sections("C2", [f"• *{esc(n)}:* {esc(d)}" for n, d in c2])
    told = _narratives(summary)
    if told:
        blocks += _slack_sections("In words", [f"• {esc(t)}" for t in told])
    url = _run_url(summary)
    if url:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{esc(url)}|Open the run in Dagster>"}]}
        )
    return {"text": render_text(summary)[:_SLACK_TEXT_LIMIT], "blocks": blocks[:50]}


def teams_payload(summary: dict) -> dict:
    """Teams Workflows webhook message carrying one Adaptive Card (v1.4)."""
    summary = _as_dict(summary)
    body: list[dict] = [
        {"type": "TextBlock", "text": _title(summary), "size": "Large", "weight": "Bolder", "wrap": True}
    ]
    heading, landing = _landing_rows(summary)
    if landing:
        body.append({"type": "TextBlock", "text": heading, "weight": "Bolder", "wrap": True})
        body.append({"type": "FactSet", "facts": [{"title": n, "value": d} for n, d in landing]})
    facts = _facts(summary)
    if facts:
        body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]})
    for line in _details(summary):
        body.append({"type": "TextBlock", "text": line, "wrap": True})
    restated_heading, restated = _restated_rows(summary)
    if restated:
        body.append(
            {"type": "TextBlock", "text": restated_heading, "weight": "Bolder", "separator": True, "wrap": True}
        )
        body += [{"type": "TextBlock", "text": r, "wrap": True, "spacing": "None"} for r in restated]
    rows, more = _forecast_rows(summary)
    if rows:
        body.append({"type": "TextBlock", "text": "Forecasts", "weight": "Bolder", "separator": True, "wrap": True})
        facts_fc = [{"title": name, "value": detail} for name, detail in rows]
        if more:
            facts_fc.append({"title": "…", "value": f"and {more:,} more"})
        body.append({"type": "FactSet", "facts": facts_fc})
    c2 = _c2_rows(summary)
    if c2:
        body.append({"type": "TextBlock", "text": "C2", "weight": "Bolder", "separator": True, "wrap": True})
        body.append({"type": "FactSet", "facts": [{"title": n, "value": d} for n, d in c2]})
    told = _narratives(summary)
    if told:
        body.append({"type": "TextBlock", "text": "In words", "weight": "Bolder", "separator": True, "wrap": True})
        body += [{"type": "TextBlock", "text": t, "wrap": True, "spacing": "None"} for t in told]
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }
    url = _run_url(summary)
    if url:
        content["actions"] = [{"type": "Action.OpenUrl", "title": "Open the run", "url": url}]
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": content}],
    }


# --------------------------------------------------------------------------- sending


def _jsonable(value: Any) -> Any:
    """Make a summary safe for strict JSON (no NaN/inf, dates as ISO strings)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return _jsonable(float(value))
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _jsonable(item())
        except Exception:
            pass
    return str(value)


def _encode(payload: Any) -> bytes:
    return json.dumps(_jsonable(payload), ensure_ascii=False, allow_nan=False).encode("utf-8")


class _Poster:
    def __init__(self, cfg: NotifyConfig, client: httpx.Client):
        self.cfg = cfg
        self.client = client

    @staticmethod
    def scrub(text: str, url: str) -> str:
        return redact(text, *url_secrets(url))

    def describe(self, exc: Exception, url: str) -> str:
        msg = self.scrub(" ".join(str(exc).split()), url)
        return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__

    def post(self, channel: str, url: str, payload: Any) -> None:
        """Deliver once (retried only where nothing was delivered); raise NotifyError with a
        URL-free reason. A timeout after the request went out is not retried: the webhook
        may have delivered it, and a second post would show the message twice."""
        data = _encode(payload)
        headers = {"content-type": "application/json; charset=utf-8"}
        try:
            resp = send_with_retries(
                lambda: self.client.post(url, content=data, headers=headers, timeout=self.cfg.timeout_s),
                retries=self.cfg.retries,
                backoff_s=self.cfg.backoff_s,
                idempotent=False,
                what=f"{channel} webhook",
            )
        except RetriesExhausted as exc:
            last = exc.last
            reason = self.describe(last, url) if isinstance(last, Exception) else self._answer(last, url)
            raise NotifyError(f"{reason} after {exc.attempts} attempt(s)") from None
        except httpx.HTTPError as exc:  # sent but the answer was lost, bad URL, ...
            raise NotifyError(self.describe(exc, url)) from None
        if not 200 <= resp.status_code < 300:
            raise NotifyError(self._answer(resp, url))

    def _answer(self, resp: httpx.Response, url: str) -> str:
        body = " ".join(resp.text.split())
        if len(body) > 200:
            body = body[:200] + "…"
        return self.scrub(f"HTTP {resp.status_code} {body}".rstrip(), url)


def send_summary(summary: dict, cfg: NotifyConfig, *, client: httpx.Client | None = None) -> dict[str, str]:
    """Post ``summary`` to every configured channel.

    Returns channel -> ``"sent"`` or ``"failed: <reason>"`` (reason never contains a
    URL or the SMTP password); never raises for delivery problems. Slack gets
    :func:`slack_payload`, Teams gets :func:`teams_payload`, n8n gets the raw summary JSON,
    email gets the title as subject and :func:`render_text` as body. Returns ``{}`` when no
    channel is configured. ``client`` is used as is and left open; otherwise one is created.
    """
    channels = cfg.channels()
    if not channels:
        return {}
    builders = {"slack": slack_payload, "teams": teams_payload, "n8n": lambda s: s}
    own_client = client is None
    http = client if client is not None else httpx.Client(timeout=cfg.timeout_s)
    poster = _Poster(cfg, http)
    results: dict[str, str] = {}
    try:
        for channel in channels:
            url = cfg.url_for(channel) if channel in WEBHOOKS else None
            secrets = url_secrets(url) if url else [cfg.email.smtp_password if cfg.email else None]
            try:
                if channel == "email":
                    assert cfg.email is not None
                    send_email(_title(_as_dict(summary)), render_text(summary), cfg.email)
                else:
                    assert url
                    poster.post(channel, url, builders[channel](summary))
            except (NotifyError, EmailError) as exc:
                results[channel] = f"failed: {exc}"
            except Exception as exc:  # a rendering bug must not hide other channels
                results[channel] = f"failed: {redact(f'{type(exc).__name__}: {exc}', *secrets)}"
            else:
                results[channel] = "sent"
            if results[channel] != "sent":
                log.warning("%s notification %s", channel, results[channel])
    finally:
        if own_client:
            http.close()
    return results


def send_alert(
    title: str,
    details: list[str],
    cfg: NotifyConfig,
    *,
    event: str,
    run_url: str | None = None,
    extra: Mapping[str, Any] | None = None,
    client: httpx.Client | None = None,
) -> dict[str, str]:
    """Post a short alert (run failure, freshness breach) to every configured channel.

    Same delivery rules as :func:`send_summary`; n8n receives the JSON with ``event``, email
    the title as subject and the details (and the link) as body.
    """
    alert: dict[str, Any] = {"event": event, "title": title, "details": list(details)}
    if run_url:
        alert["run_url"] = run_url
    if extra:
        alert.update({k: v for k, v in extra.items() if k not in alert})
    return send_summary(alert, cfg, client=client)


def request_refresh_via_n8n(
    payload: Mapping[str, Any], cfg: NotifyConfig, *, client: httpx.Client | None = None
) -> None:
    """The alternative refresh route: hand the "forecasts published" event to an n8n
    workflow (which refreshes dashboards itself). Raises NotifyError (URL-free) on failure."""
    url = cfg.n8n_webhook_url
    if not url:
        raise NotifyError("N8N_WEBHOOK_URL is not set")
    own_client = client is None
    http = client if client is not None else httpx.Client(timeout=cfg.timeout_s)
    try:
        _Poster(cfg, http).post("n8n", url, {"event": "metabase_refresh", **dict(payload)})
    finally:
        if own_client:
            http.close()
