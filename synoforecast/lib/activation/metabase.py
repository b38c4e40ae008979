"""Metabase refresh client: wait until Metabase is healthy, re-sync the warehouse schema,
then re-run the configured saved questions (cards) so their cached results are fresh.

Pure library (httpx only, no Dagster). The API key is a secret: it is sent only as the
``x-api-key`` header and never appears in ``repr()`` or in any error message.

Metabase behaviour this module relies on:

* ``GET /api/health`` answers 200 ``{"status": "ok"}`` once ready and 503
  ``{"status": "initializing", "progress": 0.4}`` while starting up.
* ``POST /api/database/{id}/sync_schema`` answers 200 ``{"status": "ok"}`` at once and syncs
  in the background; ``GET /api/database/{id}/metadata`` lists the tables and fields Metabase
  knows, so the refresh polls it until the new forecast schema is there.
* ``POST /api/card/{id}/query`` answers **202** (streamed result) even when the query
  fails; a failure is reported in the body as ``{"status": "failed", "error": "..."}``.
* Missing or wrong credentials answer 401 with the plain-text body ``Unauthenticated``.
* ``POST /api/session`` ``{"username", "password"}`` answers 200 ``{"id": token}``; the
  token then goes in the ``X-Metabase-Session`` header (used when no API key is set).
* ``GET /api/dashboard/{id}`` lists its cards under ``dashcards`` (``ordered_cards`` in
  releases before 0.47); text cards have ``card_id: null``.
* ``POST /api/persist/card/{id}/refresh`` answers 204 (persisted models).
* ``POST /api/cache/invalidate`` is a paid feature: the open-source edition answers 402
  ``error-premium-feature-not-available`` (older releases 404). Neither is an error here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from synoforecast.lib.activation.http import RetriesExhausted, StillWaiting, send_with_retries, wait_until
from synoforecast.lib.activation.variables import read_variables
from synoforecast.lib.redaction import MASK, redact, safe_url

log = logging.getLogger(__name__)

__all__ = ["MetabaseConfig", "MetabaseError", "RefreshReport", "check_metabase_access", "refresh_metabase"]

# Transport failures worth another attempt: the request timed out or never got through.
_RETRYABLE_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)  # health polls


class MetabaseError(RuntimeError):
    """A Metabase refresh failed. The message never contains the API key.

    ``card_errors`` maps card id -> reason for every card that failed (empty when the
    failure was not card-specific).
    """

    def __init__(self, message: str, *, card_errors: Mapping[int, str] | None = None, initializing: bool = False):
        super().__init__(message)
        self.card_errors: dict[int, str] = dict(card_errors or {})
        self.initializing = initializing  # Metabase answered, but is still starting up


def _ids(raw: Any) -> Any:
    """ "1, 2,3" (a variable) or a list -> the ids in order, once each."""
    if isinstance(raw, str):
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        try:
            raw = [int(p) for p in parts]
        except ValueError:
            raise ValueError("must be a comma-separated list of integers (e.g. '1,2,3')") from None
    return list(dict.fromkeys(raw or ()))


def _trimmed(raw: Any) -> Any:
    return (raw.strip() or None) if isinstance(raw, str) else raw


VARIABLE_EXCEPTIONS = {"username": "METABASE_USER"}


def variable(field_name: str) -> str:
    """The environment variable of a Metabase field: METABASE_<FIELD> (and METABASE_USER)."""
    return VARIABLE_EXCEPTIONS.get(field_name, f"METABASE_{field_name.upper()}")


class MetabaseFields(BaseModel):
    """What the refresh is told, declared once with types and ranges: MetabaseConfig reads
    them from the variables, defs/resources.MetabaseResource shows them in the UI."""

    url: str | None = None
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    database_id: PositiveInt | None = None
    card_ids: list[PositiveInt] = []
    dashboard_ids: list[PositiveInt] = []
    model_ids: list[PositiveInt] = []  # persisted models to refresh
    cache_invalidate: bool = True  # "0"/"false" turns the cache invalidation off
    timeout_s: float = Field(30.0, ge=0)
    health_attempts: NonNegativeInt = 10
    health_wait_s: float = Field(3.0, ge=0)
    retries: NonNegativeInt = 3
    backoff_s: float = Field(1.0, ge=0)
    sync_timeout_s: float = Field(300.0, ge=0)
    sync_poll_s: float = Field(1.0, ge=0)


class MetabaseConfig(MetabaseFields):
    """The fields, checked: read from their variables (``variable(name)``) by
    ``from_variables``, and refused when only half a configuration is given."""

    model_config = ConfigDict(frozen=True, alias_generator=variable, populate_by_name=True, extra="forbid")

    @field_validator("card_ids", "dashboard_ids", "model_ids", mode="before")
    @classmethod
    def _id_list(cls, raw: Any) -> Any:
        return _ids(raw)

    @field_validator("api_key", "username", mode="before")
    @classmethod
    def _text(cls, raw: Any) -> Any:
        return _trimmed(raw)

    @field_validator("url", mode="before")
    @classmethod
    def _base_url(cls, raw: Any) -> Any:
        raw = _trimmed(raw)
        return (raw.rstrip("/") or None) if isinstance(raw, str) else raw

    @model_validator(mode="after")
    def _whole(self) -> MetabaseConfig:
        """Half a configuration is an error: it would otherwise read as "not configured"."""
        if self.url and self.auth_method is None:
            raise MetabaseError(
                "METABASE_URL is set but no credentials: set METABASE_API_KEY (or METABASE_USER and METABASE_PASSWORD)"
            )
        if not self.url and (
            self.api_key
            or self.username
            or self.password
            or self.card_ids
            or self.dashboard_ids
            or self.model_ids
            or self.database_id
        ):
            raise MetabaseError("Metabase credentials or ids are set but METABASE_URL is not")
        if bool(self.username) != bool(self.password) and not self.api_key:
            raise MetabaseError("METABASE_USER and METABASE_PASSWORD must be set together")
        return self

    @classmethod
    def from_variables(cls, env: Mapping[str, Any]) -> MetabaseConfig:
        """The METABASE_* variables (blank = unset); a malformed one raises MetabaseError
        naming it and its value (never a secret's: those are not parsed)."""
        return read_variables(cls, env, fields=cls.model_fields, variable=variable, error=MetabaseError)

    @property
    def auth_method(self) -> str | None:
        """ "api_key", "session" (user + password) or None."""
        if self.api_key:
            return "api_key"
        if self.username and self.password:
            return "session"
        return None

    @property
    def configured(self) -> bool:
        return bool(self.url) and self.auth_method is not None

    def __repr__(self) -> str:
        key = f"'{MASK}'" if self.api_key else "None"
        pw = f"'{MASK}'" if self.password else "None"
        return (
            f"MetabaseConfig(url={safe_url(self.url)!r}, api_key={key}, "
            f"username={self.username!r}, password={pw}, "
            f"card_ids={self.card_ids!r}, dashboard_ids={self.dashboard_ids!r}, "
            f"model_ids={self.model_ids!r}, database_id={self.database_id!r}, "
            f"timeout_s={self.timeout_s!r}, health_attempts={self.health_attempts!r}, "
            f"health_wait_s={self.health_wait_s!r}, retries={self.retries!r}, "
            f"backoff_s={self.backoff_s!r})"
        )

    __str__ = __repr__


@dataclass
class RefreshReport:
    health: str
    schema_synced: bool
    cards: dict[int, str] = field(default_factory=dict)  # card id -> "ok"
    elapsed_s: float = 0.0
    requests: int = 0
    auth: str = "api_key"
    dashboards: dict[int, list[int]] = field(default_factory=dict)  # dashboard -> its cards
    models: dict[int, str] = field(default_factory=dict)  # persisted model -> "ok"
    cache: str = "skipped"  # "invalidated" | "not available (...)" | "skipped"
    sync_wait_s: float = 0.0  # waited for the background schema sync to finish
    provisioned: dict[str, int] = field(default_factory=dict)  # provisioned question key -> card id

    def to_metadata(self) -> dict[str, Any]:
        """Plain JSON-able dict (card ids become string keys)."""
        return {
            "health": self.health,
            "schema_synced": self.schema_synced,
            "cards": {str(k): v for k, v in self.cards.items()},
            "cards_refreshed": sum(1 for v in self.cards.values() if v == "ok"),
            "elapsed_s": round(self.elapsed_s, 3),
            "requests": self.requests,
            "auth": self.auth,
            "dashboards": {str(k): v for k, v in self.dashboards.items()},
            "models": {str(k): v for k, v in self.models.items()},
            "cache": self.cache,
            "sync_wait_s": round(self.sync_wait_s, 3),
            "provisioned": dict(self.provisioned),
        }


class _Session:
    """One refresh run: shared client, request counter, secret scrubbing."""

    def __init__(self, cfg: MetabaseConfig, client: httpx.Client):
        assert cfg.url and cfg.configured
        self.cfg = cfg
        self.client = client
        self.base = cfg.url.rstrip("/")
        self.shown_url = safe_url(self.base)
        self.headers = {"accept": "application/json"}
        if cfg.api_key:
            self.headers["x-api-key"] = cfg.api_key
        self.token: str | None = None
        self.requests = 0

    # -- helpers -----------------------------------------------------------------
    def scrub(self, text: str) -> str:
        return redact(text, self.cfg.api_key, self.cfg.password, self.token, urlsplit(self.base).password)

    def snippet(self, resp: httpx.Response, limit: int = 300) -> str:
        try:
            body = resp.text
        except Exception:  # pragma: no cover - undecodable body
            return ""
        body = " ".join(body.split())
        if len(body) > limit:
            body = body[:limit] + "…"
        return self.scrub(body)

    def _describe(self, exc: Exception) -> str:
        msg = self.scrub(str(exc).strip())
        return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__

    def send(self, method: str, path: str, *, json: Any = None, params: Any = None) -> httpx.Response:
        """One attempt, counted; transport errors propagate."""
        self.requests += 1
        return self.client.request(
            method, self.base + path, headers=self.headers, json=json, params=params, timeout=self.cfg.timeout_s
        )

    def request(self, method: str, path: str, *, json: Any = None, params: Any = None) -> httpx.Response:
        """Send with the platform's retry rule (lib/activation/http.py: 5xx and transport errors; Metabase
        requests are idempotent). Returns the first non-5xx response; 4xx untouched."""
        what = f"{method} {path}"
        try:
            return send_with_retries(
                lambda: self.send(method, path, json=json, params=params),
                retries=self.cfg.retries,
                backoff_s=self.cfg.backoff_s,
                idempotent=True,
                what=f"Metabase {what}",
            )
        except RetriesExhausted as exc:
            last = exc.last
            reason = (
                self._describe(last)
                if isinstance(last, Exception)
                else f"HTTP {last.status_code} {self.snippet(last, 200)}".rstrip()
            )
            raise MetabaseError(
                f"Metabase request {what} to {self.shown_url} failed after {exc.attempts} attempt(s): {reason}"
            ) from None
        except httpx.HTTPError as exc:  # bad URL, unsupported protocol, ...
            raise MetabaseError(f"Metabase request {what} to {self.shown_url} failed: {self._describe(exc)}") from None

    def authorised(
        self, method: str, path: str, *, missing: tuple[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """``request`` whose 401/403 raises (check_auth); with ``missing`` = (what, variable),
        a 404 raises "Metabase <what> not found (404); check <variable>"."""
        resp = self.request(method, path, **kwargs)
        self.check_auth(resp, f"{method} {path}")
        if missing and resp.status_code == 404:
            raise MetabaseError(f"Metabase {missing[0]} not found (404); check {missing[1]}")
        return resp

    def check_auth(self, resp: httpx.Response, what: str) -> None:
        if resp.status_code in (401, 403) and self.cfg.auth_method == "session":
            raise MetabaseError(
                f"Metabase rejected the session ({resp.status_code}) on {what} at {self.shown_url}; "
                "check that METABASE_USER can see the database and cards"
            )
        if resp.status_code in (401, 403):
            raise MetabaseError(
                f"Metabase rejected the API key ({resp.status_code}) on {what} at {self.shown_url}; "
                "check METABASE_API_KEY (it must be a valid Metabase API key with access to "
                "the database and cards)"
            )

    @staticmethod
    def body_json(resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            return None

    # -- steps -------------------------------------------------------------------
    def wait_healthy(self) -> str:
        """GET /api/health until Metabase answers ok (the wait rule of lib/activation/http.py)."""
        attempts = max(1, self.cfg.health_attempts)
        seen = {"last": "", "initializing": False}

        def probe() -> str | None:
            try:
                resp = self.send("GET", "/api/health")
            except _RETRYABLE_TRANSPORT as exc:
                seen.update(last=self._describe(exc), initializing=False)
                return None
            except httpx.HTTPError as exc:
                raise MetabaseError(
                    f"Metabase health check at {self.shown_url} failed: {self._describe(exc)}"
                ) from None
            body = self.body_json(resp)
            status = body.get("status") if isinstance(body, dict) else None
            if resp.status_code == 200 and status == "ok":
                return "ok"
            if 400 <= resp.status_code < 500:
                raise MetabaseError(
                    f"Metabase at {self.shown_url} answered {resp.status_code} on /api/health; "
                    "is METABASE_URL pointing at Metabase?"
                )
            progress = body.get("progress") if isinstance(body, dict) else None
            seen.update(
                initializing=status == "initializing",
                last=f"HTTP {resp.status_code} status={status!r}"
                + (f" progress={progress}" if progress is not None else ""),
            )
            return None

        try:
            return wait_until(
                probe, wait_s=self.cfg.health_wait_s, attempts=attempts, what=f"Metabase at {self.shown_url} healthy"
            )
        except StillWaiting:
            if seen["initializing"]:
                raise MetabaseError(
                    f"Metabase at {self.shown_url} still initializing after {attempts} attempts", initializing=True
                ) from None
            raise MetabaseError(
                f"Metabase at {self.shown_url} not healthy after {attempts} attempts (last: {seen['last']})"
            ) from None

    def sync_schema(self, database_id: int) -> None:
        path = f"/api/database/{database_id}/sync_schema"
        resp = self.authorised("POST", path, missing=(f"database {database_id}", "METABASE_DATABASE_ID"))
        if not 200 <= resp.status_code < 300:
            raise MetabaseError(
                f"Metabase schema sync of database {database_id} failed: "
                f"HTTP {resp.status_code} {self.snippet(resp)}".rstrip()
            )

    def missing_from_metadata(self, database_id: int, expected: Mapping[str, set[str]]) -> list[str]:
        """``schema.table`` / ``schema.table.column`` names Metabase does not know yet."""
        path = f"/api/database/{database_id}/metadata"
        resp = self.authorised("GET", path)
        body = self.body_json(resp)
        if not 200 <= resp.status_code < 300 or not isinstance(body, dict):
            raise MetabaseError(
                f"Metabase metadata of database {database_id} could not be read: "
                f"HTTP {resp.status_code} {self.snippet(resp)}".rstrip()
            )
        known = {
            f"{t.get('schema')}.{t.get('name')}": {f.get("name") for f in t.get("fields") or []}
            for t in body.get("tables") or []
            if isinstance(t, dict)
        }
        missing = []
        for table, columns in sorted(expected.items()):
            if table not in known:
                missing.append(table)
            else:
                missing += [f"{table}.{c}" for c in sorted(columns - known[table])]
        return missing

    def wait_for_sync(self, database_id: int, expected: Mapping[str, set[str]]) -> float:
        """``sync_schema`` only starts a sync (Metabase answers at once and syncs in the
        background): poll the database metadata until every expected table and column is
        there, so cards are re-run against the new schema. Returns the seconds waited."""
        started = time.monotonic()
        missing: list[str] = []

        def probe() -> bool | None:
            missing[:] = self.missing_from_metadata(database_id, expected)
            return True if not missing else None

        try:
            wait_until(
                probe,
                wait_s=self.cfg.sync_poll_s,
                timeout_s=self.cfg.sync_timeout_s,
                what=f"Metabase schema sync of database {database_id}",
            )
        except StillWaiting:
            raise MetabaseError(
                f"Metabase schema sync of database {database_id} not finished after "
                f"{self.cfg.sync_timeout_s:g} s: still unknown {', '.join(missing[:10])}"
            ) from None
        return time.monotonic() - started

    def login(self) -> None:
        """POST /api/session with METABASE_USER / METABASE_PASSWORD; keep the token."""
        resp = self.request("POST", "/api/session", json={"username": self.cfg.username, "password": self.cfg.password})
        if resp.status_code in (400, 401, 403):
            raise MetabaseError(
                f"Metabase refused the login of METABASE_USER ({resp.status_code}) at {self.shown_url}; "
                "check METABASE_USER and METABASE_PASSWORD"
            )
        body = self.body_json(resp)
        token = body.get("id") if isinstance(body, dict) else None
        if not 200 <= resp.status_code < 300 or not token:
            raise MetabaseError(
                f"Metabase login at {self.shown_url} failed: HTTP {resp.status_code} {self.snippet(resp)}".rstrip()
            )
        self.token = str(token)
        self.headers["X-Metabase-Session"] = self.token

    def authenticate(self) -> None:
        """Log in (user + password) and check the credentials on GET /api/user/current."""
        if self.cfg.auth_method == "session":
            self.login()
        resp = self.authorised("GET", "/api/user/current")
        if resp.status_code != 200:
            raise MetabaseError(
                f"Metabase /api/user/current at {self.shown_url} answered HTTP {resp.status_code} "
                f"{self.snippet(resp, 200)}".rstrip()
            )

    def dashboard_cards(self, dashboard_id: int) -> list[int]:
        """Card ids on a dashboard (text/heading cards have none), in layout order."""
        path = f"/api/dashboard/{dashboard_id}"
        resp = self.authorised("GET", path, missing=(f"dashboard {dashboard_id}", "METABASE_DASHBOARD_IDS"))
        body = self.body_json(resp)
        if not 200 <= resp.status_code < 300 or not isinstance(body, dict):
            raise MetabaseError(
                f"Metabase dashboard {dashboard_id} could not be read: HTTP {resp.status_code} "
                f"{self.snippet(resp)}".rstrip()
            )
        dashcards = body.get("dashcards")
        if dashcards is None:
            dashcards = body.get("ordered_cards") or []
        out: list[int] = []
        for dc in dashcards:
            cid = dc.get("card_id") if isinstance(dc, dict) else None
            if isinstance(cid, int) and cid not in out:
                out.append(cid)
        return out

    def refresh_model(self, card_id: int) -> str | None:
        """Refresh one persisted model. None when ok, else the reason."""
        path = f"/api/persist/card/{card_id}/refresh"
        resp = self.authorised("POST", path)
        if resp.status_code == 404:
            return "model not found (404), check METABASE_MODEL_IDS"
        if not 200 <= resp.status_code < 300:
            return f"HTTP {resp.status_code} {self.snippet(resp)}".rstrip()
        return None

    def invalidate_cache(self, params: list[tuple[str, int]]) -> str:
        """POST /api/cache/invalidate; the open-source refusal (402, or 404 on old
        releases) is reported, not raised."""
        resp = self.authorised("POST", "/api/cache/invalidate", params=params)
        if 200 <= resp.status_code < 300:
            return "invalidated"
        if resp.status_code == 402:
            return "not available (paid feature; open-source edition)"
        if resp.status_code == 404:
            return "not available (endpoint missing in this release)"
        raise MetabaseError(
            f"Metabase cache invalidation failed: HTTP {resp.status_code} {self.snippet(resp)}".rstrip()
        )

    def query_card(self, card_id: int) -> str | None:
        """Re-run one card bypassing the cache. Returns None when ok, else the reason."""
        path = f"/api/card/{card_id}/query"
        resp = self.authorised("POST", path, json={"ignore_cache": True})
        if resp.status_code == 404:
            return "card not found (404), check METABASE_CARD_IDS"
        if resp.status_code not in (200, 202):
            return f"HTTP {resp.status_code} {self.snippet(resp)}".rstrip()
        body = self.body_json(resp)
        if not isinstance(body, dict):
            return f"unreadable answer (HTTP {resp.status_code}, not a JSON object)"
        error = body.get("error")
        if body.get("status") == "failed" or error is not None:
            text = str(error) if error is not None else "query failed"
            text = " ".join(text.split())
            if len(text) > 500:
                text = text[:500] + "…"
            return self.scrub(text)
        return None


def check_metabase_access(cfg: MetabaseConfig, client: httpx.Client) -> str:
    """What `synoforecast doctor` asks, through the refresh's own client: one health probe
    (no waiting), then the credentials. Returns "ok", or "initializing" when Metabase is
    still starting up (the credentials are still checked). Raises MetabaseError naming what
    to fix; a credentials problem has ``initializing`` False and starts with "credentials: "."""
    session = _Session(cfg.model_copy(update={"health_attempts": 1, "retries": 0}), client)
    try:
        health = session.wait_healthy()
    except MetabaseError as exc:
        if not exc.initializing:
            raise
        health = "initializing"
    try:
        session.authenticate()
    except MetabaseError as exc:
        raise MetabaseError(f"credentials: {exc}", initializing=health == "initializing") from None
    return health


def refresh_metabase(
    cfg: MetabaseConfig,
    *,
    sync_schema: bool = True,
    expect_tables: Mapping[str, set[str]] | None = None,
    client: httpx.Client | None = None,
    provisioned: bool = False,
) -> RefreshReport:
    """Health-check Metabase, sync the schema of ``cfg.database_id`` (when set and
    ``sync_schema``) and wait until Metabase knows ``expect_tables`` ({"schema.table":
    {columns}}), then re-run every card in ``cfg.card_ids`` with ``ignore_cache``. With
    ``provisioned``, the questions `synoforecast metabase provision` created
    (lib/activation/metabase_provision.py, found by their keys) are re-run first: no card id
    needs configuring.

    Every card is attempted; if any fail, one MetabaseError naming all failed cards is
    raised (``.card_errors`` holds the details). Authentication failures and exhausted
    retries abort at once. ``client`` is used as is and left open; otherwise a client is
    created and closed.
    """
    if not cfg.configured:
        raise MetabaseError(
            "Metabase is not configured: set METABASE_URL and METABASE_API_KEY (or METABASE_USER and METABASE_PASSWORD)"
        )
    started = time.monotonic()
    own_client = client is None
    http = client if client is not None else httpx.Client(timeout=cfg.timeout_s)
    session = _Session(cfg, http)
    try:
        health = session.wait_healthy()
        if cfg.auth_method == "session":
            session.login()
        synced = False
        sync_wait = 0.0
        if sync_schema and cfg.database_id is not None:
            session.sync_schema(cfg.database_id)
            sync_wait = session.wait_for_sync(cfg.database_id, expect_tables or {})
            synced = True
        found: dict[str, int] = {}
        if provisioned:
            from synoforecast.lib.activation.metabase_provision import lookup_cards

            found = lookup_cards(session)
        dashboards = {d: session.dashboard_cards(d) for d in cfg.dashboard_ids}
        card_ids = list(dict.fromkeys([*found.values(), *cfg.card_ids]))
        for on_dashboard in dashboards.values():
            card_ids += [c for c in on_dashboard if c not in card_ids]
        models: dict[int, str] = {}
        failures: dict[int, str] = {}
        for model_id in cfg.model_ids:
            reason = session.refresh_model(model_id)
            models[model_id] = "ok" if reason is None else f"failed: {reason}"
            if reason is not None:
                failures[model_id] = f"persisted model refresh: {reason}"
        cache = "skipped"
        if cfg.cache_invalidate and (cfg.database_id or card_ids or cfg.dashboard_ids):
            params = [("include", "overrides")]
            params += [("database", cfg.database_id)] if cfg.database_id else []
            params += [("dashboard", d) for d in cfg.dashboard_ids]
            params += [("question", c) for c in card_ids]
            cache = session.invalidate_cache(params)
        cards: dict[int, str] = {}
        for card_id in card_ids:
            reason = session.query_card(card_id)
            if reason is None:
                cards[card_id] = "ok"
            else:
                cards[card_id] = f"failed: {reason}"
                failures[card_id] = reason
        if failures:
            detail = "; ".join(f"card {cid}: {why}" for cid, why in failures.items())
            total = len(cards) + len(models)
            ok = total - len(failures)
            raise MetabaseError(
                f"Metabase refresh failed for {len(failures)} of {total} card(s) ({ok} ok): {detail}",
                card_errors=failures,
            )
        return RefreshReport(
            health=health,
            schema_synced=synced,
            cards=cards,
            elapsed_s=time.monotonic() - started,
            requests=session.requests,
            auth=cfg.auth_method or "",
            dashboards=dashboards,
            models=models,
            cache=cache,
            sync_wait_s=sync_wait,
            provisioned=found,
        )
    finally:
        if own_client:
            http.close()
