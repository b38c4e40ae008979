"""Warehouse table layouts: one place that drives DDL, COPY column order and dbt sources.

Raw tables hold one workbook sheet each, one row per accepted source row, tagged
with the quarter partition it belongs to and the snapshot it came from. They carry
no run ids or load timestamps, so re-loading the same workbook leaves identical rows.
The snapshot is named by its compact `snapshot_id` (ops.snapshots maps it 1:1 to the
workbook's sha256): 64 characters on each of a million rows were a third of COPY's work.
"""

from __future__ import annotations

Column = tuple[str, str]

PARTITION_COLUMNS: list[Column] = [
    ("quarter_start", "date not null"),
    ("quarter_label", "text not null"),
    ("snapshot_id", "integer not null"),  # ops.snapshots.snapshot_id
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
    "region_map": [("country", "text not null"), ("region", "text not null")] + PARTITION_COLUMNS,
    "device_bays": [("model", "text not null"), ("bays", "integer"), ("tier", "text"), ("form_factor", "text")]
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
    ("yhat_base", "double precision"),
    ("band", "text"),
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
    ("mase", "double precision"),
    ("bias", "double precision"),
    ("coverage_80", "double precision"),
    ("coverage_95", "double precision"),
    ("smape_base", "double precision"),
    ("smape_snaive", "double precision"),
    ("mase_snaive", "double precision"),
    ("level", "text not null default 'parts'"),
    ("mase_series", "integer"),
    ("mase_note", "text"),
    ("smape_naive", "double precision"),
    ("smape_matched", "double precision"),
]

# where the quarter in progress will land (forecast/landing): one set of rows per snapshot cut-off
LANDING_COLUMNS: list[Column] = [
    ("cohort", "text not null"),
    ("series_id", "text not null"),
    ("metric", "text not null"),
    ("quarter_start", "date not null"),
    ("quarter_label", "text not null"),
    ("cutoff_date", "date not null"),
    ("week_of_quarter", "integer not null"),
    ("elapsed_share", "double precision not null"),
    ("elapsed_selling_share", "double precision not null"),
    ("qtd_actual", "double precision not null"),
    ("forecast_start", "double precision not null"),
    ("extrapolated", "double precision"),
    ("weight_extrapolated", "double precision not null"),
    ("weight_naive", "double precision not null"),
    ("yhat", "double precision not null"),
    ("yhat_lo_80", "double precision"),
    ("yhat_hi_80", "double precision"),
    ("yhat_lo_95", "double precision"),
    ("yhat_hi_95", "double precision"),
    ("yhat_base", "double precision"),
    ("snapshot_sha256", "text not null"),
    ("run_id", "text not null"),
    ("created_at", "timestamptz not null default now()"),
]

LANDING_EVALUATION_COLUMNS: list[Column] = [
    ("cutoff_date", "date not null"),
    ("cohort", "text not null"),
    ("metric", "text not null"),
    ("level", "text not null"),
    ("week_of_quarter", "integer not null"),
    ("elapsed_share", "double precision not null"),
    ("replays", "integer not null"),
    ("smape_landing", "double precision"),
    ("smape_start", "double precision"),
    ("smape_qtd_share", "double precision"),
    ("coverage_80", "double precision"),
    ("coverage_95", "double precision"),
    ("weight_extrapolated", "double precision"),
    ("weight_naive", "double precision"),
    ("run_id", "text not null"),
    ("created_at", "timestamptz not null default now()"),
]

RUNNING_SCHEMA = "raw_running"  # the running quarter's rows of the latest snapshot (forecast/landing)
RUNNING_TABLES = ("svr_rm", "consumer", "c2")

# added after the first release: existing warehouses get them with `add column if not exists`
_ADDED_COLUMNS = {
    "forecasts": ["yhat_base", "band"],
    "evaluation": [
        "mase",
        "bias",
        "coverage_80",
        "coverage_95",
        "smape_base",
        "smape_snaive",
        "mase_snaive",
        "level",
        "mase_series",
        "mase_note",
        "smape_naive",
        "smape_matched",
    ],
}

