#!/usr/bin/env bash
# Build-time helper of deploy/Dockerfile: run a pip command with the optional BuildKit
# secrets (RUN --mount=type=secret,id=pip_ca / id=pip_conf), which exist only while that
# RUN step runs and never end up in a layer.
#   pip_ca    a CA bundle (PEM) for a TLS-intercepting proxy: it replaces pip's own list, so
#             pass the whole system bundle that holds the proxy's CA, e.g.
#             /etc/ssl/certs/ca-certificates.crt
#   pip_conf  a pip.conf (index-url, extra-index-url, proxy, trusted-host, ...); it may hold
#             credentials, which is why it is a secret and not a COPY
set -euo pipefail

if [[ -s /run/secrets/pip_ca ]]; then
  export PIP_CERT=/run/secrets/pip_ca
  echo "pip-secrets: using the CA bundle given as build secret pip_ca" >&2
fi
if [[ -s /run/secrets/pip_conf ]]; then
  export PIP_CONFIG_FILE=/run/secrets/pip_conf
  echo "pip-secrets: using the pip.conf given as build secret pip_conf" >&2
fi
exec "$@"
