#!/usr/bin/env bash
# First start of the postgres container only (docker-entrypoint-initdb.d runs when the
# data directory is empty): create the synoforecast roles and databases.
# Passwords come from the container's environment (deploy/.env), never from a file.
set -euo pipefail

: "${SYNOFORECAST_DB_PASSWORD:?set SYNOFORECAST_DB_PASSWORD in .env}"
: "${ANALYST_DB_PASSWORD:?set ANALYST_DB_PASSWORD in .env}"
: "${DAGSTER_PG_PASSWORD:?set DAGSTER_PG_PASSWORD in .env}"
: "${METABASE_DB_PASSWORD:?set METABASE_DB_PASSWORD in .env}"

psql --no-psqlrc -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v platform_password="$SYNOFORECAST_DB_PASSWORD" \
  -v analyst_password="$ANALYST_DB_PASSWORD" \
  -v dagster_password="$DAGSTER_PG_PASSWORD" \
  -v metabase_password="$METABASE_DB_PASSWORD" \
  -v warehouse_db="${WAREHOUSE_DB:-warehouse}" \
  -v dagster_db="${DAGSTER_PG_DB:-dagster}" \
  -v metabase_db="${METABASE_DB:-metabase}" \
  -f "${SYNOFORECAST_SQL_DIR:-/synoforecast/sql}/roles.sql"