FORECAST_COMMENTS = {
    "forecasts": (
        "Next-quarter forecasts per cohort, series and metric; one set of rows per as-of quarter "
        "(trained on data up to and including as_of_quarter, predicting target_quarter)."
    ),
    "forecasts.cohort": "Forecast cohort (svr_rm_overall, svr_rm_top_customers, regional, consumer_trend, "
    "c2_scorecard).",
    "forecasts.as_of_quarter": "Last quarter of data the model saw (quarter start date).",
    "forecasts.target_quarter": "Quarter being forecast (as_of_quarter + 1).",
    "forecasts.series_id": "Series within the cohort: total, tier, region, customer id, all_other, service.",
    "forecasts.metric": "units or revenue (USD).",
    "forecasts.model": (
        "Combination (candidates weighted by pooled, shrunken backtest errors), or the short-history fallback's model."
    ),
    "forecasts.history_quarters": "Quarters of history the model was trained on.",
    "forecasts.yhat": "Published point forecast (reconciled: totals equal the sum of their parts).",
    "forecasts.yhat_base": "Point forecast before reconciliation (differs from yhat for totals and regions).",
    "forecasts.yhat_lo_80": "Lower bound of the 80% prediction interval.",
    "forecasts.yhat_hi_80": "Upper bound of the 80% prediction interval.",
    "forecasts.yhat_lo_95": "Lower bound of the 95% prediction interval.",
    "forecasts.yhat_hi_95": "Upper bound of the 95% prediction interval.",
    "forecasts.band": "Selection band: full, seasonal_short, intermittent or fallback (short history).",
    "forecasts.run_id": "Dagster run that published the row.",
    "evaluation": "Accuracy of the forecasts made at quarter-1 for quarter, per cohort, metric and level.",
    "evaluation.mape": "Mean absolute percentage error, percent.",
    "evaluation.smape": "Symmetric MAPE (0-200), published (reconciled) forecasts.",
    "evaluation.smape_base": "Symmetric MAPE of the forecasts before reconciliation.",
    "evaluation.mase": (
        "Mean absolute scaled error (1 = in-sample seasonal-naive error) over the series with an "
        "in-sample scale; NULL when none has one (see mase_note)."
    ),
    "evaluation.mase_series": "Series with an in-sample scale, i.e. the series MASE averages over.",
    "evaluation.mase_note": (
        "Why series were left out of MASE: fewer than 4 in-sample seasonal differences (a scale "
        "resting on fewer misleads), or no seasonal change."
    ),
    "evaluation.level": (
        "total (the cohort's total series) or parts (tiers, customers, regions, services): "
        "average within one level, never over both."
    ),
    "evaluation.smape_naive": "sMAPE of the naive forecast (last quarter's actual), the second benchmark.",
    "evaluation.smape_matched": (
        "sMAPE of the published forecasts on the series that have a seasonal naive "
        "benchmark: compare it with smape_snaive (a new series has none in its first year)."
    ),
    "evaluation.bias": "sum(forecast - actual) / sum(|actual|), percent; positive = over-forecast.",
    "evaluation.coverage_80": "Percent of actuals inside the 80% interval.",
    "evaluation.coverage_95": "Percent of actuals inside the 95% interval.",
    "evaluation.smape_snaive": "sMAPE of the seasonal naive forecast (same quarter last year), the benchmark.",
    "evaluation.mase_snaive": "MASE of the seasonal naive benchmark.",
    "landing": (
        "Where the quarter in progress will land, per snapshot cut-off: the quarter-start forecast "
        "combined with the quarter-to-date actual extrapolated by the series' intra-quarter profile."
    ),
    "landing.cohort": "Forecast cohort, as in forecast.forecasts.",
    "landing.series_id": "Series within the cohort, as in forecast.forecasts.",
    "landing.metric": "units (C2: seats at month end) or revenue (USD).",
    "landing.quarter_start": "The quarter in progress (quarter start date).",
    "landing.cutoff_date": "The snapshot's export day: sales up to and including it are in qtd_actual.",
    "landing.week_of_quarter": "Week of the quarter the cut-off falls in (1-13).",
    "landing.elapsed_share": "Share of the quarter's calendar days elapsed at the cut-off.",
    "landing.elapsed_selling_share": "Share of the quarter's selling days (Mon-Fri) elapsed at the cut-off.",
    "landing.qtd_actual": "Quarter-to-date actual at the cut-off (C2 seats: the latest month's seats).",
    "landing.forecast_start": "The quarter's forecast made at the last quarter close (forecast.forecasts yhat).",
    "landing.extrapolated": (
        "qtd_actual divided by the share of a quarter the series reached by the same point of "
        "past quarters' selling days; NULL where no profile exists (new series)."
    ),
    "landing.weight_extrapolated": (
        "Weight of the profile extrapolation; weight_naive: of QTD / elapsed share; the "
        "forecast gets the rest. Learned per week of quarter, metric and level."
    ),
    "landing.weight_naive": "Weight of the naive extrapolation (QTD / elapsed calendar share; C2 seats: the latest).",
    "landing.yhat": "Landing point (reconciled: totals equal the sum of their parts).",
    "landing.yhat_base": "Landing point before reconciliation.",
    "landing.yhat_lo_80": "Lower bound of the 80% interval (conformal on week-by-week replays of past quarters).",
    "landing.yhat_hi_80": "Upper bound of the 80% interval.",
    "landing.yhat_lo_95": "Lower bound of the 95% interval.",
    "landing.yhat_hi_95": "Upper bound of the 95% interval.",
    "landing.snapshot_sha256": "The workbook snapshot the landing was made from.",
    "landing_evaluation": (
        "The landing's replay backtest per snapshot cut-off: past quarters replayed at every "
        "week, against the quarter-start forecast alone and QTD / elapsed calendar share."
    ),
    "landing_evaluation.week_of_quarter": "Week of the quarter replayed (1-13).",
    "landing_evaluation.replays": "Replayed (quarter, series) pairs scored in that week.",
    "landing_evaluation.smape_landing": "sMAPE of the landing (weights learned without the replayed quarter).",
    "landing_evaluation.smape_start": "sMAPE of the quarter-start forecast alone (first baseline).",
    "landing_evaluation.smape_qtd_share": (
        "sMAPE of QTD / elapsed calendar share (second baseline; C2 seats: the latest month's seats)."
    ),
    "landing_evaluation.coverage_80": "Percent of replayed quarters landing inside the 80% interval.",
    "landing_evaluation.coverage_95": "Percent of replayed quarters landing inside the 95% interval.",
}

