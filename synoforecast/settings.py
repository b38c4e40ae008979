"""Typed settings: `synoforecast.yaml` in the project home, overridden by SYNOFORECAST_* env.

Everything has a default that works on a laptop: the project home is the checkout
(or the current directory when installed elsewhere), data lives under `<home>/data`,
the warehouse is an embedded PostgreSQL unless SYNOFORECAST_WAREHOUSE_URL is set.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from synoforecast_dbt import PROJECT_DIR as DBT_PROJECT_DIR  # editable: the checkout's; wheel: site-packages

PACKAGE_DIR = Path(__file__).resolve().parent
# The source checkout this package runs from (an editable install), else None (a wheel)
CHECKOUT_DIR: Path | None = (PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").exists()
                             and (PACKAGE_DIR.parent / "workspace.yaml").exists() else None)


FORECAST_PASSES = ("rolling", "per_partition")


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the setting."""


def default_home() -> Path:
    if CHECKOUT_DIR is not None:
        return CHECKOUT_DIR
    return Path.cwd().resolve()


@dataclasses.dataclass(frozen=True)
class Settings:
    home: Path
    data_dir: Path
    inbox_dir: Path
    dagster_home: Path
    warehouse_url: str | None = None
    # None = start at the data: the first quarter of the earliest accepted workbook (data_start_file)
    partitions_start: dt.date | None = None
    fiscal_year_start_month: int = 1
    season_length: int = 4
    top_customers_n: int = 20
    quarantine_max_share: float = 0.02
    row_delta_warn_pct: float = 20.0
    duplicate_share_warn: float = 0.01
    null_share_warn: float = 0.5
    # guard rails (issue 11): plausible sale dates, how far a sheet or cohort total may shrink
    # against the published snapshot before publication stops, how long a CLI run waits for
    # a concurrency limit held by another run
    earliest_sale_date: dt.date = dt.date(2000, 1, 1)
    date_margin_days: int = 0  # a sale dated after its export is quarantined (days of tolerance)
    # text dates whose column shows no order (no day or month above 12): "day_first" or "month_first"
    date_order: str = "day_first"
    # what one workbook may hold before it is refused unread (lib/ingest/xlsx_parts.py Limits)
    reader_max_uncompressed_mb: int = 2048
    reader_max_compression_ratio: float = 50.0
    reader_max_sheet_rows: int = 1_048_576
    reader_max_sheet_cells: int = 15_000_000
    reader_max_workbook_cells: int = 20_000_000
    shrink_max_share: float = 0.5
    limit_wait_seconds: float = 300.0
    # restatements of published quarters (lib/ingest/restatements.py): listed in the snapshot's metadata and
    # the run's summary above the first share, the snapshot_restatements check warns above the second
    restatement_material_share: float = 0.01
    restatement_warn_share: float = 0.05
    # accuracy gates (AccuracyThresholdsResource): sMAPE ceiling in percent, tolerance over
    # seasonal naive in percent, quarter-on-quarter worsening in sMAPE points that alerts
    max_smape: float = 30.0
    snaive_tolerance: float = 0.0
    accuracy_drop_points: float = 10.0
    # days of Dagster run history the embedded instance keeps (defs/housekeeping.py)
    history_retention_days: int = 30
    # freshness (lib/monitoring/freshness.py): the newest accepted export may be this many days old; a closed
    # quarter's forecast must be published this many days after the quarter ended
    freshness_max_age_days: int = 8
    quarter_close_grace_days: int = 10
    # "rolling": one pass of fits over a run's as-of quarters, kept in ops.forecast_fits;
    # "per_partition": every partition refits its own backtest (the benchmark's baseline)
    forecast_pass: str = "rolling"
    # processes a run's fits, forecasts and landing are spread over (the run's and n - 1
    # workers, ~370 MB each on the default sample); 1 keeps everything in the run's process
    forecast_workers: int = dataclasses.field(default_factory=lambda: min(2, os.cpu_count() or 1))
    # extra header spellings, yaml only: {"SVR-RM": {"Units": ["Menge", "Stück"]}}
    aliases: dict = dataclasses.field(default_factory=dict)

    @property
    def pgdata_dir(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def data_start_file(self) -> Path:
        """Where the first quarter of the earliest accepted workbook is remembered."""
        return self.data_dir / "processed" / "partitions_start"

    @property
    def ingestion_dir(self) -> Path:
        return self.data_dir / "processed" / "ingestion"

    @property
    def forecasts_dir(self) -> Path:
        return self.data_dir / "processed" / "forecasts"

    @property
    def landing_replays_dir(self) -> Path:
        """The landing's replays by content hash (lib/landing/replay_store.py): reused by the next export."""
        return self.data_dir / "processed" / "landing_replays"


_ENV_KEYS = {
    "data_dir": "SYNOFORECAST_DATA_DIR",
    "inbox_dir": "SYNOFORECAST_INBOX",
    "warehouse_url": "SYNOFORECAST_WAREHOUSE_URL",
    "partitions_start": "SYNOFORECAST_PARTITIONS_START",
    "fiscal_year_start_month": "SYNOFORECAST_FISCAL_YEAR_START_MONTH",
    "season_length": "SYNOFORECAST_SEASON_LENGTH",
    "top_customers_n": "SYNOFORECAST_TOP_CUSTOMERS_N",
    "quarantine_max_share": "SYNOFORECAST_QUARANTINE_MAX_SHARE",
    "row_delta_warn_pct": "SYNOFORECAST_ROW_DELTA_WARN_PCT",
    "duplicate_share_warn": "SYNOFORECAST_DUPLICATE_SHARE_WARN",
    "null_share_warn": "SYNOFORECAST_NULL_SHARE_WARN",
    "earliest_sale_date": "SYNOFORECAST_EARLIEST_SALE_DATE",
    "date_margin_days": "SYNOFORECAST_DATE_MARGIN_DAYS",
    "date_order": "SYNOFORECAST_DATE_ORDER",
    "reader_max_uncompressed_mb": "SYNOFORECAST_READER_MAX_UNCOMPRESSED_MB",
    "reader_max_compression_ratio": "SYNOFORECAST_READER_MAX_COMPRESSION_RATIO",
    "reader_max_sheet_rows": "SYNOFORECAST_READER_MAX_SHEET_ROWS",
    "reader_max_sheet_cells": "SYNOFORECAST_READER_MAX_SHEET_CELLS",
    "reader_max_workbook_cells": "SYNOFORECAST_READER_MAX_WORKBOOK_CELLS",
    "shrink_max_share": "SYNOFORECAST_SHRINK_MAX_SHARE",
    "limit_wait_seconds": "SYNOFORECAST_LIMIT_WAIT_SECONDS",
    "restatement_material_share": "SYNOFORECAST_RESTATEMENT_MATERIAL_SHARE",
    "restatement_warn_share": "SYNOFORECAST_RESTATEMENT_WARN_SHARE",
    "max_smape": "SYNOFORECAST_MAX_SMAPE",
    "snaive_tolerance": "SYNOFORECAST_SNAIVE_TOLERANCE",
    "accuracy_drop_points": "SYNOFORECAST_ACCURACY_DROP_POINTS",
    "history_retention_days": "SYNOFORECAST_HISTORY_RETENTION_DAYS",
    "freshness_max_age_days": "SYNOFORECAST_FRESHNESS_MAX_AGE_DAYS",
    "quarter_close_grace_days": "SYNOFORECAST_QUARTER_CLOSE_GRACE_DAYS",
    "forecast_pass": "SYNOFORECAST_FORECAST_PASS",
    "forecast_workers": "SYNOFORECAST_FORECAST_WORKERS",
}


def _coerce(name: str, raw: Any, source: str) -> Any:
    try:
        if name == "partitions_start":
            value = raw if isinstance(raw, dt.date) else dt.date.fromisoformat(str(raw))
            if value.day != 1:
                raise ValueError("must be a quarter start (first day of a quarter) such as 2020-01-01")
            return value
        if name == "earliest_sale_date":
            return raw if isinstance(raw, dt.date) else dt.date.fromisoformat(str(raw))
        if name in ("freshness_max_age_days", "quarter_close_grace_days"):
            value = int(raw)
            low, high = {"freshness_max_age_days": (1, 365), "quarter_close_grace_days": (0, 90)}[name]
            if not low <= value <= high:
                raise ValueError(f"must be a whole number of days between {low} and {high}")
            return value
        if name in ("date_margin_days", "limit_wait_seconds"):
            value = float(raw) if name == "limit_wait_seconds" else int(raw)
            if value < 0:
                raise ValueError("must not be negative")
            return value
        if name == "shrink_max_share":
            value = float(raw)
            if not 0 < value <= 1:
                raise ValueError("must be a share between 0 (exclusive) and 1")
            return value
        if name in ("fiscal_year_start_month", "season_length", "top_customers_n", "history_retention_days",
                    "forecast_workers"):
            value = int(raw)
            low, high = {"fiscal_year_start_month": (1, 12), "season_length": (1, 12),
                         "top_customers_n": (1, 10_000), "history_retention_days": (1, 3650),
                         "forecast_workers": (1, 64)}[name]
            if not low <= value <= high:
                raise ValueError(f"must be between {low} and {high}")
            return value
        if name in ("quarantine_max_share", "duplicate_share_warn", "null_share_warn"):
            value = float(raw)
            if not 0 <= value < 1:
                raise ValueError("must be between 0 and 1")
            return value
        if name in ("restatement_material_share", "restatement_warn_share"):
            value = float(raw)
            if not value >= 0:
                raise ValueError("must be a share >= 0 (0.01 = 1%)")
            return value
        if name in ("max_smape", "snaive_tolerance", "accuracy_drop_points"):
            value = float(raw)
            if not value >= 0:
                raise ValueError("must be a number >= 0")
            return value
        if name == "date_order":
            if raw not in ("day_first", "month_first"):
                raise ValueError("must be day_first or month_first")
            return raw
        if name in ("reader_max_uncompressed_mb", "reader_max_sheet_rows", "reader_max_sheet_cells",
                    "reader_max_workbook_cells"):
            value = int(raw)
            if value < 1:
                raise ValueError("must be a positive whole number")
            return value
        if name == "reader_max_compression_ratio":
            value = float(raw)
            if value < 2:
                raise ValueError("must be a ratio of at least 2")
            return value
        if name == "forecast_pass":
            if raw not in FORECAST_PASSES:
                raise ValueError(f"must be one of {', '.join(FORECAST_PASSES)}")
            return raw
        if name == "row_delta_warn_pct":
            value = float(raw)
            if value <= 0:
                raise ValueError("must be a positive percentage")
            return value
        return None if raw in (None, "") else str(raw)
    except ValueError as exc:
        raise SettingsError(f"setting {name} from {source}: {raw!r} is not valid ({exc})") from None


def _aliases(raw: Any, source: Path) -> dict:
    """Validate the yaml alias table against the contract's sheets and columns."""
    from synoforecast.lib.ingest.contract import SHEETS, normalise_name

    if not isinstance(raw, dict):
        raise SettingsError(f"{source}: aliases must map sheet -> column -> [spellings]")
    sheets = {normalise_name(s.name): s for s in SHEETS}
    table: dict[str, dict[str, list[str]]] = {}
    for sheet_name, columns in raw.items():
        sheet = sheets.get(normalise_name(sheet_name))
        if sheet is None or not isinstance(columns, dict):
            raise SettingsError(f"{source}: aliases for unknown sheet {sheet_name!r}; sheets: {[s.name for s in SHEETS]}")
        known = {normalise_name(c.header): c.header for c in sheet.columns}
        for column, spellings in columns.items():
            if normalise_name(column) not in known:
                raise SettingsError(f"{source}: aliases for unknown column {column!r} of sheet {sheet.name!r}; "
                                    f"columns: {list(known.values())}")
            if isinstance(spellings, str):
                spellings = [spellings]
            table.setdefault(sheet.name, {})[known[normalise_name(column)]] = [str(x) for x in spellings]
    return table


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    home = Path(env.get("SYNOFORECAST_HOME") or default_home()).resolve()
    config_file = Path(env.get("SYNOFORECAST_CONFIG") or home / "synoforecast.yaml")
    values: dict[str, Any] = {}
    if config_file.exists():
        loaded = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"{config_file} must hold a mapping of setting: value")
        unknown = set(loaded) - set(_ENV_KEYS) - {"aliases"}
        if unknown:
            raise SettingsError(f"{config_file}: unknown settings {sorted(unknown)}; known: {sorted(_ENV_KEYS)}")
        values = {k: _coerce(k, v, str(config_file)) for k, v in loaded.items() if k != "aliases"}
        if "aliases" in loaded:
            values["aliases"] = _aliases(loaded["aliases"], config_file)
    for name, key in _ENV_KEYS.items():
        if env.get(key) not in (None, ""):
            values[name] = _coerce(name, env[key], key)
    start, fiscal = values.get("partitions_start"), values.get("fiscal_year_start_month", 1)
    if start is not None and (start.month - fiscal) % 3:
        raise SettingsError(f"setting partitions_start {start} is not a quarter start for a fiscal year "
                            f"starting in month {fiscal}")
    data_dir = Path(values.pop("data_dir", None) or home / "data").resolve()
    inbox_dir = Path(values.pop("inbox_dir", None) or data_dir / "raw").resolve()
    dagster_home = Path(env.get("DAGSTER_HOME") or data_dir / "dagster_home").resolve()
    return Settings(home=home, data_dir=data_dir, inbox_dir=inbox_dir, dagster_home=dagster_home, **values)


