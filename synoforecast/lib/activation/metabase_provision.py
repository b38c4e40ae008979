"""Metabase provisioned as code: the ``synoforecast`` collection, its questions over the
``published`` views and one dashboard laying them out, created or updated idempotently.

Pure library (httpx through metabase._Session: the same health wait, authentication, retry
rule and secret scrubbing as the refresh; no Dagster).

**Found again by a stable key, never by id.** Every provisioned object carries the marker
``[synoforecast:<key>]`` at the end of its ``description``. Why the description: it is the
one free-text field Metabase stores as given and returns on every read, including the
collection items listing, for collections, cards and dashboards alike, and an analyst sees
it (it says "managed in code"). ``entity_id`` is assigned by the server (a restored backup or
an instance rebuilt from scratch gets new ones), and ``collection_position`` is a pin slot
analysts change by dragging. A card whose marker an analyst removed is no longer ours: it is
left alone and a new one is created.

**Idempotent.** Each object's definition (the fields this module sets) is compared with what
Metabase answers; nothing is written when they agree (fields Metabase adds are ignored), a
PUT updates the object in place when they differ, and an archived object (Metabase 0.50's
"move to trash") is brought back. Objects without a marker in the collection (an analyst's
question) are never read in detail, let alone written.

API calls, checked against (the Compose stack pins ``metabase/metabase:v0.50.36``; the
pages below are the API reference of the 0.50 line, and where the reference is silent the
behaviour was taken from the issue threads named):

* ``GET /api/collection/`` (non-archived; ``?archived=true`` the archived ones),
  ``POST /api/collection/``, ``PUT /api/collection/:id``, ``GET /api/collection/:id/items``
  (``models``; archived objects left out by default):
  https://www.metabase.com/docs/master/api/collection (and
  https://metabase.com/docs/latest/api/collection).
* ``GET /api/card/:id``, ``POST /api/card/`` (``name``, ``dataset_query``, ``display``,
  ``visualization_settings`` required), ``PUT /api/card/:id`` (soft delete = ``archived``),
  ``GET /api/card/?f=archived``: https://metabase.com/docs/latest/api/card.
* ``POST /api/dashboard/``, ``GET /api/dashboard/:id``, ``PUT /api/dashboard/:id`` with
  ``dashcards`` (the whole layout; negative ids = new dashcards, each with ``size_x``,
  ``size_y``, ``row``, ``col``, ``parameter_mappings``), ``GET /api/dashboard/?f=archived``
  ("Return Dashboards that have been archived"):
  https://www.metabase.com/docs/master/api/dashboard (published while v0.50 was the latest
  release).
* Error bodies: a 400 carries ``{"errors": {"<field>": "value must be a non-blank
  string."}}`` (github.com/metabase/metabase/issues/5769, /issues/4738; 0.47+ adds
  ``specific-errors``); 401 ``Unauthenticated`` as for the refresh (lib/activation/metabase.py).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from synoforecast.lib.activation.metabase import MetabaseConfig, MetabaseError, _Session
from synoforecast.lib.activation.metabase_catalog import CatalogReport, ModelDoc, describe

__all__ = [
    "COLLECTION",
    "DASHBOARD",
    "QUESTIONS",
    "Dashboard",
    "Placement",
    "ProvisionReport",
    "Question",
    "marker",
    "provision_metabase",
    "provisioned_card_ids",
]

MARKER = re.compile(r"\[synoforecast:([a-z0-9_.-]+)\]\s*$")


def marker(key: str) -> str:
    return f"[synoforecast:{key}]"


def key_of(description: Any) -> str | None:
    """The stable key in a description's marker, or None (not a provisioned object)."""
    hit = MARKER.search(description) if isinstance(description, str) else None
    return hit.group(1) if hit else None


def described(text: str, key: str) -> str:
    return f"{text.strip()}\n\n{marker(key)}"


@dataclass(frozen=True)
class Filter:
    """A dashboard filter wired to each question's template tag of the same name."""

    slug: str
    name: str

    def tag_id(self, question: str) -> str:  # stable: Metabase keeps the id it was given
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"synoforecast:{question}:{self.slug}"))


COHORT = Filter("cohort", "Cohort")
METRIC = Filter("metric", "Metric")