ANALYST_ROLE = "analyst"


def forecast_views_ddl(cohorts: list[str], schema: str = "forecast") -> list[str]:
    """`<schema>.latest` (every cohort's newest as-of quarter) and `<schema>.latest_<cohort>`,
    over `<schema>.forecasts` (the pipeline's `forecast` or the analysts' `published`)."""
    latest = f"""create or replace view {schema}.latest as
select f.* from {schema}.forecasts f
 where f.as_of_quarter = (select max(g.as_of_quarter) from {schema}.forecasts g where g.cohort = f.cohort)"""
    out = [latest, f"comment on view {schema}.latest is 'Newest forecast of every cohort (its latest as-of quarter).'"]
    for c in cohorts:
        out.append(f"create or replace view {schema}.latest_{c} as select * from {schema}.latest where cohort = '{c}'")
        out.append(f"comment on view {schema}.latest_{c} is 'Newest forecast of cohort {c}.'")
    return out


def analyst_role_ddl(role: str = ANALYST_ROLE) -> list[str]:
    """A read-only NOLOGIN group role on marts and forecast (grant it to login users / Metabase)."""
    return [
        f"""do $$ begin
  if not exists (select 1 from pg_roles where rolname = '{role}') then
    create role {role} nologin;
  end if;
exception when duplicate_object or unique_violation then null;  -- another database created it meanwhile
end $$""",
        f"grant usage on schema forecast to {role}",
        f"grant select on all tables in schema forecast to {role}",
        f"alter default privileges in schema forecast grant select on tables to {role}",
        "create schema if not exists marts",
        f"grant usage on schema marts to {role}",
        f"grant select on all tables in schema marts to {role}",
        f"alter default privileges in schema marts grant select on tables to {role}",
    ]


