#!/usr/bin/env bash
# Entrypoint of the synoforecast image: in the stack, put this image's instance config into
# DAGSTER_HOME (on the /data volume, which may be an empty NAS bind mount), then run
# the service's command. The file is replaced on every start, so an upgraded image
# always runs with its own dagster.yaml.
set -euo pipefail

: "${DAGSTER_HOME:=/data/dagster_home}"
mkdir -p "$DAGSTER_HOME" "${NUMBA_CACHE_DIR:-/data/cache/numba}"
if [[ ! -w "$DAGSTER_HOME" ]]; then
  echo "entrypoint: $DAGSTER_HOME is not writable by uid $(id -u); chown the data folder (RUNBOOK.md 2.2)" >&2
  exit 1
fi
# Only in the stack, whose environment holds the instance's DAGSTER_PG_* variables: a command
# run outside it (`docker run <image> synoforecast demo`) keeps the DAGSTER_HOME it was given,
# where the CLI either runs on the embedded default or says in one line what is missing.
if [[ -n "${DAGSTER_PG_HOST:-}" ]]; then
  # atomic: the three Dagster containers start at the same time and share the folder
  tmp="$(mktemp "$DAGSTER_HOME/.dagster.yaml.XXXXXX")"
  cp "${SYNOFORECAST_INSTANCE_TEMPLATE:-/app/deploy/dagster.yaml}" "$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$DAGSTER_HOME/dagster.yaml"
fi

exec "$@"
