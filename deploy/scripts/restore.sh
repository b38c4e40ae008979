#!/usr/bin/env bash
# Restore one dump written by backup.sh into a database.
#
#   restore.sh DUMP_FILE TARGET_DB [--create | --replace]
#
#   --create   create TARGET_DB first (it must not exist): the safe default way; check
#              it, then swap names (RUNBOOK.md "Restore")
#   --replace  drop and re-create the objects of the dump inside an existing TARGET_DB
#              (pg_restore --clean); stop the Dagster services first
# Without either flag TARGET_DB must exist and be empty.
#
# The dump's .sha256 file, when present, must match. The restore is one transaction:
# it applies completely or not at all. Owners and grants are restored, so the roles of
# postgres/sql/roles.sql must exist (run it first on a new server).
# Connection: libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD) or RESTORE_PG_URL
# (postgresql:// URL without database). Binaries: PG_RESTORE, PSQL (default: PATH).
set -euo pipefail

PG_RESTORE="${PG_RESTORE:-pg_restore}"
PSQL="${PSQL:-psql}"

log() { printf '%s restore: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }
usage() { die "usage: restore.sh DUMP_FILE TARGET_DB [--create | --replace]"; }

(($# >= 2 && $# <= 3)) || usage
dump="$1"
target="$2"
mode="${3:-}"
[[ -z "$mode" || "$mode" == "--create" || "$mode" == "--replace" ]] || usage
[[ -f "$dump" ]] || die "no such dump: $dump"
[[ "$target" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "target database name must be a plain identifier"
command -v "$PG_RESTORE" >/dev/null || die "pg_restore not found ($PG_RESTORE)"
command -v "$PSQL" >/dev/null || die "psql not found ($PSQL)"

conn_for() {
  if [[ -n "${RESTORE_PG_URL:-}" ]]; then
    printf '%s/%s' "${RESTORE_PG_URL%/}" "$1"
  else
    printf 'dbname=%s' "$1"
  fi
}
sql() { "$PSQL" --no-psqlrc --no-password -v ON_ERROR_STOP=1 -qAt -d "$(conn_for "$1")" -c "$2"; }

if [[ -f "$dump.sha256" ]]; then
  (cd "$(dirname "$dump")" && sha256sum --check --status "$(basename "$dump").sha256") \
    || die "checksum mismatch for $dump: the file is damaged, pick another dump"
  log "checksum ok"
else
  log "no $dump.sha256: checksum not verified"
fi
"$PG_RESTORE" --list "$dump" >/dev/null || die "pg_restore cannot read $dump"

exists="$(sql postgres "select count(*) from pg_database where datname = '$target'")"
case "$mode" in
  --create)
    [[ "$exists" == 0 ]] || die "database $target exists; choose a new name or use --replace"
    sql postgres "create database \"$target\""
    log "created database $target"
    ;;
  --replace)
    [[ "$exists" == 1 ]] || die "database $target does not exist; use --create"
    ;;
  *)
    [[ "$exists" == 1 ]] || die "database $target does not exist; use --create"
    objects="$(sql "$target" "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'")"
    [[ "$objects" == 0 ]] || die "database $target is not empty; use --replace or restore into a new database"
    ;;
esac

flags=(--exit-on-error --single-transaction --no-password)
if [[ "$mode" == "--replace" ]]; then flags+=(--clean --if-exists); fi
log "restoring $dump into $target"
"$PG_RESTORE" "${flags[@]}" --dbname="$(conn_for "$target")" "$dump" || die "pg_restore failed; $target unchanged"
sql "$target" "analyze" >/dev/null
log "restored $dump into $target"
