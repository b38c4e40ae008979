"""Where Dagster instance configs written before the `instance/` package found the pooled
SQLite storage (`module: synoforecast.sqlite_storage` in an existing DAGSTER_HOME's
dagster.yaml, which `ensure_dagster_home` never overwrites)."""

from synoforecast.instance.sqlite_storage import PooledSqliteEventLogStorage, PooledSqliteRunStorage  # noqa: F401
