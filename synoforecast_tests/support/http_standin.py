"""A local HTTP stand-in for Metabase and the Slack / Teams / n8n webhooks.

Runs ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (random port) in a background
thread, answers like the real services do, and records every request::

    with StandIn(api_key="k") as s:
        s.initializing_for = 2
        refresh_metabase(MetabaseConfig(url=s.url, api_key="k", card_ids=(1,)))
        assert [r.path for r in s.requests][:3] == ["/api/health"] * 3

Metabase (``/api/...``)
    GET  /api/health                      200 {"status":"ok"}; 503 {"status":"initializing","progress":0.4}
                                          for the first ``initializing_for`` calls. No auth needed.
    POST /api/session                     {"username","password"} -> 200 {"id": <token>}; wrong -> 401
                                          {"errors":{"password":"did not match stored password"}}.
    GET  /api/user/current                200 {"id":1,"email":...} (handy auth probe).
    POST /api/database/<id>/sync_schema   200 {"status":"ok"} AT ONCE, and the sync runs in the background
                                          for ``sync_s`` seconds (as in real Metabase); 404 "Not found."
                                          for ``missing_database_ids``.
    GET  /api/database/<id>/metadata      200 {"id","tables":[{"id","schema","name","description","fields":
                                          [{"id","name","description",...}]}]}: what
                                          the last FINISHED sync saw (``schema``, or the live
                                          information_schema of ``warehouse_url`` when set).
    POST /api/card/<id>/query             202 {"status":"completed","row_count":..,"data":{"rows","cols"},...};
                                          202 {"status":"failed","error":...} for ``fail_card_ids``;
                                          404 "Not found." for ``missing_card_ids``.
    GET  /api/dashboard/<id>              200 {"id","name","dashcards":[{"id","card_id","card"}...]} from
                                          ``dashboards`` (a text card with card_id null is included);
                                          404 "Not found." for unknown dashboards.
    POST /api/persist/card/<id>/refresh   204 (404 for missing cards).
    POST /api/cache/invalidate            402 {"message": "Granular Caching is a paid feature ...",
                                          "status": "error-premium-feature-not-available"}.
                                          This is what open-source Metabase answers: the endpoint exists
                                          but is gated on the ``cache-granular-controls`` premium feature
                                          (older releases send only the ``status`` map or the plain-text
                                          message; the 402 code is the stable part).
                                          With ``premium_cache = True`` (a paid instance): 200
                                          {"count": <n>}.
    Provisioning (objects kept in ``collections`` / ``cards`` / ``dashboards_store``, ids assigned by
    the stand-in, counting up; a trailing slash on the path is optional, as in Metabase):
    GET  /api/collection/[?archived=true] the non-archived collections (the archived ones with
                                          ``archived=true``), each {"id","name","description","archived",...}.
    POST /api/collection/                 {"name" (required, non-blank), "description", "color", "parent_id"}
                                          -> 200 the collection; 400 {"errors": {...}, "specific-errors": {...}}.
    GET|PUT /api/collection/<id>          read / update (``archived`` true moves it to the trash).
    GET  /api/collection/<id>/items       {"total","data":[{"id","model","name","description",...}],"models"}:
                                          its cards and dashboards, NOT archived ones (``archived=true``:
                                          only archived ones); ``models=card&models=dashboard`` filters.
    GET  /api/card/?f=archived|all        cards (all: non-archived ones; archived: archived ones only).
    POST /api/card/                       requires ``name``, ``display`` (non-blank strings),
                                          ``dataset_query`` and ``visualization_settings`` (maps): else 400
                                          with the errors map naming each missing field. ``reject_cards``
                                          (name -> errors map) answers 400 with that map.
    GET|PUT|DELETE /api/card/<id>         read / update in place (a PUT keeps the id; ``archived``) / hard
                                          delete (204); 404 "Not found." for unknown ids.
    GET  /api/dashboard/?f=archived|all   dashboards, as for cards.
    POST /api/dashboard/                  {"name" (required), "description", "collection_id", "parameters"}.
    PUT  /api/dashboard/<id>              updates the fields given; ``dashcards`` REPLACES the layout: each
                                          needs ``id`` (negative = new, server assigns one), ``size_x``,
                                          ``size_y``, ``row``, ``col``; ``card_id`` must be a card (or null
                                          for a text card); else 400. Answers the dashboard with
                                          ``dashcards`` (each with its ``card``).
    GET  /api/dashboard/<id>              the stored dashboard (``dashboards`` knob ids answer as below).
    DELETE /api/dashboard/<id>            hard delete, 204.
    GET  /api/table/<id>/query_metadata   a table of the last finished sync (ids: see ``table_id``), with
                                          its fields {"id","name","description","display_name"}.
    PUT  /api/table/<id>, /api/field/<id> {"description", "display_name", ...} kept and answered back.
    anything else under /api              404 "API endpoint does not exist."
    Every /api endpoint except health and session needs a correct ``x-api-key`` header or an
    ``X-Metabase-Session`` token from POST /api/session; otherwise 401 text ``Unauthenticated``.

Webhooks
    POST /slack/<anything>   200 "ok"; 400 "invalid_payload" when the body is not JSON or has
                             neither ``text`` nor ``blocks`` (real Slack says ``no_text`` for the latter).
    POST /teams/<anything>   202 (empty body); 400 JSON error when the body is not JSON.
    POST /n8n/<anything>     200 {"message":"Workflow was started"}; 400 when the body is not JSON.
    other methods            405 (Allow: POST) on Slack/Teams; n8n answers 404 "This webhook is not
                             registered for GET requests. Did you mean to make a POST request?".
                             That is what `synoforecast doctor` probes without posting.

Knobs (plain attributes, change any time, matched against the path without query string):
    initializing_for: int            first N health calls answer 503 initializing
    fail_card_ids: set[int]          card queries answer 202 with a failed-query body
    card_error: str                  error text used for those
    missing_card_ids: set[int]       cards answering 404
    missing_database_ids: set[int]   databases answering 404
    server_errors: dict[path, int]   answer 500 that many times first, then normally
    forced: dict[path, (status, body)]  always answer this (body: dict -> JSON, str/bytes -> text)
    hang_paths: set[path]            sleep ``hang_s`` (bounded, interrupted by stop()) before answering
    hang_s: float                    default 2.0, capped at 10 s
    card_row_count: int              rows returned by successful card queries
    dashboards: dict[int, list[int]] dashboard id -> card ids on it (fixed dashboards, read-only)
    reject_cards: dict[str, dict]    card name -> the 400 errors map a POST/PUT of that card answers
    premium_cache: bool              cache invalidation available (paid edition)
    sync_s: float                    how long a background schema sync takes (default 0.3 s)
    schema: dict[str, list[str]]     "schema.table" -> columns a sync finds (when no warehouse_url)
    warehouse_url: str | None        a sync reads tables/columns of ``sync_schemas`` from this PostgreSQL
    sync_schemas: tuple[str, ...]    default ("forecast", "marts")

Every recorded request carries ``during_sync``: a schema sync was still running when it arrived.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

__all__ = ["RecordedRequest", "StandIn"]

_MAX_HANG_S = 10.0
_CARD_QUERY = re.compile(r"^/api/card/(\d+)/query$")
_SYNC_SCHEMA = re.compile(r"^/api/database/(\d+)/sync_schema$")
_METADATA = re.compile(r"^/api/database/(\d+)/metadata$")
_PERSIST_REFRESH = re.compile(r"^/api/persist/card/(\d+)/refresh$")
_DASHBOARD = re.compile(r"^/api/dashboard/(\d+)$")
_COLLECTION = re.compile(r"^/api/collection/(\d+)$")
_COLLECTION_ITEMS = re.compile(r"^/api/collection/(\d+)/items$")
_CARD = re.compile(r"^/api/card/(\d+)$")
_TABLE_METADATA = re.compile(r"^/api/table/(\d+)/query_metadata$")
_TABLE = re.compile(r"^/api/table/(\d+)$")
_FIELD = re.compile(r"^/api/field/(\d+)$")
NON_BLANK = "value must be a non-blank string."
A_MAP = "value must be a map."
_PREMIUM_MESSAGE = (
    "Granular Caching is a paid feature not currently available to your instance. "
    "Please upgrade to use it. Learn more at metabase.com/upgrade/"
)


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-case keys
    json: Any  # parsed JSON body, or None
    body: bytes = b""
    during_sync: bool = False  # a background schema sync was running when this arrived

    def __repr__(self) -> str:  # keep assertion output short
        return f"RecordedRequest({self.method} {self.path}{'?' + self.query if self.query else ''})"


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _json_answer(status: int, obj: Any) -> _Answer:
    return _Answer(status, json.dumps(obj).encode(), "application/json;charset=utf-8")


def _text_answer(status: int, text: str | bytes) -> _Answer:
    data = text.encode() if isinstance(text, str) else text
    return _Answer(status, data, "text/plain;charset=utf-8")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: StandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "StandIn/1.0"
    timeout = 15  # idle keep-alive connections give up eventually
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY Nagle's
        # algorithm meets delayed ACKs and every request costs ~40 ms on loopback.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._read_body()
        path, _, query = self.path.partition("?")
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        req = RecordedRequest(
            method=self.command,
            path=path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            json=parsed,
            body=body,
        )
        answer = self.server.standin._answer(req)
        try:
            self.send_response(answer.status)
            if answer.content_type:
                self.send_header("Content-Type", answer.content_type)
            for k, v in answer.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if answer.body:
                self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):  # client gave up (timeouts)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class StandIn:
    """Local fake of Metabase + webhook receivers with a request log (see module doc)."""

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        username: str = "admin@example.com",
        password: str = "test-password",
        address: tuple[str, int] = ("127.0.0.1", 0),
    ):
        self.address = address  # where start() listens: loopback, a random port unless given
        self.api_key = api_key
        self.username = username
        self.password = password
        # knobs
        self.initializing_for = 0
        self.fail_card_ids: set[int] = set()
        self.card_error = 'ERROR: relation "marts.fct_forecast" does not exist\n  Position: 15'
        self.missing_card_ids: set[int] = set()
        self.missing_database_ids: set[int] = set()
        self.server_errors: dict[str, int] = {}
        self.forced: dict[str, tuple[int, Any]] = {}
        self.hang_paths: set[str] = set()
        self.hang_s = 2.0
        self.card_row_count = 3
        self.dashboards: dict[int, list[int]] = {}
        self.premium_cache = False
        self.sync_s = 0.3
        self.schema: dict[str, list[str]] = {}
        self.warehouse_url: str | None = None
        self.sync_schemas: tuple[str, ...] = ("forecast", "marts")
        self.reject_cards: dict[str, dict] = {}
        # state: what analysts and the platform created (ids assigned here)
        self.collections: dict[int, dict] = {}
        self.cards: dict[int, dict] = {}
        self.dashboards_store: dict[int, dict] = {}
        self.field_edits: dict[int, dict] = {}  # field id -> the fields a PUT set
        self.table_edits: dict[int, dict] = {}
        self._next_id = 1
        # state
        self.synced: dict[str, list[str]] = {}  # what Metabase knows: set when a sync finishes
        self.syncs_finished = 0
        self._syncs_running = 0
        self.requests: list[RecordedRequest] = []
        self.sessions: set[str] = set()
        self._lock = threading.Lock()
        self._health_calls = 0
        self._errors_served: dict[str, int] = {}
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> StandIn:
        if self._server is not None:
            return self
        self._stop.clear()
        server = _Server(self.address, _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="http-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()  # wake hanging handlers
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("StandIn is not running; call start()")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.port}"

    # ---------------------------------------------------------------- log helpers
    def calls(self) -> list[str]:
        """``"METHOD /path"`` for every recorded request, in arrival order."""
        with self._lock:
            return [f"{r.method} {r.path}" for r in self.requests]

    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def reset(self) -> None:
        """Forget the request log and counters (knobs are kept)."""
        with self._lock:
            self.requests.clear()
            self._health_calls = 0
            self._errors_served.clear()

    # ---------------------------------------------------------------- dispatch
    def _answer(self, req: RecordedRequest) -> _Answer:
        with self._lock:
            req.during_sync = self._syncs_running > 0
            self.requests.append(req)
        if req.path in self.hang_paths:
            self._stop.wait(min(max(self.hang_s, 0.0), _MAX_HANG_S))
        if req.path in self.forced:
            status, body = self.forced[req.path]
            if isinstance(body, (dict, list)):
                return _json_answer(status, body)
            return _text_answer(status, body if body is not None else b"")
        with self._lock:
            wanted = self.server_errors.get(req.path, 0)
            served = self._errors_served.get(req.path, 0)
            if served < wanted:
                self._errors_served[req.path] = served + 1
                inject = True
            else:
                inject = False
        if inject:
            if req.path.startswith("/api/"):
                return _json_answer(500, {"message": "stand-in injected server error", "type": "java.lang.Exception"})
            return _text_answer(500, "Internal Server Error")
        if req.path.startswith("/api/"):
            return self._metabase(req)
        if req.path.startswith("/slack/") and req.method == "POST":
            return self._slack(req)
        if req.path.startswith("/teams/") and req.method == "POST":
            return self._teams(req)
        if req.path.startswith("/n8n/") and req.method == "POST":
            return self._n8n(req)
        if req.path.startswith("/n8n/"):  # n8n answers a GET on a POST webhook with this 404
            return _json_answer(
                404,
                {
                    "code": 404,
                    "message": "This webhook is not registered for GET requests. Did you mean to make a POST request?",
                },
            )
        if req.path.startswith(("/slack/", "/teams/")):
            return _Answer(405, b"Method Not Allowed", "text/plain", {"Allow": "POST"})
        return _text_answer(404, "Not Found")

    # ---------------------------------------------------------------- Metabase
    def _authenticated(self, req: RecordedRequest) -> bool:
        key = req.headers.get("x-api-key")
        if key is not None and key == self.api_key:
            return True
        token = req.headers.get("x-metabase-session")
        with self._lock:
            return token is not None and token in self.sessions

    def _metabase(self, req: RecordedRequest) -> _Answer:
        m, p = req.method, req.path
        if m == "GET" and p == "/api/health":
            with self._lock:
                self._health_calls += 1
                starting = self._health_calls <= self.initializing_for
            if starting:
                return _json_answer(503, {"status": "initializing", "progress": 0.4})
            return _json_answer(200, {"status": "ok"})
        if m == "POST" and p == "/api/session":
            body = req.json if isinstance(req.json, dict) else {}
            if not body.get("username") or not body.get("password"):
                return _json_answer(400, {"errors": {"username": "value must be a non-blank string."}})
            if body.get("username") == self.username and body.get("password") == self.password:
                token = str(uuid.uuid4())
                with self._lock:
                    self.sessions.add(token)
                return _json_answer(200, {"id": token})
            return _json_answer(401, {"errors": {"password": "did not match stored password"}})
        if not self._authenticated(req):
            return _text_answer(401, "Unauthenticated")

        if m == "GET" and p == "/api/user/current":
            return _json_answer(200, {"id": 1, "email": self.username, "is_superuser": True})
        if m == "POST" and (hit := _SYNC_SCHEMA.match(p)):
            if int(hit.group(1)) in self.missing_database_ids:
                return _text_answer(404, "Not found.")
            self._start_sync()
            return _json_answer(200, {"status": "ok"})
        if m == "GET" and (hit := _METADATA.match(p)):
            if int(hit.group(1)) in self.missing_database_ids:
                return _text_answer(404, "Not found.")
            tables = [self._table_metadata(tid, *table) for tid, table in self._tables().items()]
            return _json_answer(200, {"id": int(hit.group(1)), "tables": tables})
        if m == "POST" and (hit := _CARD_QUERY.match(p)):
            return self._card_query(int(hit.group(1)), req)
        if m == "POST" and (hit := _PERSIST_REFRESH.match(p)):
            if int(hit.group(1)) in self.missing_card_ids:
                return _text_answer(404, "Not found.")
            return _Answer(204)
        if (answer := self._objects(req)) is not None:
            return answer
        if m == "GET" and (hit := _DASHBOARD.match(p)):
            dash_id = int(hit.group(1))
            if dash_id not in self.dashboards:
                return _text_answer(404, "Not found.")
            dashcards = [
                {"id": 100 + i, "card_id": cid, "card": {"id": cid, "name": f"Card {cid}"}}
                for i, cid in enumerate(self.dashboards[dash_id])
            ]
            dashcards.append(
                {
                    "id": 999,
                    "card_id": None,
                    "card": {"id": None, "name": None},
                    "visualization_settings": {"text": "## Forecasts"},
                }
            )
            return _json_answer(200, {"id": dash_id, "name": f"Dashboard {dash_id}", "dashcards": dashcards})
        if m == "POST" and p == "/api/cache/invalidate":
            if self.premium_cache:
                return _json_answer(200, {"count": 1})
            return _json_answer(402, {"message": _PREMIUM_MESSAGE, "status": "error-premium-feature-not-available"})
        return _text_answer(404, "API endpoint does not exist.")

    # ---------------------------------------------------------------- Metabase objects
    def new_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id - 1

    def add_card(self, **fields: Any) -> dict:
        """A card as an analyst would save it (no POST recorded); returns it."""
        card = self._card_defaults(fields)
        self.cards[card["id"]] = card
        return card

    def _card_defaults(self, body: dict, card_id: int | None = None) -> dict:
        cid = card_id if card_id is not None else self.new_id()
        card = {
            "id": cid,
            "entity_id": uuid.uuid4().hex[:21],
            "type": "question",
            "description": None,
            "collection_id": None,
            "collection_position": None,
            "archived": False,
            "parameters": [],
            "parameter_mappings": [],
            "cache_ttl": None,
            "enable_embedding": False,
        }
        card.update({k: v for k, v in body.items() if k != "id"})
        query = card.get("dataset_query") if isinstance(card.get("dataset_query"), dict) else {}
        card["database_id"] = query.get("database")
        card["query_type"] = query.get("type")
        return card

    @staticmethod
    def _invalid(errors: dict[str, str]) -> _Answer:
        """Metabase's 400 for a request that fails its schema (malli, 0.47+)."""
        return _json_answer(400, {"errors": errors, "specific-errors": {k: [v] for k, v in errors.items()}})

    @staticmethod
    def _blank(value: Any) -> bool:
        return not isinstance(value, str) or not value.strip()

    def _card_errors(self, body: dict, partial: bool) -> dict[str, str]:
        errors: dict[str, str] = {}
        for name in ("name", "display"):
            if (not partial or name in body) and self._blank(body.get(name)):
                errors[name] = NON_BLANK
        for name in ("dataset_query", "visualization_settings"):
            if (not partial or name in body) and not isinstance(body.get(name), dict):
                errors[name] = A_MAP
        if "collection_id" in body and body["collection_id"] is not None:
            if body["collection_id"] not in self.collections:
                errors["collection_id"] = "collection does not exist"
        return errors

    @staticmethod
    def _wanted(query: str) -> dict[str, list[str]]:
        return parse_qs(query)

    def _items(self, coll_id: int, query: dict[str, list[str]]) -> _Answer:
        archived = (query.get("archived") or ["false"])[0] == "true"
        models = set(query.get("models") or ["card", "dashboard", "collection"])
        data = []
        stores = (("card", self.cards), ("dashboard", self.dashboards_store), ("collection", self.collections))
        for model, store in stores:
            if model not in models:
                continue
            for obj in store.values():
                parent = obj.get("parent_id") if model == "collection" else obj.get("collection_id")
                if parent == coll_id and bool(obj.get("archived")) == archived:
                    data.append(
                        {
                            "id": obj["id"],
                            "model": model,
                            "name": obj.get("name"),
                            "description": obj.get("description"),
                            "collection_position": obj.get("collection_position"),
                            "entity_id": obj.get("entity_id"),
                            "archived": bool(obj.get("archived")),
                            **({"display": obj.get("display")} if model == "card" else {}),
                        }
                    )
        return _json_answer(
            200, {"total": len(data), "data": data, "models": sorted(models), "limit": None, "offset": None}
        )

    def _dashboard_view(self, dash: dict) -> dict:
        dashcards = []
        for dc in dash.get("dashcards", []):
            card = self.cards.get(dc.get("card_id")) if dc.get("card_id") is not None else None
            dashcards.append({**dc, "dashboard_id": dash["id"], "card": card or {"id": None, "name": None}})
        return {**dash, "dashcards": dashcards, "tabs": []}

    def _put_dashcards(self, dash: dict, dashcards: Any) -> dict[str, str] | None:
        if not isinstance(dashcards, list):
            return {"dashcards": "nullable sequence of map"}
        new = []
        known = {dc["id"] for dc in dash.get("dashcards", [])}
        for dc in dashcards:
            if not isinstance(dc, dict):
                return {"dashcards": "nullable sequence of map"}
            missing = [k for k in ("id", "size_x", "size_y", "row", "col") if not isinstance(dc.get(k), int)]
            if missing:
                return {"dashcards": f"each dashcard needs an integer {', '.join(missing)}"}
            if dc.get("card_id") is not None and dc["card_id"] not in self.cards:
                return {"dashcards": f"card {dc['card_id']} does not exist"}
            kept = dict(dc)
            kept["id"] = dc["id"] if dc["id"] in known else self.new_id()
            kept.setdefault("parameter_mappings", [])
            kept.setdefault("visualization_settings", {})
            kept.setdefault("card_id", None)
            new.append(kept)
        dash["dashcards"] = new
        return None

    def _tables(self) -> dict[int, tuple[str, list[str]]]:
        """Table id -> ("schema.table", columns) of the last finished sync; ids 100, 101, ... in name order."""
        with self._lock:
            synced = dict(self.synced)
        return {100 + i: (name, columns) for i, (name, columns) in enumerate(sorted(synced.items()))}

    def table_id(self, name: str) -> int | None:
        return next((tid for tid, (n, _) in self._tables().items() if n == name), None)

    def _table_metadata(self, tid: int, name: str, columns: list[str]) -> dict:
        schema, table = name.split(".", 1)
        fields = []
        for i, column in enumerate(columns):
            fid = tid * 1000 + i
            fields.append(
                {
                    "id": fid,
                    "table_id": tid,
                    "name": column,
                    "display_name": column.replace("_", " ").title(),
                    "description": None,
                    **self.field_edits.get(fid, {}),
                }
            )
        return {
            "id": tid,
            "db_id": 1,
            "schema": schema,
            "name": table,
            "display_name": table.replace("_", " ").title(),
            "description": None,
            **self.table_edits.get(tid, {}),
            "fields": fields,
        }

    def _objects(self, req: RecordedRequest) -> _Answer | None:
        """Collections, cards, dashboards, tables and fields; None when the path is none of them."""
        m = req.method
        p = req.path.rstrip("/") or "/"
        q = self._wanted(req.query)
        body = req.json if isinstance(req.json, dict) else {}
        if p == "/api/collection":
            if m == "GET":
                archived = (q.get("archived") or ["false"])[0] == "true"
                found = [c for c in self.collections.values() if bool(c["archived"]) == archived]
                return _json_answer(200, [{"id": "root", "name": "Our analytics", "archived": False}] + found)
            if m == "POST":
                if self._blank(body.get("name")):
                    return self._invalid({"name": NON_BLANK})
                cid = self.new_id()
                coll = {
                    "id": cid,
                    "name": body["name"],
                    "description": body.get("description"),
                    "color": body.get("color"),
                    "parent_id": body.get("parent_id"),
                    "archived": False,
                    "entity_id": uuid.uuid4().hex[:21],
                    "location": "/",
                    "namespace": None,
                }
                self.collections[cid] = coll
                return _json_answer(200, coll)
        if hit := _COLLECTION_ITEMS.match(p):
            if int(hit.group(1)) not in self.collections:
                return _text_answer(404, "Not found.")
            return self._items(int(hit.group(1)), q) if m == "GET" else None
        if hit := _COLLECTION.match(p):
            coll = self.collections.get(int(hit.group(1)))
            if coll is None:
                return _text_answer(404, "Not found.")
            if m == "GET":
                return _json_answer(200, coll)
            if m == "PUT":
                if "name" in body and self._blank(body["name"]):
                    return self._invalid({"name": NON_BLANK})
                coll.update({k: v for k, v in body.items() if k != "id"})
                return _json_answer(200, coll)
        if p == "/api/card":
            if m == "GET":
                f = (q.get("f") or ["all"])[0]
                return _json_answer(200, [c for c in self.cards.values() if bool(c["archived"]) == (f == "archived")])
            if m == "POST":
                errors = self._card_errors(body, partial=False) or self.reject_cards.get(body.get("name"))
                if errors:
                    return self._invalid(errors)
                card = self._card_defaults(body)
                self.cards[card["id"]] = card
                return _json_answer(200, card)
        if hit := _CARD.match(p):
            card = self.cards.get(int(hit.group(1)))
            if card is None:
                return _text_answer(404, "Not found.")
            if m == "GET":
                return _json_answer(200, card)
            if m == "PUT":
                errors = self._card_errors(body, partial=True) or self.reject_cards.get(body.get("name", card["name"]))
                if errors:
                    return self._invalid(errors)
                card.update({k: v for k, v in body.items() if k != "id"})
                card.update(self._card_defaults(card, card["id"]) | {"entity_id": card["entity_id"]})
                return _json_answer(200, card)
            if m == "DELETE":
                del self.cards[card["id"]]
                return _Answer(204)
        if p == "/api/dashboard":
            if m == "GET":
                f = (q.get("f") or ["all"])[0]
                dashes = [d for d in self.dashboards_store.values() if bool(d["archived"]) == (f == "archived")]
                return _json_answer(200, dashes)
            if m == "POST":
                if self._blank(body.get("name")):
                    return self._invalid({"name": NON_BLANK})
                if body.get("collection_id") is not None and body["collection_id"] not in self.collections:
                    return self._invalid({"collection_id": "collection does not exist"})
                did = self.new_id()
                dash = {
                    "id": did,
                    "name": body["name"],
                    "description": body.get("description"),
                    "collection_id": body.get("collection_id"),
                    "collection_position": body.get("collection_position"),
                    "parameters": body.get("parameters") or [],
                    "archived": False,
                    "entity_id": uuid.uuid4().hex[:21],
                    "dashcards": [],
                }
                self.dashboards_store[did] = dash
                return _json_answer(200, self._dashboard_view(dash))
        if (hit := _DASHBOARD.match(p)) and int(hit.group(1)) not in self.dashboards:
            dash = self.dashboards_store.get(int(hit.group(1)))
            if dash is None:
                return None if m == "GET" else _text_answer(404, "Not found.")
            if m == "GET":
                return _json_answer(200, self._dashboard_view(dash))
            if m == "PUT":
                if "name" in body and self._blank(body["name"]):
                    return self._invalid({"name": NON_BLANK})
                if "dashcards" in body and (errors := self._put_dashcards(dash, body["dashcards"])):
                    return self._invalid(errors)
                dash.update({k: v for k, v in body.items() if k not in ("id", "dashcards", "tabs")})
                return _json_answer(200, self._dashboard_view(dash))
            if m == "DELETE":
                del self.dashboards_store[dash["id"]]
                return _Answer(204)
        if (hit := _TABLE_METADATA.match(p)) and m == "GET":
            tid = int(hit.group(1))
            table = self._tables().get(tid)
            if table is None:
                return _text_answer(404, "Not found.")
            return _json_answer(200, self._table_metadata(tid, *table))
        if (hit := _TABLE.match(p)) and m == "PUT":
            tid = int(hit.group(1))
            table = self._tables().get(tid)
            if table is None:
                return _text_answer(404, "Not found.")
            self.table_edits.setdefault(tid, {}).update({k: v for k, v in body.items() if k != "id"})
            return _json_answer(200, {k: v for k, v in self._table_metadata(tid, *table).items() if k != "fields"})
        if (hit := _FIELD.match(p)) and m == "PUT":
            fid = int(hit.group(1))
            table = self._tables().get(fid // 1000)
            if table is None or fid % 1000 >= len(table[1]):
                return _text_answer(404, "Not found.")
            self.field_edits.setdefault(fid, {}).update({k: v for k, v in body.items() if k != "id"})
            fields = self._table_metadata(fid // 1000, *table)["fields"]
            return _json_answer(200, fields[fid % 1000])
        return None

    def _start_sync(self) -> None:
        """Like Metabase: the sync runs in the background and its result shows up later."""
        with self._lock:
            self._syncs_running += 1

        def finish() -> None:
            found = self._read_warehouse() if self.warehouse_url else dict(self.schema)
            with self._lock:
                self.synced = found
                self.syncs_finished += 1
                self._syncs_running -= 1

        timer = threading.Timer(max(self.sync_s, 0.0), finish)
        timer.daemon = True
        timer.start()

    def _read_warehouse(self) -> dict[str, list[str]]:
        import psycopg

        with psycopg.connect(self.warehouse_url) as conn:
            rows = conn.execute(
                "select table_schema, table_name, column_name from information_schema.columns "
                "where table_schema = any(%s) order by 1, 2, ordinal_position",
                (list(self.sync_schemas),),
            ).fetchall()
        found: dict[str, list[str]] = {}
        for schema, table, column in rows:
            found.setdefault(f"{schema}.{table}", []).append(column)
        return found

    def _card_query(self, card_id: int, req: RecordedRequest) -> _Answer:
        if card_id in self.missing_card_ids:
            return _text_answer(404, "Not found.")
        json_query = {"database": 1, "type": "query", "query": {"source-table": 10}}
        if card_id in self.fail_card_ids:
            return _json_answer(
                202,
                {
                    "status": "failed",
                    "class": "class org.postgresql.util.PSQLException",
                    "error": self.card_error,
                    "error_type": "invalid-query",
                    "row_count": 0,
                    "running_time": 0,
                    "json_query": json_query,
                    "data": {"rows": [], "cols": []},
                },
            )
        n = max(0, self.card_row_count)
        cached = not (isinstance(req.json, dict) and req.json.get("ignore_cache") is True)
        return _json_answer(
            202,
            {
                "status": "completed",
                "context": "question",
                "database_id": 1,
                "row_count": n,
                "running_time": 7,
                "cached": None if not cached else "2026-01-01T00:00:00Z",
                "json_query": json_query,
                "data": {
                    "rows": [[i + 1, float(i) * 1.5] for i in range(n)],
                    "cols": [
                        {"name": "id", "display_name": "ID", "base_type": "type/Integer"},
                        {"name": "yhat", "display_name": "Yhat", "base_type": "type/Float"},
                    ],
                    "native_form": {"query": "SELECT id, yhat FROM marts.fct_forecast", "params": None},
                },
            },
        )

    # ---------------------------------------------------------------- webhooks
    @staticmethod
    def _slack(req: RecordedRequest) -> _Answer:
        body = req.json
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return _text_answer(400, "invalid_payload")
        return _Answer(200, b"ok", "text/html")

    @staticmethod
    def _teams(req: RecordedRequest) -> _Answer:
        if not isinstance(req.json, dict):
            return _json_answer(
                400,
                {
                    "error": {
                        "code": "InvalidRequestContent",
                        "message": "The input body for trigger 'manual' of type 'Request' "
                        "must be of type JSON, but was of type 'application/octet-stream'.",
                    }
                },
            )
        return _Answer(202)

    @staticmethod
    def _n8n(req: RecordedRequest) -> _Answer:
        if req.body and req.json is None:
            return _json_answer(400, {"code": 400, "message": "Failed to parse request body"})
        return _json_answer(200, {"message": "Workflow was started"})


def fresh_standin(api_key: str | None = None):
    """A pytest fixture `standin`: a new stand-in for each test (its recorded calls are that
    test's alone), answering `api_key` (default: the stand-in's own). Use as
    ``standin = fresh_standin(KEY)`` at module level."""
    import pytest

    @pytest.fixture
    def standin():
        with StandIn(**({"api_key": api_key} if api_key else {})) as server:
            yield server

    return standin


def metabase_config(server: StandIn, key: str, **overrides):
    """A MetabaseConfig for `server` whose waits and retries take milliseconds (the stand-in
    answers at once; a test that needs Metabase's pace sets it in `overrides`)."""
    from synoforecast.lib.activation.metabase import MetabaseConfig

    base = dict(
        url=server.url,
        api_key=key,
        database_id=2,
        timeout_s=2.0,
        health_attempts=3,
        health_wait_s=0.01,
        retries=1,
        backoff_s=0.01,
        cache_invalidate=False,  # the cache step has its own tests
        sync_poll_s=0.02,
        sync_timeout_s=5.0,
    )
    return MetabaseConfig(**(base | overrides))