def _comment_sql(key: str, text: str) -> str:
    quoted = text.replace("'", "''")
    if "." in key:
        return f"comment on column forecast.{key} is '{quoted}'"
    return f"comment on table forecast.{key} is '{quoted}'"


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
    "alter table ops.snapshots add column if not exists changed_quarters jsonb not null default '[]'::jsonb",
    "alter table ops.snapshots add column if not exists baseline_sha256 text",
    """create table if not exists ops.quarantine (
  snapshot_sha256 text not null,
  sheet text not null,
  source_row integer not null,
  cell text not null,
  reason text not null,
  recorded_at timestamptz not null default now()
)""",
    "create index if not exists quarantine_snapshot_idx on ops.quarantine (snapshot_sha256)",
    "alter table ops.snapshots add column if not exists fingerprints jsonb not null default '{}'::jsonb",
    # the compact id raw rows carry instead of the sha256 (issue 13); existing rows get one each
    "create sequence if not exists ops.snapshot_id_seq",
    "alter table ops.snapshots add column if not exists snapshot_id integer not null "
    "default nextval('ops.snapshot_id_seq')",
    "alter sequence ops.snapshot_id_seq owned by ops.snapshots.snapshot_id",
    "create unique index if not exists snapshots_snapshot_id_uq on ops.snapshots (snapshot_id)",
    # What each published partition was built from (issue 11): written in the same
    # transaction as the rows, so change detection compares with what is published, not
    # with what the last successful run meant to publish.
    """create table if not exists ops.partition_state (
  target text not null,
  scope text not null,
  partition_key text not null,
  snapshot_sha256 text,
  fingerprint text not null,
  run_id text not null,
  published_at timestamptz not null default now(),
  primary key (target, scope)
)""",
    "create index if not exists partition_state_key_idx on ops.partition_state (partition_key)",
    """create table if not exists ops.run_snapshots (
  run_id text primary key,
  snapshot_sha256 text not null,
  registered_at timestamptz not null default now()
)""",
    # What dbt last built from, per raw table and quarter (and the project digest it was built
    # with): lib/transform/dbt_selection.py builds only downstream of the raw tables that differ.
    # Written after a successful build; not a published partition, so not in partition_state.
    """create table if not exists ops.dbt_inputs (
  scope text primary key,
  fingerprint text not null,
  run_id text not null,
  built_at timestamptz not null default now()
)""",
    # The export analysts see (schema `published`), switched in one transaction by a run that succeeded.
    """create table if not exists ops.published_snapshot (
  id boolean primary key default true check (id),
  snapshot_sha256 text not null,
  run_id text not null,
  published_at timestamptz not null default now()
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
    # An older export re-published on purpose (`synoforecast ingest --republish`, lib/ingest/export_order.py):
    # when, and over which newer published export
    "alter table ops.snapshots add column if not exists republished boolean not null default false",
    "alter table ops.snapshots add column if not exists republished_at timestamptz",
    "alter table ops.snapshots add column if not exists republished_over text",
    # What each accepted export restated of the published one (lib/ingest/restatements.py): per complete
    # quarter published before, sheet and metric; re-measured only against another published export
    """create table if not exists ops.restatements (
  snapshot_sha256 text not null,
  sheet text not null,
  quarter_start date not null,
  quarter_label text not null,
  metric text not null,
  published_value numeric not null,
  new_value numeric not null,
  change numeric not null,
  share double precision,
  baseline_sha256 text not null,
  measured_at timestamptz not null default now(),
  primary key (snapshot_sha256, sheet, quarter_start, metric)
)""",
    # The rolling pass's fits (lib/forecasting/rolling.py): one-step predictions addressed by
    # the model's spec and a hash of the values fitted, so they never go stale, only unused.
    """create table if not exists ops.forecast_fits (
  model_key text not null,
  prefix_key text not null,
  yhat double precision,
  made_at timestamptz not null default now(),
  primary key (model_key, prefix_key)
)""",
    # A freshness rule in breach (lib/monitoring/freshness.py): the channels its alert reached, so each
    # breach is posted once, across restarts; the row goes when the rule passes again.
    """create table if not exists ops.freshness_alerts (
  rule text primary key,
  breach text not null,
  summary text not null,
  since timestamptz not null,
  posted_to text[] not null default '{}',
  posted_at timestamptz,
  last_error text
)""",
]


# The published grain of every table written through `replace_rows`: two runs can never
# leave two row sets for one key (the advisory lock serialises them, the index proves it).
UNIQUE_GRAINS = {
    "forecast.forecasts": ("cohort", "as_of_quarter", "series_id", "metric"),
    "forecast.evaluation": ("cohort", "quarter", "metric", "level"),
    "forecast.landing": ("cutoff_date", "cohort", "series_id", "metric"),
    "forecast.landing_evaluation": ("cutoff_date", "cohort", "metric", "level", "week_of_quarter"),
    **{f"raw.{t}": ("quarter_start", "source_row") for t, cols in RAW_TABLES.items() if "source_row" in dict(cols)},
}


def snapshot_id_migration_ddl() -> list[str]:
    """Raw tables of an older release carry `snapshot_sha256` text: give each row its
    snapshot's id (0 for a sha256 ops.snapshots does not know) and drop the text. CASCADE
    drops the dbt staging views that selected the old column; every dbt build recreates them."""
    out = []
    for table in RAW_TABLES:
        out.append(f"""do $$ begin
  if exists (select 1 from information_schema.columns
              where table_schema = 'raw' and table_name = '{table}' and column_name = 'snapshot_sha256') then
    alter table raw.{table} add column if not exists snapshot_id integer;
    update raw.{table} r set snapshot_id = s.snapshot_id from ops.snapshots s where s.sha256 = r.snapshot_sha256;
    update raw.{table} set snapshot_id = 0 where snapshot_id is null;
    alter table raw.{table} alter column snapshot_id set not null;
    alter table raw.{table} drop column snapshot_sha256 cascade;
  end if;
