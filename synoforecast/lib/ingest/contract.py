"""The workbook contract as data: sheets, canonical columns, types and header aliases.

`docs/workbook-contract.md` restates this for the sales-operations team. Extra header
spellings come from `aliases:` in `synoforecast.yaml` (validated in settings.py) and
reach the reader through `AliasTable(extra=...)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["date", "month", "text", "id", "int", "decimal"]


@dataclass(frozen=True)
class ColumnSpec:
    header: str  # canonical header as the contract spells it
    field: str  # warehouse column name
    kind: Kind
    required: bool = True
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class SheetSpec:
    name: str  # canonical sheet name
    table: str  # raw.<table>
    required: bool
    columns: tuple[ColumnSpec, ...]
    date_field: str | None = None  # the column that places a row in a quarter
    is_sales: bool = False
    # optional columns the contract expects blank on this sheet, so "mostly blank" is no warning
    blank_by_design: tuple[str, ...] = ()

    @property
    def required_columns(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.required]


def _sales_columns() -> tuple[ColumnSpec, ...]:
    return (
        ColumnSpec("Date", "sale_date", "date", aliases=("sale date", "sales date", "invoice date", "sale-out date")),
        ColumnSpec("Region", "region", "text", required=False, aliases=("sales region",)),
        ColumnSpec("Country", "country", "text", aliases=("country code", "ctry")),
        ColumnSpec(
            "Customer ID", "customer_id", "id", aliases=("cust id", "customer no", "customer number", "account id")
        ),
        ColumnSpec(
            "Customer", "customer", "text", required=False, aliases=("customer name", "account", "account name")
        ),
        ColumnSpec("Model", "model", "text", aliases=("product", "model name", "sku")),
        ColumnSpec("Tier", "tier", "text", required=False, aliases=("svr tier", "product tier")),
        ColumnSpec("Units", "units", "int", aliases=("qty", "quantity", "unit", "units sold")),
        ColumnSpec(
            "Revenue (USD)",
            "revenue_usd",
            "decimal",
            aliases=("revenue usd", "rev (usd)", "revenue", "revenue $", "rev usd"),
        ),
        ColumnSpec("Channel", "channel", "text", required=False, aliases=("sales channel",)),
    )


SHEETS: tuple[SheetSpec, ...] = (
    SheetSpec("SVR-RM", "svr_rm", True, _sales_columns(), date_field="sale_date", is_sales=True),
    # consumer models have no SVR tier: Tier is an SVR-RM column, blank on Consumer by design
    SheetSpec(
        "Consumer",
        "consumer",
        False,
        _sales_columns(),
        date_field="sale_date",
        is_sales=True,
        blank_by_design=("tier",),
    ),
    SheetSpec(
        "C2",
        "c2",
        False,
        (
            ColumnSpec("Month", "month", "month", aliases=("billing month", "period")),
            ColumnSpec("Customer ID", "customer_id", "id", aliases=("cust id", "customer no", "account id")),
            ColumnSpec("Customer", "customer", "text", required=False, aliases=("customer name",)),
            ColumnSpec("Region", "region", "text", required=False),
            ColumnSpec("Service", "service", "text", aliases=("c2 service", "product")),
            ColumnSpec("Plan", "plan", "text", required=False),
            ColumnSpec("Seats", "seats", "int", aliases=("licences", "licenses", "active seats")),
            ColumnSpec("MRR (USD)", "mrr_usd", "decimal", aliases=("mrr usd", "mrr", "monthly recurring revenue")),
        ),
        date_field="month",
    ),
    SheetSpec(
        "Top Customers",
        "top_customers",
        False,
        (
            ColumnSpec("Customer ID", "customer_id", "id", aliases=("cust id", "customer no", "account id")),
            ColumnSpec("Customer", "customer", "text", required=False, aliases=("customer name",)),
            ColumnSpec("Segment", "segment", "text", required=False),
            ColumnSpec("Account Owner", "account_owner", "text", required=False, aliases=("owner",)),
        ),
    ),
    SheetSpec(
        "Region Map",
        "region_map",
        False,
        (ColumnSpec("Country", "country", "text"), ColumnSpec("Region", "region", "text")),
    ),
    SheetSpec(
        "Device Bays",
        "device_bays",
        False,
        (
            ColumnSpec("Model", "model", "text"),
            ColumnSpec("Bays", "bays", "int", required=False),
            ColumnSpec("Tier", "tier", "text", required=False),
            ColumnSpec("Form Factor", "form_factor", "text", required=False),
        ),
    ),
)

SHEETS_BY_TABLE: dict[str, SheetSpec] = {s.table: s for s in SHEETS}

# What the warehouse column of each kind can hold (lib/warehouse/schema.py: integer, numeric(18,2)):
# a value outside is refused or quarantined by the reader, never found by a failing COPY.
INT_RANGE = (-2_147_483_648, 2_147_483_647)
DECIMAL_LIMIT = 1e16  # numeric(18,2): |x| < 10^16
WAREHOUSE_TYPES = {"int": "integer", "decimal": "numeric(18,2)"}
# Text lengths a row may carry: an id is a key (indexed: PostgreSQL refuses index rows above
# ~2.7 kB, and a 100,000-character id failed the publish), other text is a name or a label
MAX_ID_CHARS = 100
MAX_TEXT_CHARS = 1000

_SPACES = re.compile(r"\s+")


def normalise_name(text: object) -> str:
    """Case-, space- and underscore-insensitive form used to match sheet and header names."""
    return _SPACES.sub(" ", str(text).replace("_", " ")).strip().casefold()


def match_sheet(name: str) -> SheetSpec | None:
    key = normalise_name(name)
    return next((s for s in SHEETS if normalise_name(s.name) == key), None)


@dataclass(frozen=True)
class AliasTable:
    """Header spelling -> canonical column, per sheet; extra aliases come from settings."""

    extra: Mapping[str, Mapping[str, list[str]]] = field(default_factory=dict)

    def lookup(self, sheet: SheetSpec) -> dict[str, ColumnSpec]:
        table: dict[str, ColumnSpec] = {}
        extra = {normalise_name(k): v for k, v in self.extra.get(sheet.name, {}).items()}
        for col in sheet.columns:
            spellings = [col.header, col.field, *col.aliases, *extra.get(normalise_name(col.header), [])]
            for spelling in spellings:
                table.setdefault(normalise_name(spelling), col)
        return table
