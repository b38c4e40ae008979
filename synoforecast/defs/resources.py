"""Resources shared by the domains: the warehouse and the dbt CLI."""


import os
import shutil
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from synoforecast.lib import warehouse
from synoforecast.settings import DBT_PROJECT_DIR, get_settings

_READY: dict[str, str] = {}


class WarehouseResource(dg.ConfigurableResource):
    """The PostgreSQL warehouse; embedded (pgserver) when no URL is configured."""

    url: str | None = None

    def get_url(self) -> str:
        configured = self.url or os.environ.get("SYNOFORECAST_WAREHOUSE_URL") or get_settings().warehouse_url
        key = configured or str(get_settings().pgdata_dir)
        if key not in _READY:  # start/verify once per process and warehouse
            resolved = warehouse.resolve_url(configured, get_settings().pgdata_dir)
            warehouse.ensure_schema(resolved)
            _READY[key] = resolved
        return _READY[key]

    def dbt_env(self) -> dict[str, str]:
        return warehouse.parse_url(self.get_url()).as_env()


def dbt_executable() -> str:
    """dbt from this interpreter's environment, so an un-activated venv still works."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def build_resources() -> dict[str, object]:
    return {
        # no URL captured at import: get_url() reads SYNOFORECAST_WAREHOUSE_URL when a run needs it
        "warehouse": WarehouseResource(),
        "dbt": DbtCliResource(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR),
                              dbt_executable=dbt_executable()),
    }
