# Prometheus for the synoforecast stack, from Debian bookworm's own package (Prometheus 2.42): for
# hosts without Docker Hub, built like postgres.Dockerfile on the local Debian base (debian.sh).
# The scrape configuration and the alert rules (deploy/prometheus/prometheus.yml, rules.yml) are
# copied to /etc/prometheus/ and checked with promtool at build time; mount others over them to
# change them without a rebuild. Metrics are kept 30 days in /var/lib/prometheus/metrics2 (a volume).
# Not in docker-compose.yml yet: deploy/RUNBOOK.md 4.1 says how it fits the stack.
#   DOCKER_BUILDKIT=1 docker build --network host -f deploy/base/prometheus.Dockerfile \
#     -t local/prometheus:bookworm deploy/prometheus
ARG DEBIAN_IMAGE=local/debian:bookworm
FROM ${DEBIAN_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Not pinned (DL3008): the suite is the pin, and bookworm-security must be able to update them.
# No recommends: prometheus-node-exporter is a host agent, not part of this image.
# The package's `prometheus` user is created first with a fixed uid, so a data volume keeps its
# owner across rebuilds: 990, a system uid (the package's postinst keeps an existing system user,
# and fails on one above 999).
# hadolint ignore=DL3008
RUN groupadd --system --gid 990 prometheus \
 && useradd --system --uid 990 --gid prometheus --home-dir /var/lib/prometheus --no-create-home \
      --shell /usr/sbin/nologin prometheus \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get -y upgrade \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus tzdata \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /var/lib/prometheus/metrics2 \
 && chown -R prometheus:prometheus /var/lib/prometheus

COPY prometheus.yml rules.yml /etc/prometheus/
RUN promtool check config /etc/prometheus/prometheus.yml

USER 990:990
VOLUME ["/var/lib/prometheus/metrics2"]
EXPOSE 9090
# no curl in the image: promtool asks the query API, which answers once the server is ready
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=5 \
  CMD ["promtool", "query", "instant", "http://127.0.0.1:9090", "vector(1)"]
ENTRYPOINT ["prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", \
     "--storage.tsdb.path=/var/lib/prometheus/metrics2", \
     "--storage.tsdb.retention.time=30d", \
     "--web.listen-address=:9090"]