@dataclass(frozen=True)
class Question:
    """A native-SQL question. ``filters`` name template tags used in ``sql`` as optional
    clauses (``[[and cohort = {{cohort}}]]``), which the dashboard's filters fill."""

    key: str
    name: str
    description: str
    sql: str
    display: str = "table"
    filters: tuple[Filter, ...] = (COHORT, METRIC)
    visualization_settings: Mapping[str, Any] = field(default_factory=dict)

    def payload(self, database_id: int, collection_id: int) -> dict[str, Any]:
        """The card's definition as POST/PUT /api/card takes it (and GET answers it)."""
        tags = {
            f.slug: {"id": f.tag_id(self.key), "name": f.slug, "display-name": f.name, "type": "text"}
            for f in self.filters
        }
        return {
            "name": self.name,
            "description": described(self.description, self.key),
            "display": self.display,
            "collection_id": collection_id,
            "dataset_query": {
                "type": "native",
                "database": database_id,
                "native": {"query": self.sql.strip(), "template-tags": tags},
            },
            "parameters": [
                {
                    "id": f.tag_id(self.key),
                    "type": "category",
                    "name": f.name,
                    "slug": f.slug,
                    "target": ["variable", ["template-tag", f.slug]],
                }
                for f in self.filters
            ],
            "visualization_settings": dict(self.visualization_settings),
        }


@dataclass(frozen=True)
class Placement:
    question: str  # a Question key
    row: int
    col: int
    size_x: int
    size_y: int


@dataclass(frozen=True)
class Dashboard:
    key: str
    name: str
    description: str
    cards: tuple[Placement, ...]
    filters: tuple[Filter, ...] = (COHORT, METRIC)

    def parameters(self) -> list[dict[str, Any]]:
        return [
            {"id": f.slug, "name": f.name, "slug": f.slug, "type": "string/=", "sectionId": "string"}
            for f in self.filters
        ]

    def dashcards(self, card_ids: Mapping[str, int], questions: Mapping[str, Question]) -> list[dict[str, Any]]:
        """The layout as PUT /api/dashboard/:id takes it (ids left to the caller)."""
        out = []
        for place in self.cards:
            cid = card_ids[place.question]
            wired = [f for f in self.filters if f in questions[place.question].filters]
            out.append(
                {
                    "card_id": cid,
                    "row": place.row,
                    "col": place.col,
                    "size_x": place.size_x,
                    "size_y": place.size_y,
                    "parameter_mappings": [
                        {"parameter_id": f.slug, "card_id": cid, "target": ["variable", ["template-tag", f.slug]]}
                        for f in wired
                    ],
                }
            )
        return out


@dataclass(frozen=True)
class Collection:
    key: str
    name: str
    description: str


# ------------------------------------------------------------------ what is provisioned

COLLECTION = Collection(
    "collection",
    "synoforecast",
    "Forecasts, landings, accuracy and narratives of the synoforecast platform. The questions and the "
    "dashboard marked [synoforecast:...] are managed in code (synoforecast/lib/activation/"
    "metabase_provision.py) and overwritten by `synoforecast metabase provision`; save your own copies "
    "or questions beside them, they are never touched.",
)