end $$""")
    return out


def unique_grain_ddl() -> list[str]:
    """Unique indexes on each published grain; duplicates an older release may have left are
    removed first (keeping the newest row), else the index could not be created."""
    out = []
    for table, cols in UNIQUE_GRAINS.items():
        name = table.split(".")[1] + "_grain_uq"
        keys = ", ".join(cols)
        out.append(f"""do $$ begin
  if to_regclass('{table.split('.')[0]}.{name}') is null then
    delete from {table} a using {table} b
     where ({', '.join('a.' + c for c in cols)}) = ({', '.join('b.' + c for c in cols)}) and a.ctid < b.ctid;
    create unique index {name} on {table} ({keys});
  end if;
end $$""")
    return out


# forecasts as they were made, and the actuals they are scored against (lib/warehouse/analyst_views.py)
VINTAGES_DDL = [
    """create table if not exists forecast.vintages (
  snapshot_sha256 text not null,
  export_date date not null,
  cohort text not null,
  series_id text not null,
  metric text not null,
  as_of_quarter date not null,
  target_quarter date not null,
  target_label text not null,
  model text not null,
  yhat double precision not null,
  yhat_lo_80 double precision,
  yhat_hi_80 double precision,
  yhat_lo_95 double precision,
  yhat_hi_95 double precision,
  landing_cutoff date,
  landing_yhat double precision,
  landing_lo_80 double precision,
  landing_hi_80 double precision,
  recorded_at timestamptz not null default now(),
  primary key (snapshot_sha256, cohort, series_id, metric, target_quarter)
)""",
    "comment on table forecast.vintages is 'Every published export''s next-quarter forecast (and its landing), "
    "kept as it was made: never re-fitted on later, corrected history.'",
    """create table if not exists forecast.actuals (
  cohort text not null,
  series_id text not null,
  metric text not null,
  quarter_start date not null,
  quarter_label text not null,
  actual double precision not null,
  run_id text not null
)""",
    "create unique index if not exists actuals_grain_uq on forecast.actuals (cohort, quarter_start, series_id, metric)",
    "comment on table forecast.actuals is 'Each forecast series'' actual per complete quarter, formed as its "
    "forecast formed it (top customers: the set flagged the quarter before).'",
]


# the narratives (lib/activation/cohort_narratives.py); the view after published_ddl
NARRATIVES_DDL = [
    """create table if not exists forecast.narratives (
  snapshot_sha256 text not null,
  cohort text not null,
  metric text not null,
  target_quarter date not null,
  target_label text not null,
  landing_cutoff date,
  narrative text not null,
  written_at timestamptz not null default now(),
  primary key (snapshot_sha256, cohort, metric)
)""",
    "comment on table forecast.narratives is 'Per export, cohort and metric: the forecast for the next quarter "
    "in words, its change on last quarter and last year, what drives it, the landing and restatements.'",
    """create or replace view published.narratives as
