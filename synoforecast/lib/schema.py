"""Warehouse table layouts: one place that drives DDL, COPY column order and dbt sources.

Raw tables hold one workbook sheet each, one row per accepted source row, tagged
with the quarter partition it belongs to and the snapshot it came from. They carry
no run ids or load timestamps, so re-loading the same workbook leaves identical rows.
"""

from __future__ import annotations

Column = tuple[str, str]

PARTITION_COLUMNS: list[Column] = [
    ("quarter_start", "date not null"),
    ("quarter_label", "text not null"),
    ("snapshot_sha256", "text not null"),
]

SALES_COLUMNS: list[Column] = [
    ("sale_date", "date not null"),
    ("region", "text"),
    ("country", "text"),
    ("customer_id", "text not null"),
    ("customer", "text"),
    ("model", "text not null"),
    ("tier", "text"),
    ("units", "integer not null"),
    ("revenue_usd", "numeric(18,2) not null"),
    ("channel", "text"),
    ("is_unknown_model", "boolean not null"),
    ("is_unknown_country", "boolean not null"),
    ("source_row", "integer not null"),
]

RAW_TABLES: dict[str, list[Column]] = {
    "svr_rm": SALES_COLUMNS + PARTITION_COLUMNS,
    "consumer": SALES_COLUMNS + PARTITION_COLUMNS,
    "c2": [
        ("month", "date not null"),
        ("customer_id", "text not null"),
        ("customer", "text"),
        ("region", "text"),
        ("service", "text not null"),
        ("plan", "text"),
        ("seats", "integer not null"),
        ("mrr_usd", "numeric(18,2) not null"),
        ("source_row", "integer not null"),
    ]
    + PARTITION_COLUMNS,
    "top_customers": [
        ("customer_id", "text not null"),
        ("customer", "text"),
        ("segment", "text"),
        ("account_owner", "text"),
    ]
    + PARTITION_COLUMNS,
    "region_map": [
        ("country", "text not null"),
        ("region", "text not null"),
    ]
    + PARTITION_COLUMNS,
    "device_bays": [
        ("model", "text not null"),
        ("bays", "integer"),
        ("tier", "text"),
        ("form_factor", "text"),
    ]
    + PARTITION_COLUMNS,
}

FORECAST_COLUMNS: list[Column] = [
    ("cohort", "text not null"),
    ("as_of_quarter", "date not null"),
    ("as_of_label", "text not null"),
    ("target_quarter", "date not null"),
    ("target_label", "text not null"),
    ("series_id", "text not null"),
    ("metric", "text not null"),
    ("model", "text not null"),
    ("history_quarters", "integer not null"),
    ("yhat", "double precision not null"),
    ("yhat_lo_80", "double precision"),
    ("yhat_hi_80", "double precision"),
    ("yhat_lo_95", "double precision"),
    ("yhat_hi_95", "double precision"),
    ("run_id", "text not null"),
    ("created_at", "timestamptz not null default now()"),
]

EVALUATION_COLUMNS: list[Column] = [
    ("cohort", "text not null"),
    ("quarter", "date not null"),
    ("quarter_label", "text not null"),
    ("metric", "text not null"),
    ("series_scored", "integer not null"),
    ("mape", "double precision"),
    ("smape", "double precision"),
    ("run_id", "text not null"),
    ("created_at", "timestamptz not null default now()"),
]


def create_table_sql(schema: str, table: str, columns: list[Column]) -> str:
    cols = ",\n  ".join(f"{name} {kind}" for name, kind in columns)
    return f"create table if not exists {schema}.{table} (\n  {cols}\n)"


def column_names(columns: list[Column]) -> list[str]:
    return [name for name, _ in columns]


OPS_DDL = [
    """create table if not exists ops.snapshots (
  sha256 text primary key,
  file text not null,
  size_bytes bigint not null,
  file_mtime timestamptz not null,
  status text not null,
  error text,
  sheets jsonb not null default '{}'::jsonb,
  ignored_sheets jsonb not null default '[]'::jsonb,
  quarters jsonb not null default '[]'::jsonb,
  complete_quarters jsonb not null default '[]'::jsonb,
  quarter_hashes jsonb not null default '{}'::jsonb,
  parquet_dir text,
  first_run_id text,
  last_run_id text,
  read_seconds double precision,
  first_seen_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now()
)""",
    """create table if not exists ops.publish_log (
  id bigserial primary key,
  run_id text not null,
  target text not null,
  partition_key text not null,
  rows_deleted integer not null,
  rows_written integer not null,
  published_at timestamptz not null default now()
)""",
]


def warehouse_ddl() -> list[str]:
    """Every statement needed before the first load; all idempotent."""
    statements = [f"create schema if not exists {s}" for s in ("raw", "ops", "forecast")]
    statements += [create_table_sql("raw", t, cols) for t, cols in RAW_TABLES.items()]
    statements += [
        f"create index if not exists {t}_quarter_idx on raw.{t} (quarter_start)" for t in RAW_TABLES
    ]
    statements += [
        create_table_sql("forecast", "forecasts", FORECAST_COLUMNS),
        "create index if not exists forecasts_partition_idx on forecast.forecasts (cohort, as_of_quarter)",
        create_table_sql("forecast", "evaluation", EVALUATION_COLUMNS),
        "create index if not exists evaluation_partition_idx on forecast.evaluation (cohort, quarter)",
    ]
    statements += OPS_DDL
    return statements
