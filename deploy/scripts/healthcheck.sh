#!/usr/bin/env bash
# Container health check for the synoforecast image (HEALTHCHECK in deploy/Dockerfile).
# SYNOFORECAST_SERVICE selects the probe:
#   user-code  the gRPC code server answers its health RPC (service DagsterApi: SERVING)
#   webserver  GET /server_info answers 200 (the UI is up and its storage reachable)
#   daemon     the daemon wrote a heartbeat recently (dagster-daemon liveness-check)
#   metrics    GET /metrics of `synoforecast metrics serve` answers 200
#   dbt-docs   GET /healthz of `synoforecast dbt-docs serve` answers 200
set -euo pipefail

# GET http://127.0.0.1:PORT/PATH answers 200 (Python's urllib: the slim image has no curl)
http_ok() {
  exec python - "$1" "$2" <<'PY'
import sys
import urllib.request

with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=8) as response:
    sys.exit(0 if response.status == 200 else 1)
PY
}

service="${SYNOFORECAST_SERVICE:-user-code}"
case "$service" in
  user-code)
    # the gRPC health service the code server registers, as `dagster api grpc-health-check`
    # asks it, without importing dagster (a fraction of the CPU, every 30 s on a NAS)
    exec python - "${DAGSTER_GRPC_PORT:-4000}" <<'PY'
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

with grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}") as channel:
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="DagsterApi"), timeout=8)
    except grpc.RpcError as exc:
        sys.exit(f"code server not serving: {exc.code().name}")
sys.exit(0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1)
PY
    ;;
  webserver)
    http_ok "${DAGSTER_WEBSERVER_PORT:-3000}" /server_info
    ;;
  daemon)
    exec dagster-daemon liveness-check
    ;;
  metrics)
    # the endpoint answers (a source that is down still answers 200, with scrape_source_up 0)
    http_ok "${SYNOFORECAST_METRICS_PORT:-9109}" /metrics
    ;;
  dbt-docs)
    http_ok "${SYNOFORECAST_DBT_DOCS_PORT:-8580}" /healthz
    ;;
  *)
    echo "healthcheck: unknown SYNOFORECAST_SERVICE '$service'" >&2
    exit 2
    ;;
esac