QUESTIONS: tuple[Question, ...] = (
    Question(
        key="forecast_vs_actual",
        name="Forecast against actual (80/95% bands)",
        description="Each cohort's total per quarter: the actual, the forecast made the quarter before with "
        "its 80% and 95% bands, and the landing of the quarter in progress (published.chart_series).",
        sql="""
select quarter_start, quarter_label, cohort, series_name, metric, actual, forecast,
       forecast_lo_80, forecast_hi_80, forecast_lo_95, forecast_hi_95, landing
  from published.chart_series
 where series_id in ('total', 'All C2')
   [[and cohort = {{cohort}}]]
   [[and metric = {{metric}}]]
 order by cohort, metric, quarter_start
""",
        display="line",
        visualization_settings={
            "graph.dimensions": ["quarter_start"],
            "graph.metrics": [
                "actual",
                "forecast",
                "forecast_lo_80",
                "forecast_hi_80",
                "forecast_lo_95",
                "forecast_hi_95",
            ],
        },
    ),
    Question(
        key="landing_in_progress",
        name="Landing of the quarter in progress",
        description="Where the quarter in progress will land given the sales so far, against the quarter-start "
        "forecast, with its 80% range (published.latest_landing).",
        sql="""
select cohort, series_name, metric, quarter_label, cutoff_date, week_of_quarter, qtd_actual, forecast_start,
       yhat as landing, round((100 * (yhat / nullif(forecast_start, 0) - 1))::numeric, 1) as vs_forecast_pct,
       yhat_lo_80, yhat_hi_80
  from published.latest_landing
 where (series_id in ('total', 'All C2') or cohort = 'regional')
   [[and cohort = {{cohort}}]]
   [[and metric = {{metric}}]]
 order by cohort, series_name, metric
""",
    ),
    Question(
        key="accuracy_vs_seasonal_naive",
        name="Accuracy by cohort against seasonal naive",
        description="sMAPE of the published forecasts per cohort and quarter next to the seasonal naive "
        "benchmark's on the same series, with MASE and 80% coverage (published.evaluation, totals).",
        sql="""
select cohort, quarter_label, metric, series_scored,
       round(smape_matched::numeric, 1) as smape, round(smape_snaive::numeric, 1) as smape_seasonal_naive,
       round(mase::numeric, 2) as mase, coverage_80
  from published.evaluation
 where level = 'total'
   [[and cohort = {{cohort}}]]
   [[and metric = {{metric}}]]
 order by quarter desc, cohort, metric
""",
    ),
    Question(
        key="narratives",
        name="Narratives",
        description="One text per cohort and metric for the quarter the latest forecasts target "
        "(published.narratives).",
        sql="""
select cohort, metric, target_label, landing_cutoff, narrative
  from published.narratives
 where true
   [[and cohort = {{cohort}}]]
   [[and metric = {{metric}}]]
 order by cohort, metric
""",
    ),
)

DASHBOARD = Dashboard(
    key="dashboard",
    name="synoforecast: forecasts",
    description="Forecast against actual, the landing of the quarter in progress, accuracy against seasonal "
    "naive and the narratives; filter by cohort and metric.",
    cards=(
        Placement("forecast_vs_actual", row=0, col=0, size_x=16, size_y=8),
        Placement("accuracy_vs_seasonal_naive", row=0, col=16, size_x=8, size_y=8),
        Placement("landing_in_progress", row=8, col=0, size_x=24, size_y=6),
        Placement("narratives", row=14, col=0, size_x=24, size_y=6),
    ),
)


# ------------------------------------------------------------------ comparison


def differs(wanted: Any, found: Any) -> bool:
    """Whether ``found`` (what Metabase answers) disagrees with ``wanted`` (what we send):
    every key we set must hold the same value; keys Metabase adds are ignored."""
    if isinstance(wanted, Mapping):
        return not isinstance(found, Mapping) or any(differs(v, found.get(k)) for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            not isinstance(found, (list, tuple))
            or len(wanted) != len(found)
            or any(differs(w, f) for w, f in zip(wanted, found, strict=True))
        )
    return wanted != found