def reader_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `lib.workbook.read_workbook` from the settings."""
    from synoforecast.lib.ingest.contract import AliasTable
    from synoforecast.lib.ingest.workbook import Reference
    from synoforecast.lib.ingest.xlsx_parts import Limits

    return {
        "reference": Reference.from_seeds(DBT_PROJECT_DIR / "seeds"),
        "aliases": AliasTable(extra=settings.aliases),
        "fiscal_start_month": settings.fiscal_year_start_month,
        "quarantine_max_share": settings.quarantine_max_share,
        "earliest_date": settings.earliest_sale_date,
        "date_margin_days": settings.date_margin_days,
        "date_order": settings.date_order,
        "limits": Limits(max_uncompressed_bytes=settings.reader_max_uncompressed_mb * 1024 ** 2,
                         max_compression_ratio=settings.reader_max_compression_ratio,
                         max_sheet_rows=settings.reader_max_sheet_rows, max_sheet_cells=settings.reader_max_sheet_cells,
                         max_workbook_cells=settings.reader_max_workbook_cells),
    }


FALLBACK_PARTITIONS_START = dt.date(2020, 1, 1)  # before any workbook was accepted


def effective_partitions_start(settings: Settings) -> dt.date:
    """The first partition: the configured `partitions_start`, else the first quarter of the
    data accepted so far (so no quarter before the data shows as missing), else 2020-01-01."""
    if settings.partitions_start is not None:
        return settings.partitions_start
    try:
        return dt.date.fromisoformat(settings.data_start_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return FALLBACK_PARTITIONS_START


def record_data_start(settings: Settings, first_quarter: dt.date) -> bool:
    """Remember an accepted workbook's first quarter when it is earlier than any before
    (never later: partitions already materialised stay). True when the start moved; the
    partitions follow at the next load of the definitions (`synoforecast ui`, a reload)."""
    if settings.partitions_start is not None:
        return False
    path = settings.data_start_file
    try:
        known = dt.date.fromisoformat(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        known = None
    if known is not None and known <= first_quarter:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(first_quarter.isoformat() + "\n")
    return True


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


# the embedded instance config shipped in the package (the checkout's dagster.yaml links to it)
PACKAGED_INSTANCE_CONFIG = Path(__file__).with_name("dagster.yaml")


def instance_template(settings: Settings) -> Path:
    """The home's own dagster.yaml, else the packaged one: a home outside the checkout would
    otherwise run on Dagster's defaults (no pooled storage, no run concurrency limits)."""
    own = settings.home / "dagster.yaml"
    return own if own.exists() else PACKAGED_INSTANCE_CONFIG


def ensure_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at a persistent folder (runs survive restarts) holding the
    project's instance config, unless the operator already chose one."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    template = instance_template(settings)
    target = home / "dagster.yaml"
    if not target.exists():
        shutil.copyfile(template, target)
    return home
