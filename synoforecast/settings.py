"""Typed settings: `synoforecast.yaml` in the project home, overridden by SYNOFORECAST_* env.

One pydantic model declares every setting with its type, range and variable
(`SYNOFORECAST_<NAME>`), so the yaml file and the environment are checked by the same rules
and a bad value is refused naming the setting, where it came from and the allowed range.
Everything has a default that works on a laptop: the project home is the checkout (or the
current directory when installed elsewhere), data lives under `<home>/data`, the warehouse
is an embedded PostgreSQL unless SYNOFORECAST_WAREHOUSE_URL is set.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from synoforecast_dbt import PROJECT_DIR as DBT_PROJECT_DIR  # editable: the checkout's; wheel: site-packages

PACKAGE_DIR = Path(__file__).resolve().parent
# The source checkout this package runs from (an editable install), else None (a wheel)
CHECKOUT_DIR: Path | None = (
    PACKAGE_DIR.parent
    if (PACKAGE_DIR.parent / "pyproject.toml").exists() and (PACKAGE_DIR.parent / "workspace.yaml").exists()
    else None
)


ForecastPass = Literal["rolling", "per_partition"]
WAREHOUSE_URL_VAR = "SYNOFORECAST_WAREHOUSE_URL"


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the setting."""


def default_home() -> Path:
    if CHECKOUT_DIR is not None:
        return CHECKOUT_DIR
    return Path.cwd().resolve()


def _iso_date(raw: Any) -> Any:
    """ISO dates only (pydantic would also read a number as a Unix timestamp)."""
    if raw is None or isinstance(raw, dt.date):
        return raw
    try:
        return dt.date.fromisoformat(str(raw).strip())
    except ValueError:
        raise ValueError("must be a date written YYYY-MM-DD") from None


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
Share = Annotated[float, Field(ge=0, lt=1)]  # 0 <= x < 1
NonNegative = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]


_DASK_ADDRESS = re.compile(r"(?:(?:tcp|tls|ws|wss)://)?(?:\[[0-9A-Fa-f:]+\]|[A-Za-z0-9._-]+):\d{1,5}")


def _default_workers() -> int:
    return min(2, os.cpu_count() or 1)


