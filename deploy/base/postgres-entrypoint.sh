#!/usr/bin/env bash
# Entrypoint of deploy/base/postgres.Dockerfile: the part of the official postgres
# image's entrypoint the stack uses.
#   - started as root: own PGDATA and the socket folder, then re-run as `postgres`;
#   - PGDATA empty: initdb with POSTGRES_USER / POSTGRES_PASSWORD (local socket: trust,
#     TCP: scram-sha-256 from anywhere), then start the server on its socket only, run
#     /docker-entrypoint-initdb.d/*.sh (executable: run; otherwise sourced) and *.sql,
#     and stop it; a failing script stops the container and leaves PGDATA to be emptied;
#   - then exec the command (`postgres -c ...`), listening on every address unless the
#     command says otherwise.
set -euo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [[ "${1:-}" != postgres ]]; then
  exec "$@"
fi

if [[ "$(id -u)" == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

log() { printf '%s entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD: the superuser password for the first start}"
  user="${POSTGRES_USER:-postgres}"
  log "empty $PGDATA: initdb (superuser $user)"
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  read -r -a extra <<<"${POSTGRES_INITDB_ARGS:-}"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 "${extra[@]}" >/dev/null
  rm -f "$pwfile"
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  # first-start scripts: socket only, so nothing connects over TCP before they finished
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  export PGUSER="$user"
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [[ -x "$f" ]]; then log "running $f"; "$f"; else log "sourcing $f"; # shellcheck disable=SC1090
          . "$f"; fi ;;
      *.sql) log "running $f"; psql --no-psqlrc -v ON_ERROR_STOP=1 --dbname postgres -f "$f" ;;
      *) if [[ -e "$f" ]]; then log "ignoring $f"; fi ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  log "first start done"
fi

exec "$@"
