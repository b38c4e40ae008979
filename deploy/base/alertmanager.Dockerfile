# Alertmanager for the synoforecast stack, from Debian bookworm's own package (Alertmanager 0.25):
# for hosts without Docker Hub, built like postgres.Dockerfile on the local Debian base (debian.sh).
# Its configuration is a template (deploy/alertmanager/alertmanager.yml, copied to
# /etc/alertmanager/): the entrypoint render-config.sh fills it from the environment (the chat
# webhook and the SMTP_* variables), writes the SMTP password to a file of its own, checks the
# result with amtool and starts Alertmanager on it (one instance: no cluster gossip). Silences and
# notification state live in /var/lib/prometheus/alertmanager (a volume).
# Not in docker-compose.yml yet: deploy/RUNBOOK.md 4.1 says how it fits the stack.
#   DOCKER_BUILDKIT=1 docker build --network host -f deploy/base/alertmanager.Dockerfile \
#     -t local/alertmanager:bookworm deploy/alertmanager
ARG DEBIAN_IMAGE=local/debian:bookworm
FROM ${DEBIAN_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Not pinned (DL3008): the suite is the pin, and bookworm-security must be able to update them.
# ca-certificates: to verify the SMTP server (STARTTLS) and https webhooks.
# The package's `prometheus` user is created first with a fixed uid, so a data volume keeps its
# owner across rebuilds: 990, a system uid (the package's postinst keeps an existing system user,
# and fails on one above 999).
# hadolint ignore=DL3008
RUN groupadd --system --gid 990 prometheus \
 && useradd --system --uid 990 --gid prometheus --home-dir /var/lib/prometheus --no-create-home \
      --shell /usr/sbin/nologin prometheus \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get -y upgrade \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      prometheus-alertmanager ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /var/lib/prometheus/alertmanager /run/alertmanager /etc/alertmanager \
 && chown -R prometheus:prometheus /var/lib/prometheus /run/alertmanager

COPY alertmanager.yml /etc/alertmanager/alertmanager.yml
COPY render-config.sh /usr/local/bin/render-config.sh

USER 990:990
VOLUME ["/var/lib/prometheus/alertmanager"]
EXPOSE 9093
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=5 \
  CMD ["amtool", "--alertmanager.url=http://127.0.0.1:9093", "config", "show"]
ENTRYPOINT ["render-config.sh"]
CMD ["--storage.path=/var/lib/prometheus/alertmanager", \
     "--web.listen-address=:9093", \
     "--cluster.listen-address="]