class Settings(BaseModel):
    """Every setting; the yaml key is the field name, the variable `SYNOFORECAST_<NAME>`
    (VARIABLES lists the exceptions)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path
    data_dir: Path
    inbox_dir: Path
    dagster_home: Path
    warehouse_url: str | None = None
    # None = start at the data: the first quarter of the earliest accepted workbook (data_start_file)
    partitions_start: IsoDate | None = None
    fiscal_year_start_month: int = Field(1, ge=1, le=12)
    season_length: int = Field(4, ge=1, le=12)
    top_customers_n: int = Field(20, ge=1, le=10_000)
    quarantine_max_share: Share = 0.02
    row_delta_warn_pct: float = Field(20.0, gt=0)
    duplicate_share_warn: Share = 0.01
    null_share_warn: Share = 0.5
    # guard rails: plausible sale dates, how far a sheet or cohort total may shrink against
    # the published snapshot before publication stops, how long a CLI run waits for a
    # concurrency limit held by another run
    earliest_sale_date: IsoDate = dt.date(2000, 1, 1)
    date_margin_days: int = Field(0, ge=0)  # a sale dated after its export is quarantined (days of tolerance)
    # text dates whose column shows no order (no day or month above 12)
    date_order: Literal["day_first", "month_first"] = "day_first"
    # what one workbook may hold before it is refused unread (lib/ingest/xlsx_parts.py Limits)
    reader_max_uncompressed_mb: PositiveInt = 2048
    reader_max_compression_ratio: float = Field(50.0, ge=2)
    reader_max_sheet_rows: PositiveInt = 1_048_576
    reader_max_sheet_cells: PositiveInt = 15_000_000
    reader_max_workbook_cells: PositiveInt = 20_000_000
    shrink_max_share: float = Field(0.5, gt=0, le=1)
    limit_wait_seconds: NonNegative = 300.0
    # restatements of published quarters (lib/ingest/restatements.py): listed in the snapshot's metadata and
    # the run's summary above the first share, the snapshot_restatements check warns above the second
    restatement_material_share: NonNegative = 0.01
    restatement_warn_share: NonNegative = 0.05
    # accuracy gates (AccuracyThresholdsResource): sMAPE ceiling in percent, tolerance over
    # seasonal naive in percent, quarter-on-quarter worsening in sMAPE points that alerts
    max_smape: NonNegative = 30.0
    snaive_tolerance: NonNegative = 0.0
    accuracy_drop_points: NonNegative = 10.0
    # days of Dagster run history the embedded instance keeps (defs/housekeeping.py)
    history_retention_days: int = Field(30, ge=1, le=3650)
    # freshness (lib/monitoring/freshness.py): the newest accepted export may be this many days old; a closed
    # quarter's forecast must be published this many days after the quarter ended
    freshness_max_age_days: int = Field(8, ge=1, le=365)
    quarter_close_grace_days: int = Field(10, ge=0, le=90)
    # "rolling": one pass of fits over a run's as-of quarters, kept in ops.forecast_fits;
    # "per_partition": every partition refits its own backtest (the benchmark's baseline)
    forecast_pass: ForecastPass = "rolling"
    # processes a run's fits, forecasts and landing are spread over (the run's and n - 1
    # workers, ~370 MB each on the default sample); 1 keeps everything in the run's process
    forecast_workers: int = Field(default_factory=_default_workers, ge=1, le=64)
    # a dask.distributed scheduler (tcp://dask-scheduler:8786): the rolling pass's fits run on its
    # workers instead of the local ones; unset = local. An unreachable one fails the step
    dask_scheduler: str | None = None
    # how often the inbox and snapshot-downstream sensors look for work (the landing and heal
    # sensors every second interval): a dropped export starts within about two intervals (the
    # file must keep its size over two ticks). Longer spares a NAS's CPU; the Docker stack test uses 5
    sensor_interval_seconds: int = Field(30, ge=5, le=3600)
    # the platform's own log lines (lib/logs.py): "text" for people, "json" (one object per line) for aggregation
    log_format: Literal["text", "json"] = "text"
    # extra header spellings, yaml only: {"SVR-RM": {"Units": ["Menge", "Stück"]}}
    aliases: dict = Field(default_factory=dict)

    @field_validator("partitions_start")
    @classmethod
    def _quarter_start(cls, value: dt.date | None) -> dt.date | None:
        if value is not None and value.day != 1:
            raise ValueError("must be a quarter start (first day of a quarter) such as 2020-01-01")
        return value

    @field_validator("dask_scheduler")
    @classmethod
    def _dask_address(cls, value: str | None) -> str | None:
        if value is not None and not _DASK_ADDRESS.fullmatch(value.strip()):
            raise ValueError("must be a Dask scheduler address with its port, such as tcp://dask-scheduler:8786")
        return value.strip() if value is not None else None

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


# Settings read from synoforecast.yaml or the environment -> their variable. Derived from the
# model; `home` and `dagster_home` come from SYNOFORECAST_HOME / DAGSTER_HOME only, and
# `aliases` from the yaml only.
_NOT_CONFIGURABLE = {"home", "dagster_home", "aliases"}
_VARIABLE_EXCEPTIONS = {"inbox_dir": "SYNOFORECAST_INBOX"}
VARIABLES: dict[str, str] = {
    name: _VARIABLE_EXCEPTIONS.get(name, f"SYNOFORECAST_{name.upper()}")
    for name in Settings.model_fields
    if name not in _NOT_CONFIGURABLE
}


def _reason(error: dict, name: str) -> str:
    """One pydantic error as today's plain rule ("must be between 1 and 12")."""
    kind, field = error["type"], Settings.model_fields[name]
    bounds = {type(m).__name__: m for m in field.metadata}
    low = next((getattr(bounds[k], k.lower()) for k in ("Ge", "Gt") if k in bounds), None)
    high = next((getattr(bounds[k], k.lower()) for k in ("Le", "Lt") if k in bounds), None)
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        if "Ge" in bounds and "Le" in bounds:
            return f"must be between {low} and {high}"
        rules = ([f">= {low}" if "Ge" in bounds else f"> {low}"] if low is not None else []) + (
            [f"<= {high}" if "Le" in bounds else f"< {high}"] if high is not None else []
        )
        return "must be " + " and ".join(rules)
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type", "finite_number"):
        return "must be a number"
    if kind == "literal_error":
        return "must be one of " + ", ".join(str(x) for x in field.annotation.__args__)
    return error["msg"].removeprefix("Value error, ")


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
            raise SettingsError(
                f"{source}: aliases for unknown sheet {sheet_name!r}; sheets: {[s.name for s in SHEETS]}"
            )
        known = {normalise_name(c.header): c.header for c in sheet.columns}
        for column, spellings in columns.items():
            if normalise_name(column) not in known:
                raise SettingsError(
                    f"{source}: aliases for unknown column {column!r} of sheet {sheet.name!r}; "
                    f"columns: {list(known.values())}"
                )
            if isinstance(spellings, str):
                spellings = [spellings]
            table.setdefault(sheet.name, {})[known[normalise_name(column)]] = [str(x) for x in spellings]
    return table


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings from the yaml file, then the environment (a non-blank variable wins)."""
    env = os.environ if env is None else env
    home = Path(env.get("SYNOFORECAST_HOME") or default_home()).resolve()
    config_file = Path(env.get("SYNOFORECAST_CONFIG") or home / "synoforecast.yaml")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if config_file.exists():
        loaded = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"{config_file} must hold a mapping of setting: value")
        unknown = set(loaded) - set(VARIABLES) - {"aliases"}
        if unknown:
            raise SettingsError(f"{config_file}: unknown settings {sorted(unknown)}; known: {sorted(VARIABLES)}")
        values = {k: v for k, v in loaded.items() if k != "aliases"}
        sources = dict.fromkeys(values, str(config_file))
        if "aliases" in loaded:
            values["aliases"] = _aliases(loaded["aliases"], config_file)
    for name, key in VARIABLES.items():
        if env.get(key) not in (None, ""):
            values[name], sources[name] = env[key], key
    values = {k: (None if v == "" else v) for k, v in values.items()}  # an empty yaml value = unset
    data_dir = Path(values.pop("data_dir", None) or home / "data").resolve()
    inbox_dir = Path(values.pop("inbox_dir", None) or data_dir / "raw").resolve()
    dagster_home = Path(env.get("DAGSTER_HOME") or data_dir / "dagster_home").resolve()
    values = {k: v for k, v in values.items() if v is not None or k in ("warehouse_url", "partitions_start")}
    try:
        settings = Settings(home=home, data_dir=data_dir, inbox_dir=inbox_dir, dagster_home=dagster_home, **values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0])
        raise SettingsError(
            f"setting {name} from {sources.get(name, 'the defaults')}: {values.get(name)!r} "
            f"is not valid ({_reason(error, name)})"
        ) from None
    start, fiscal = settings.partitions_start, settings.fiscal_year_start_month
    if start is not None and (start.month - fiscal) % 3:
        raise SettingsError(
            f"setting partitions_start {start} is not a quarter start for a fiscal year starting in month {fiscal}"
        )
    return settings


def configured_warehouse_url(settings: Settings | None = None) -> str | None:
    """The warehouse URL the operator configured, None for the embedded warehouse.

    The one place it is worked out: SYNOFORECAST_WAREHOUSE_URL as set now (read at call
    time, so a process that sets it after loading the settings, such as the tests switching
    warehouses per module, is followed), else `warehouse_url` in synoforecast.yaml."""
    return os.environ.get(WAREHOUSE_URL_VAR) or (settings or get_settings()).warehouse_url or None


def warehouse_url(settings: Settings | None = None) -> str:
    """The warehouse to connect to, with the platform's schemas in place: the configured one,
    else the embedded PostgreSQL under the data folder (started if needed)."""
    from synoforecast.lib.warehouse.connection import ready_url

    settings = settings or get_settings()
    return ready_url(configured_warehouse_url(settings), settings.pgdata_dir)


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
        "limits": Limits(
            max_uncompressed_bytes=settings.reader_max_uncompressed_mb * 1024**2,
            max_compression_ratio=settings.reader_max_compression_ratio,
            max_sheet_rows=settings.reader_max_sheet_rows,
            max_sheet_cells=settings.reader_max_sheet_cells,
            max_workbook_cells=settings.reader_max_workbook_cells,
        ),
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
    project's instance config, unless the operator already chose one. Refuses, in one
    line, an instance config that reads variables this environment does not set: the
    image's DAGSTER_HOME holds the Compose stack's PostgreSQL-backed instance, and a command
    run outside the stack would otherwise fail with a page of Dagster config errors. A new
    home whose template reads such variables gets the packaged (embedded) config instead."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        template = instance_template(settings)
        if unset_instance_variables(template):  # the stack's config (the image's /app), outside the stack:
            template = PACKAGED_INSTANCE_CONFIG  # a new home runs on the embedded default
        shutil.copyfile(template, target)
    missing = unset_instance_variables(target)
    if missing:
        raise SettingsError(
            f"the Dagster instance in DAGSTER_HOME={home} reads {', '.join(missing)} from the environment, "
            "and they are not set: it is the Compose stack's, whose containers set them (run the command "
            "there: docker compose exec user-code synoforecast ...). Outside the stack, set DAGSTER_HOME "
            "to a folder of your own for the embedded default (SQLite storage)"
        )
    return home


def unset_instance_variables(config: Path) -> list[str]:
    """The environment variables a dagster.yaml reads (``{env: NAME}``) that are not set."""

    def names(node: Any):
        if isinstance(node, dict):
            if set(node) == {"env"} and isinstance(node["env"], str):
                yield node["env"]
            else:
                for value in node.values():
                    yield from names(value)
        elif isinstance(node, list):
            for value in node:
                yield from names(value)

    loaded = yaml.safe_load(config.read_text()) or {}
    return sorted({name for name in names(loaded) if not os.environ.get(name)})
