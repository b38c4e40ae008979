"""Dagster instance helpers: pooled SQLite storage, runs whose process died, retention of history."""
