# PostgreSQL for the `postgres` service (POSTGRES_IMAGE), from Debian bookworm's own
# packages (PostgreSQL 15): for hosts without Docker Hub. It behaves like the official
# image as far as the stack relies on it: POSTGRES_USER / POSTGRES_PASSWORD on the first
# start, /docker-entrypoint-initdb.d/*.sh and *.sql run once on an empty data directory
# with the server listening on its socket only, PGDATA=/var/lib/postgresql/data, and the
# command `postgres -c ...`. The client tools (psql, pg_dump, pg_restore, pg_isready)
# match the server, which scripts/backup.sh and restore.sh rely on.
#   DOCKER_BUILDKIT=1 docker build --network host -f deploy/base/postgres.Dockerfile \
#     -t local/postgres:15-bookworm deploy/base
ARG DEBIAN_IMAGE=local/debian:bookworm
FROM ${DEBIAN_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Not pinned (DL3008): the suite is the pin, and bookworm-security must be able to update them
# No cluster from the package's postinst: the entrypoint creates it in PGDATA.
# hadolint ignore=DL3008
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get -y upgrade \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 tzdata \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data

ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8

COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
STOPSIGNAL SIGINT
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=12 \
  CMD ["pg_isready", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"]
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
