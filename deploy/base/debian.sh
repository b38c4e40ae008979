#!/usr/bin/env bash
# Make the Debian bookworm base image the other images build FROM, without Docker Hub:
# debootstrap a minimal root file system from a Debian mirror and `docker import` it.
#
#   deploy/base/debian.sh [IMAGE]          (default IMAGE: local/debian:bookworm; run as root)
#
# Environment:
#   DEBIAN_MIRROR      the mirror to bootstrap from (default: the first Debian mirror in
#                      /etc/apt/sources.list*, else http://deb.debian.org/debian)
#   DEBIAN_SECURITY    the security mirror written into the image's apt sources
#                      (default: the mirror's host with /debian-security)
#   BASE_CACHE_DIR     keep the root file system tarball here and reuse it while it is
#                      younger than BASE_CACHE_DAYS (default 7); empty = no cache
#   DOCKER             the docker client (default: docker)
# Every image built FROM it runs `apt-get update && apt-get upgrade`, so a cached
# tarball never ships packages older than the mirror's.
set -euo pipefail

image="${1:-local/debian:bookworm}"
suite=bookworm
arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
DOCKER="${DOCKER:-docker}"
BASE_CACHE_DAYS="${BASE_CACHE_DAYS:-7}"

log() { printf '%s debian-base: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

detect_mirror() {
  local found=""
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    # deb822: the URIs line of a stanza whose Suites name the suite (not -security)
    found="$(awk -v s="$suite" '/^URIs:/ {u=$2} /^Suites:/ && $0 ~ " "s"( |$)" {print u; exit}' \
      /etc/apt/sources.list.d/*.sources)"
  fi
  if [[ -z "$found" && -f /etc/apt/sources.list ]]; then
    found="$(awk -v s="$suite" '$1 == "deb" && $3 == s {print $2; exit}' /etc/apt/sources.list)"
  fi
  printf '%s' "${found:-http://deb.debian.org/debian}"
}

mirror="${DEBIAN_MIRROR:-$(detect_mirror)}"
security="${DEBIAN_SECURITY:-${mirror%/debian}/debian-security}"
cache=""
if [[ -n "${BASE_CACHE_DIR:-}" ]]; then
  mkdir -p "$BASE_CACHE_DIR"
  cache="$BASE_CACHE_DIR/debian-$suite-minbase-$arch.tar"
fi

if [[ -n "$cache" && -s "$cache" && -n "$(find "$cache" -mtime -"$BASE_CACHE_DAYS" -print)" ]]; then
  log "reusing $cache (younger than $BASE_CACHE_DAYS days)"
else
  command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  log "debootstrap --variant=minbase $suite from $mirror"
  debootstrap --variant=minbase --arch="$arch" "$suite" "$root" "$mirror" >/dev/null \
    || die "debootstrap failed (see $root/debootstrap/debootstrap.log)"
  cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
SOURCES
  # no downloaded packages, lists or logs in the image
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/tmp/*
  out="${cache:-$root.tar}"
  tar --numeric-owner -C "$root" -cf "$out.partial" .
  mv -f "$out.partial" "$out"
  cache="$out"
fi

log "docker import -> $image"
"$DOCKER" import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$cache" "$image" >/dev/null
if [[ -z "${BASE_CACHE_DIR:-}" ]]; then rm -f "$cache"; fi
log "done: $image"
