"""The dbt project's model and column descriptions, and the warehouse's own for the tables and
views the platform writes, in Metabase's data model.

Pure library (httpx through metabase._Session; no Dagster). The marts' descriptions are read
from the dbt project's YAML (``models/**/*.yml``: ``models: [{name, description, columns:
[{name, description}]}]``), so no ``dbt docs generate`` is needed; the platform's tables and
views (``forecasts``, ``latest``, ``chart_series``, ``vintages``, ...) carry theirs as
PostgreSQL comments (lib/warehouse/descriptions.py), read by ``catalog_docs``. Each Metabase table of the
database whose schema is one of ``schemas`` and whose name is a dbt model gets the model's
description, and each of its fields the column's. Only what differs is written: a second
run makes no write, and a description an analyst typed for a column dbt does not describe
is left alone.

API calls, checked against the 0.50 API reference:

* ``GET /api/database/:id/metadata`` (tables with ``id``, ``schema``, ``name``,
  ``description`` and their ``fields``): https://metabase.com/docs/latest/api/database
* ``PUT /api/table/:id`` ``{"description"}``: https://metabase.com/docs/latest/api/table
* ``PUT /api/field/:id`` ``{"description"}``: https://metabase.com/docs/latest/api/field (and /docs/master/api/field)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from synoforecast.lib.activation.metabase import MetabaseConfig, MetabaseError, _Session

__all__ = ["CatalogReport", "ModelDoc", "catalog_docs", "dbt_descriptions", "push_descriptions"]


@dataclass(frozen=True)
class ModelDoc:
    description: str
    columns: Mapping[str, str]


def dbt_descriptions(project_dir: Path) -> dict[str, ModelDoc]:
    """model name -> its description and its columns' (blank ones left out)."""
    out: dict[str, ModelDoc] = {}
    for path in sorted((project_dir / "models").rglob("*.yml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for model in doc.get("models") or []:
            if not isinstance(model, dict) or not model.get("name"):
                continue
            columns = {
                c["name"]: " ".join(str(c["description"]).split())
                for c in model.get("columns") or []
                if isinstance(c, dict) and c.get("name") and str(c.get("description") or "").strip()
            }
            out[model["name"]] = ModelDoc(" ".join(str(model.get("description") or "").split()), columns)
    return out


def catalog_docs(project_dir: Path, warehouse_url: str, schema: str = "published") -> dict[str, ModelDoc]:
    """What Metabase should show: dbt's descriptions for its models, and for every other table
    and view of `schema` (the platform's) the comments the warehouse holds on it."""
    from synoforecast.lib.warehouse import descriptions
    from synoforecast.lib.warehouse.connection import connect

    docs = dbt_descriptions(project_dir)
    with connect(warehouse_url) as conn:
        described = descriptions.read(conn, schema)
    for name, found in described.items():
        if name in docs:
            continue
        columns = {c: " ".join(text.split()) for c, text in found.columns.items() if text}
        docs[name] = ModelDoc(" ".join((found.description or "").split()), columns)
    return docs


@dataclass
class CatalogReport:
    tables: dict[str, str] = field(default_factory=dict)  # schema.table -> updated | unchanged
    fields_updated: int = 0
    fields_unchanged: int = 0

    def to_metadata(self) -> dict[str, Any]:
        return {
            "tables": dict(self.tables),
            "fields_updated": self.fields_updated,
            "fields_unchanged": self.fields_unchanged,
        }


def _put(session: _Session, path: str, description: str, what: str) -> None:
    resp = session.authorised("PUT", path, json={"description": description})
    if not 200 <= resp.status_code < 300:
        raise MetabaseError(
            f"Metabase refused the description of {what}: HTTP {resp.status_code} {session.snippet(resp)}".rstrip()
        )


def describe(
    session: _Session, database_id: int, docs: Mapping[str, ModelDoc], schemas: Iterable[str]
) -> CatalogReport:
    """Through an open session: the descriptions of ``docs`` onto the tables of ``schemas``."""
    schemas = set(schemas)
    resp = session.authorised("GET", f"/api/database/{database_id}/metadata")
    body = session.body_json(resp)
    if resp.status_code != 200 or not isinstance(body, dict):
        raise MetabaseError(
            f"Metabase metadata of database {database_id} could not be read: HTTP {resp.status_code} "
            f"{session.snippet(resp)}".rstrip()
        )
    report = CatalogReport()
    for table in body.get("tables") or []:
        doc = docs.get(table.get("name")) if table.get("schema") in schemas else None
        if doc is None or table.get("id") is None:
            continue
        name = f"{table['schema']}.{table['name']}"
        state = "unchanged"
        if doc.description and (table.get("description") or "") != doc.description:
            _put(session, f"/api/table/{table['id']}", doc.description, f"table {name}")
            state = "updated"
        for fld in table.get("fields") or []:
            wanted = doc.columns.get(fld.get("name"))
            if not wanted or fld.get("id") is None:
                continue
            if (fld.get("description") or "") == wanted:
                report.fields_unchanged += 1
                continue
            _put(session, f"/api/field/{fld['id']}", wanted, f"column {name}.{fld['name']}")
            report.fields_updated += 1
            state = "updated"
        report.tables[name] = state
    return report


def push_descriptions(
    cfg: MetabaseConfig,
    docs: Mapping[str, ModelDoc],
    *,
    schemas: Iterable[str] = ("published", "marts"),
    client: httpx.Client | None = None,
) -> CatalogReport:
    """Health-check, authenticate, then ``describe``. Needs METABASE_DATABASE_ID."""
    if not cfg.configured or cfg.database_id is None:
        raise MetabaseError("the catalog needs METABASE_URL, credentials and METABASE_DATABASE_ID")
    own_client = client is None
    http = client if client is not None else httpx.Client(timeout=cfg.timeout_s)
    try:
        session = _Session(cfg, http)
        session.wait_healthy()
        if cfg.auth_method == "session":
            session.login()
        return describe(session, cfg.database_id, docs, schemas)
    finally:
        if own_client:
            http.close()