def _layout(dashcards: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A layout normalised for comparison: position, size, card and filter wiring, sorted."""
    keep = ("card_id", "row", "col", "size_x", "size_y")
    out = []
    for dc in dashcards:
        mappings = sorted(
            (str(m.get("parameter_id")), repr(m.get("target"))) for m in dc.get("parameter_mappings") or []
        )
        out.append({**{k: dc.get(k) for k in keep}, "parameter_mappings": mappings})
    return sorted(out, key=lambda d: (d["row"] or 0, d["col"] or 0, d["card_id"] or 0))


# ------------------------------------------------------------------ report


@dataclass
class ProvisionReport:
    collection_id: int | None = None
    dashboard_id: int | None = None
    objects: dict[str, str] = field(default_factory=dict)  # key -> created | updated | restored | unchanged
    card_ids: dict[str, int] = field(default_factory=dict)  # question key -> card id
    requests: int = 0
    catalog: CatalogReport | None = None  # the dbt descriptions written into the data model

    @property
    def writes(self) -> int:
        return sum(1 for v in self.objects.values() if v != "unchanged")

    @property
    def catalog_writes(self) -> int:
        if self.catalog is None:
            return 0
        return self.catalog.fields_updated + sum(1 for v in self.catalog.tables.values() if v == "updated")

    def to_metadata(self) -> dict[str, Any]:
        return {
            "collection_id": self.collection_id,
            "dashboard_id": self.dashboard_id,
            "objects": dict(self.objects),
            "card_ids": dict(self.card_ids),
            "changed": self.writes,
            "requests": self.requests,
            **({"catalog": self.catalog.to_metadata()} if self.catalog is not None else {}),
        }


# ------------------------------------------------------------------ the run


class _Provisioner:
    def __init__(self, session: _Session, report: ProvisionReport):
        self.s = session
        self.report = report

    def read(self, path: str, what: str, params: Any = None) -> Any:
        resp = self.s.authorised("GET", path, params=params)
        body = self.s.body_json(resp)
        if resp.status_code != 200 or body is None:
            raise MetabaseError(
                f"Metabase could not read {what} ({path}): HTTP {resp.status_code} {self.s.snippet(resp)}".rstrip()
            )
        return body

    def write(self, method: str, path: str, payload: dict, what: str) -> dict:
        resp = self.s.authorised(method, path, json=payload)
        body = self.s.body_json(resp)
        if not 200 <= resp.status_code < 300 or not isinstance(body, dict):
            verb = "created" if method == "POST" else "updated"
            errors = body.get("errors") if isinstance(body, dict) else None
            reason = (
                "; ".join(f"{k}: {v}" for k, v in errors.items()) if isinstance(errors, dict) else self.s.snippet(resp)
            )
            raise MetabaseError(
                f"Metabase refused {what}: it could not be {verb} (HTTP {resp.status_code} {reason}). "
                "Nothing else was changed by this object; published data is untouched."
            )
        return body

    # -- collection ---------------------------------------------------------------
    def collection(self, spec: Collection) -> int:
        what = f"collection '{spec.name}' [{spec.key}]"
        wanted = {"name": spec.name, "description": described(spec.description, spec.key), "archived": False}
        for archived in ("false", "true"):
            found = self.read("/api/collection/", "the collections", params={"archived": archived})
            mine = [c for c in found if isinstance(c, dict) and key_of(c.get("description")) == spec.key]
            if mine:
                coll = min(mine, key=lambda c: c["id"])
                if differs(wanted, coll):
                    self.write("PUT", f"/api/collection/{coll['id']}", wanted, what)
                    self.report.objects[spec.key] = "restored" if archived == "true" else "updated"
                else:
                    self.report.objects[spec.key] = "unchanged"
                return int(coll["id"])
        coll = self.write("POST", "/api/collection/", {**wanted, "color": "#509EE3"}, what)
        self.report.objects[spec.key] = "created"
        return int(coll["id"])

    def marked(self, collection_id: int, model: str, keys: Iterable[str]) -> dict[str, int]:
        """key -> id of the marked objects of ``model`` in the collection: the live ones
        (``GET /api/collection/:id/items``, which leaves archived ones out), then, only when
        some of ``keys`` are missing, the archived ones (``GET /api/<model>/?f=archived``) to
        bring back. Unmarked items (an analyst's) are skipped."""
        found: dict[str, int] = {}
        body = self.read(
            f"/api/collection/{collection_id}/items",
            f"the {model}s of collection {collection_id}",
            params={"models": model},
        )
        items = body.get("data", []) if isinstance(body, dict) else body
        for item in sorted(items or [], key=lambda i: i.get("id") or 0):
            key = key_of(item.get("description")) if item.get("model", model) == model else None
            if key and key not in found:
                found[key] = int(item["id"])
        if set(keys) - set(found):
            archived = self.read(f"/api/{model}/", f"the archived {model}s", params={"f": "archived"})
            for item in sorted(archived or [], key=lambda i: i.get("id") or 0):
                key = key_of(item.get("description")) if item.get("collection_id") == collection_id else None
                if key and key not in found:
                    found[key] = int(item["id"])
        return found

    # -- cards --------------------------------------------------------------------
    def card(self, question: Question, existing: int | None, database_id: int, collection_id: int) -> int:
        what = f"question '{question.name}' [{question.key}]"
        wanted = {**question.payload(database_id, collection_id), "archived": False}
        if existing is not None:
            card = self.read(f"/api/card/{existing}", what)
            if not differs(wanted, card):
                self.report.objects[question.key] = "unchanged"
                return existing
            self.write("PUT", f"/api/card/{existing}", wanted, f"{what} (card {existing})")
            self.report.objects[question.key] = "restored" if card.get("archived") else "updated"
            return existing
        card = self.write("POST", "/api/card/", wanted, what)
        self.report.objects[question.key] = "created"
        return int(card["id"])

    # -- dashboard ----------------------------------------------------------------
    def dashboard(
        self,
        spec: Dashboard,
        existing: int | None,
        collection_id: int,
        card_ids: Mapping[str, int],
        questions: Mapping[str, Question],
    ) -> int:
        what = f"dashboard '{spec.name}' [{spec.key}]"
        fields = {
            "name": spec.name,
            "description": described(spec.description, spec.key),
            "collection_id": collection_id,
            "parameters": spec.parameters(),
            "archived": False,
        }
        layout = spec.dashcards(card_ids, questions)
        state = "unchanged"
        if existing is None:
            created = self.write("POST", "/api/dashboard/", {k: v for k, v in fields.items() if k != "archived"}, what)
            existing, state, dash = int(created["id"]), "created", created
        else:
            dash = self.read(f"/api/dashboard/{existing}", what)
        current = dash.get("dashcards")
        if current is None:
            current = dash.get("ordered_cards") or []
        if state == "created" or differs(fields, dash) or _layout(current) != _layout(layout):
            by_card = {dc.get("card_id"): dc.get("id") for dc in current if dc.get("card_id") is not None}
            dashcards = [{"id": by_card.get(dc["card_id"], -(i + 1)), **dc} for i, dc in enumerate(layout)]
            self.write(
                "PUT",
                f"/api/dashboard/{existing}",
                {**fields, "dashcards": dashcards},
                f"{what} (dashboard {existing})",
            )
            if state != "created":
                state = "restored" if dash.get("archived") else "updated"
        self.report.objects[spec.key] = state
        return existing


def _session(cfg: MetabaseConfig, http: httpx.Client) -> _Session:
    session = _Session(cfg, http)
    session.wait_healthy()
    if cfg.auth_method == "session":
        session.login()
    return session


def provision_metabase(
    cfg: MetabaseConfig,
    *,
    questions: Iterable[Question] = QUESTIONS,
    dashboard: Dashboard = DASHBOARD,
    collection: Collection = COLLECTION,
    client: httpx.Client | None = None,
    docs: Mapping[str, ModelDoc] | None = None,
    doc_schemas: Iterable[str] = ("published", "marts"),
) -> ProvisionReport:
    """Create or update the collection, the questions and the dashboard, found by their keys;
    with ``docs`` (lib/activation/metabase_catalog.dbt_descriptions), then write the dbt
    descriptions into the data model of the tables of ``doc_schemas`` Metabase knows.
    Raises MetabaseError naming the object that failed (earlier objects stay as written: a
    second run picks up where this one stopped)."""
    if not cfg.configured:
        raise MetabaseError(
            "Metabase is not configured: set METABASE_URL and METABASE_API_KEY (or METABASE_USER and METABASE_PASSWORD)"
        )
    if cfg.database_id is None:
        raise MetabaseError(
            "provisioning needs METABASE_DATABASE_ID: the Metabase database (the warehouse) the questions query"
        )
    questions = tuple(questions)
    by_key = {q.key: q for q in questions}
    missing = [p.question for p in dashboard.cards if p.question not in by_key]
    if missing or len(by_key) != len(questions):
        raise MetabaseError(f"provisioning definition is inconsistent: unknown or repeated questions {missing}")
    own_client = client is None
    http = client if client is not None else httpx.Client(timeout=cfg.timeout_s)
    report = ProvisionReport()
    try:
        session = _session(cfg, http)
        run = _Provisioner(session, report)
        try:
            report.collection_id = run.collection(collection)
            cards = run.marked(report.collection_id, "card", by_key)
            for question in questions:
                report.card_ids[question.key] = run.card(
                    question, cards.get(question.key), cfg.database_id, report.collection_id
                )
            dashboards = run.marked(report.collection_id, "dashboard", [dashboard.key])
            report.dashboard_id = run.dashboard(
                dashboard, dashboards.get(dashboard.key), report.collection_id, report.card_ids, by_key
            )
            if docs is not None:
                report.catalog = describe(session, cfg.database_id, docs, doc_schemas)
        finally:
            report.requests = session.requests
        return report
    finally:
        if own_client:
            http.close()


def provisioned_card_ids(
    cfg: MetabaseConfig, *, collection: Collection = COLLECTION, client: httpx.Client | None = None
) -> dict[str, int]:
    """Read only: key -> id of the provisioned questions (live, marked cards of the marked
    collection); {} when nothing was provisioned yet."""
    own_client = client is None
    http = client if client is not None else httpx.Client(timeout=cfg.timeout_s)
    try:
        session = _Session(cfg, http)
        if cfg.auth_method == "session":
            session.login()
        return lookup_cards(session, collection)
    finally:
        if own_client:
            http.close()


def lookup_cards(session: _Session, collection: Collection = COLLECTION) -> dict[str, int]:
    """The provisioned questions through an open session (the refresh's)."""
    run = _Provisioner(session, ProvisionReport())
    found = run.read("/api/collection/", "the collections", params={"archived": "false"})
    mine = sorted(
        (c for c in found if isinstance(c, dict) and key_of(c.get("description")) == collection.key),
        key=lambda c: c["id"],
    )
    if not mine:
        return {}
    body = run.read(
        f"/api/collection/{mine[0]['id']}/items", f"the cards of collection {mine[0]['id']}", params={"models": "card"}
    )
    items = body.get("data", []) if isinstance(body, dict) else body
    out: dict[str, int] = {}
    for item in sorted(items or [], key=lambda i: i.get("id") or 0):
        key = key_of(item.get("description"))
        if key and key not in out:
            out[key] = int(item["id"])
    return out


def layout_svg(dashboard: Dashboard = DASHBOARD, questions: Iterable[Question] = QUESTIONS) -> str:
    """The dashboard's layout as an SVG picture (docs/img/metabase-dashboard.svg), drawn from
    the definition itself: the filters on top, each question at its grid place (24 columns)."""
    from xml.sax.saxutils import escape

    names = {q.key: q for q in questions}
    unit_x, unit_y, pad, top = 40, 30, 4, 56
    width = 24 * unit_x + 2 * pad
    height = top + max(p.row + p.size_y for p in dashboard.cards) * unit_y + pad
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="#f9fbfc"/>',
        f'<text x="{pad + 4}" y="22" font-size="16" font-weight="bold" fill="#2e353b">{escape(dashboard.name)}</text>',
    ]
    x = pad + 4
    for f in dashboard.filters:
        out.append(f'<rect x="{x}" y="30" width="140" height="20" rx="4" fill="#fff" stroke="#509ee3"/>')
        out.append(f'<text x="{x + 8}" y="44" font-size="12" fill="#509ee3">{escape(f.name)} ▾</text>')
        x += 150
    for p in dashboard.cards:
        q = names[p.question]
        cx, cy = pad + p.col * unit_x, top + p.row * unit_y
        w, h = p.size_x * unit_x - pad, p.size_y * unit_y - pad
        out.append(f'<rect x="{cx}" y="{cy}" width="{w}" height="{h}" rx="6" fill="#fff" stroke="#dce1e4"/>')
        out.append(
            f'<text x="{cx + 10}" y="{cy + 22}" font-size="14" font-weight="bold" fill="#2e353b">{escape(q.name)}</text>'
        )
        lines = [f"[synoforecast:{q.key}]", f"{q.display} · {p.size_x}×{p.size_y} at row {p.row}, col {p.col}"]
        source = re.search(r"from\s+(published\.\w+)", q.sql)
        lines += [source.group(1)] if source else []
        for i, line in enumerate(lines):
            out.append(
                f'<text x="{cx + 10}" y="{cy + 40 + 15 * i}" font-size="11" fill="#74838f">{escape(line)}</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"
