#!/usr/bin/env bash
# Back up the stack's databases with pg_dump's custom format, verify each dump, and
# prune old ones.
#
# On the NAS it runs inside the postgres container (whose pg_dump matches the server),
# e.g. from DSM Task Scheduler, daily, as root:
#   docker compose -f /volume1/docker/synoforecast/deploy/docker-compose.yml \
#     exec -T postgres /synoforecast/scripts/backup.sh
#
# Connection: the usual libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD) or
# BACKUP_PG_URL (a postgresql:// URL without database; each database is appended).
# Settings (environment):
#   BACKUP_DIR             where dumps go                       (default /backups)
#   BACKUP_DATABASES       space-separated database names       (default "warehouse dagster metabase")
#   BACKUP_RETENTION_DAYS  delete dumps older than this          (default 14)
#   BACKUP_KEEP_MIN        always keep this many newest per db   (default 3)
#   PG_DUMP, PG_RESTORE    the binaries to use                   (default: from PATH)
# Output per database: <db>_<UTC timestamp>.dump and .dump.sha256; BACKUP_DIR/last_success
# holds the time of the last fully successful run (monitor its age).
# Exit status: 0 all databases dumped and verified, 1 otherwise (no partial file is left).
set -euo pipefail

BACKUP_DIR="${BACKUP_DIR:-/backups}"
BACKUP_DATABASES="${BACKUP_DATABASES:-warehouse dagster metabase}"
BACKUP_RETENTION_DAYS="${BACKUP_RETENTION_DAYS:-14}"
BACKUP_KEEP_MIN="${BACKUP_KEEP_MIN:-3}"
PG_DUMP="${PG_DUMP:-pg_dump}"
PG_RESTORE="${PG_RESTORE:-pg_restore}"

log() { printf '%s backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

[[ "$BACKUP_RETENTION_DAYS" =~ ^[0-9]+$ ]] || die "BACKUP_RETENTION_DAYS must be a whole number of days"
[[ "$BACKUP_KEEP_MIN" =~ ^[0-9]+$ ]] || die "BACKUP_KEEP_MIN must be a whole number"
command -v "$PG_DUMP" >/dev/null || die "pg_dump not found ($PG_DUMP); set PG_DUMP or PATH"
command -v "$PG_RESTORE" >/dev/null || die "pg_restore not found ($PG_RESTORE); set PG_RESTORE or PATH"
mkdir -p "$BACKUP_DIR"

target_for() {
  if [[ -n "${BACKUP_PG_URL:-}" ]]; then
    printf '%s/%s' "${BACKUP_PG_URL%/}" "$1"
  else
    printf 'dbname=%s' "$1"
  fi
}

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
tmp=""
cleanup() { if [[ -n "$tmp" ]]; then rm -f "$tmp"; fi; }
trap cleanup EXIT

read -r -a databases <<<"$BACKUP_DATABASES"
((${#databases[@]} > 0)) || die "BACKUP_DATABASES is empty"

for db in "${databases[@]}"; do
  final="$BACKUP_DIR/${db}_${stamp}.dump"
  [[ ! -e "$final" ]] || final="$BACKUP_DIR/${db}_${stamp}_$$.dump"
  tmp="$final.partial"
  log "dumping $db"
  "$PG_DUMP" --format=custom --compress=6 --no-password --file="$tmp" "$(target_for "$db")" \
    || die "pg_dump of $db failed"
  # a dump that pg_restore cannot list is not a backup
  listing="$("$PG_RESTORE" --list "$tmp")" || die "pg_restore cannot read the dump of $db"
  entries="$(grep -cv '^;' <<<"$listing" || true)"
  ((entries > 0)) || log "warning: $db has no objects (a new, empty database?)"
  mv "$tmp" "$final"
  tmp=""
  (cd "$BACKUP_DIR" && sha256sum "$(basename "$final")" >"$(basename "$final").sha256")
  log "wrote $final ($(wc -c <"$final") bytes, $entries entries)"

  # retention: older than BACKUP_RETENTION_DAYS, but never the newest BACKUP_KEEP_MIN
  mapfile -t dumps < <(find "$BACKUP_DIR" -maxdepth 1 -type f -name "${db}_*.dump" -printf '%T@ %p\n' \
    | sort -rn | cut -d' ' -f2-)
  for old in "${dumps[@]:$BACKUP_KEEP_MIN}"; do
    if [[ -n "$(find "$old" -mtime +"$BACKUP_RETENTION_DAYS" -print)" ]]; then
      rm -f "$old" "$old.sha256"
      log "pruned $old"
    fi
  done
done

date -u +%Y-%m-%dT%H:%M:%SZ >"$BACKUP_DIR/last_success"
log "done: ${databases[*]}"
