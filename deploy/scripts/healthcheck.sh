#!/usr/bin/env bash
# Container health check for the synoforecast image (HEALTHCHECK in deploy/Dockerfile).
# SYNOFORECAST_SERVICE selects the probe:
#   user-code  the gRPC code server answers its health RPC
#   webserver  GET /server_info answers 200 (the UI is up and its storage reachable)
#   daemon     the daemon wrote a heartbeat recently (dagster-daemon liveness-check)
set -euo pipefail

service="${SYNOFORECAST_SERVICE:-user-code}"
case "$service" in
  user-code)
    exec dagster api grpc-health-check --host 127.0.0.1 --port "${DAGSTER_GRPC_PORT:-4000}"
    ;;
  webserver)
    exec python - "${DAGSTER_WEBSERVER_PORT:-3000}" <<'PY'
import sys
import urllib.request

with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/server_info", timeout=8) as response:
    sys.exit(0 if response.status == 200 else 1)
PY
    ;;
  daemon)
    exec dagster-daemon liveness-check
    ;;
  *)
    echo "healthcheck: unknown SYNOFORECAST_SERVICE '$service'" >&2
    exit 2
    ;;
esac