select n.cohort, n.metric, n.target_quarter, n.target_label, n.landing_cutoff, n.narrative, n.written_at
  from forecast.narratives n join ops.published_snapshot s on s.snapshot_sha256 = n.snapshot_sha256""",
    "comment on view published.narratives is 'The published export''s narratives, one per cohort and metric.'",
]


# What a Prometheus scrape reads (lib/monitoring/metrics.py), by index: the newest accepted export
# (also freshness_state's query) and the published export's newest landing cut-off
SCRAPE_INDEXES_DDL = [
    "create index if not exists snapshots_accepted_mtime_idx on ops.snapshots (file_mtime desc, first_seen_at desc) "
    "where status = 'accepted'",
    "create index if not exists landing_snapshot_idx on forecast.landing (snapshot_sha256, cutoff_date)",
]


PUBLISHED_SCHEMA = "published"


def published_ddl(role: str = ANALYST_ROLE) -> list[str]:
    """The analysts' schema: copies of the marts and forecasts of one complete export."""
    return [
        f"create schema if not exists {PUBLISHED_SCHEMA}",
        f"grant usage on schema {PUBLISHED_SCHEMA} to {role}",
        f"grant select on all tables in schema {PUBLISHED_SCHEMA} to {role}",
        f"alter default privileges in schema {PUBLISHED_SCHEMA} grant select on tables to {role}",
    ]


def warehouse_ddl() -> list[str]:
    """Every statement needed before the first load; all idempotent."""
    statements = [f"create schema if not exists {s}" for s in ("raw", "ops", "forecast")]
    statements += [create_table_sql("raw", t, cols) for t, cols in RAW_TABLES.items()]
    # the per-quarter delete of the large sheets uses the unique grain index (quarter_start,
    # source_row): a second index on quarter_start alone only slowed every COPY down
    graded = {t.split(".")[1] for t in UNIQUE_GRAINS if t.startswith("raw.")}
    statements += [
        f"drop index if exists raw.{t}_quarter_idx"
        if t in graded
        else f"create index if not exists {t}_quarter_idx on raw.{t} (quarter_start)"
        for t in RAW_TABLES
    ]
    statements += [
        create_table_sql("forecast", "forecasts", FORECAST_COLUMNS),
        "create index if not exists forecasts_partition_idx on forecast.forecasts (cohort, as_of_quarter)",
        create_table_sql("forecast", "evaluation", EVALUATION_COLUMNS),
        "create index if not exists evaluation_partition_idx on forecast.evaluation (cohort, quarter)",
    ]
    statements += [
        create_table_sql("forecast", "landing", LANDING_COLUMNS),
        create_table_sql("forecast", "landing_evaluation", LANDING_EVALUATION_COLUMNS),
        """create or replace view forecast.latest_landing as
select l.* from forecast.landing l where l.cutoff_date = (select max(cutoff_date) from forecast.landing)""",
        "comment on view forecast.latest_landing is 'The landing of the quarter in progress at the newest cut-off.'",
        f"create schema if not exists {RUNNING_SCHEMA}",
    ]
    statements += [create_table_sql(RUNNING_SCHEMA, t, RAW_TABLES[t]) for t in RUNNING_TABLES]
    kinds = {"forecasts": dict(FORECAST_COLUMNS), "evaluation": dict(EVALUATION_COLUMNS)}
    statements += [
        f"alter table forecast.{t} add column if not exists {c} {kinds[t][c]}"
        for t, cols in _ADDED_COLUMNS.items()
        for c in cols
    ]
    statements += [_comment_sql(k, v) for k, v in FORECAST_COMMENTS.items()]
    from synoforecast.lib.forecasting.cohorts import COHORTS

    statements += forecast_views_ddl([c.name for c in COHORTS])
    statements += VINTAGES_DDL
    statements += analyst_role_ddl()
    statements += OPS_DDL
    statements += snapshot_id_migration_ddl()
    statements += unique_grain_ddl()
    statements += published_ddl()
    statements += NARRATIVES_DDL
    statements += SCRAPE_INDEXES_DDL
    return statements
