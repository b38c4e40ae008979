#!/usr/bin/env bash
# Check a deploy/.env before `docker compose up`: every password set, long enough,
# distinct and URL-safe; the NAS folders exist; Compose accepts the stack.
#   scripts/preflight.sh [ENV_FILE]     (default: the .env next to docker-compose.yml)
# Exit 0 when everything is fine; otherwise prints one line per problem and exits 1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_file="${1:-$here/.env}"
[[ -f "$env_file" ]] || { echo "preflight: $env_file not found (cp .env.example .env)" >&2; exit 1; }

problems=0
problem() { echo "preflight: $*" >&2; problems=$((problems + 1)); }

value_of() {
  # last assignment wins, as in Compose; no shell evaluation of the file
  grep -E "^$1=" "$env_file" | tail -n 1 | cut -d= -f2- || true
}

passwords=(POSTGRES_SUPERUSER_PASSWORD SYNOFORECAST_DB_PASSWORD ANALYST_DB_PASSWORD DAGSTER_PG_PASSWORD METABASE_DB_PASSWORD)
seen=" "
for name in "${passwords[@]}"; do
  value="$(value_of "$name")"
  if [[ -z "$value" ]]; then
    problem "$name is empty (openssl rand -hex 24)"
    continue
  fi
  ((${#value} >= 16)) || problem "$name is shorter than 16 characters"
  [[ "$value" =~ ^[A-Za-z0-9._~-]+$ ]] || problem "$name must be URL-safe (letters, digits, . _ ~ -)"
  [[ "$seen" != *" $value "* ]] || problem "$name reuses another role's password"
  seen="$seen$value "
done

for name in INBOX_HOST_DIR PGDATA_HOST_DIR DATA_HOST_DIR BACKUP_HOST_DIR; do
  value="$(value_of "$name")"
  if [[ -n "$value" && "$value" == /* && ! -d "$value" ]]; then
    problem "$name=$value does not exist (create the shared folder in DSM first)"
  fi
done

# DSM ships either the `docker compose` plugin or a standalone `docker-compose` (v2)
compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
fi
if ((${#compose[@]} > 0)); then
  "${compose[@]}" --env-file "$env_file" -f "$here/docker-compose.yml" config --quiet \
    || problem "Compose rejects the stack (${compose[*]} config)"
else
  echo "preflight: no docker compose here, stack not validated" >&2
fi

if ((problems > 0)); then
  echo "preflight: $problems problem(s)" >&2
  exit 1
fi
echo "preflight: ok"
