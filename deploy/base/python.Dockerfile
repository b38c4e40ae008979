# Python 3.11 base for deploy/Dockerfile (PYTHON_IMAGE), from Debian bookworm's own
# packages: for hosts without Docker Hub. FROM the image deploy/base/debian.sh makes.
#   DOCKER_BUILDKIT=1 docker build --network host -f deploy/base/python.Dockerfile \
#     -t local/python:3.11-bookworm deploy/base
ARG DEBIAN_IMAGE=local/debian:bookworm
FROM ${DEBIAN_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Not pinned (DL3008): the suite is the pin, and bookworm-security must be able to update them
# python3-venv brings ensurepip (pip, setuptools) from Debian; libgomp1 for the
# forecasting libraries' OpenMP code; tzdata so TZ works
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get -y upgrade \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates libgomp1 tzdata \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && python --version | grep -q '^Python 3\.11\.'

ENV LANG=C.UTF-8
CMD ["python3"]
