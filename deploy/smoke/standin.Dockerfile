# The Metabase stand-in of the smoke stack (docker-compose.smoke.yml): the project's
# HTTP stand-in (synoforecast_tests/support/http_standin.py) in a small image of its own,
# FROM the Debian-built Python base. Build from the repository root:
#   DOCKER_BUILDKIT=1 docker build --network host -f deploy/smoke/standin.Dockerfile \
#     --build-arg PYTHON_IMAGE=local/python:3.11-bookworm -t local/metabase-standin:smoke .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY deploy/scripts/pip-secrets.sh /usr/local/bin/pip-secrets
# psycopg: a schema sync reads the warehouse's information_schema, as Metabase does
RUN --mount=type=secret,id=pip_ca --mount=type=secret,id=pip_conf \
    python3 -m venv /opt/venv && pip-secrets pip install --no-cache-dir "psycopg[binary]>=3.2,<4"
WORKDIR /standin
COPY synoforecast_tests/__init__.py synoforecast_tests/
COPY synoforecast_tests/support/__init__.py synoforecast_tests/support/http_standin.py synoforecast_tests/support/standin_server.py synoforecast_tests/support/
USER 10002:10002
CMD ["python", "-m", "synoforecast_tests.support.standin_server", "--host", "0.0.0.0", "--port", "3000", "--api-key", "change-me"]
