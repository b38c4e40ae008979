#!/usr/bin/env bash
# Render Alertmanager's configuration from a template (deploy/alertmanager/alertmanager.yml) and
# the environment, check it with amtool, and, as the image's entrypoint, start Alertmanager on it.
# Alertmanager does not expand environment variables in its configuration: this does.
#
#   render-config.sh render TEMPLATE OUTPUT      render and check only (what the tests run)
#   render-config.sh [ALERTMANAGER FLAGS...]     entrypoint: render $ALERTMANAGER_TEMPLATE to
#                                                $ALERTMANAGER_CONFIG, then exec prometheus-alertmanager
#
# Environment (the SMTP_* variables are the platform's own email route's, deploy/.env):
#   ALERTMANAGER_WEBHOOK_URL   chat webhook receiving Alertmanager's JSON (required)
#   SMTP_HOST, SMTP_FROM, SMTP_TO (comma-separated recipients)        (required)
#   SMTP_PORT (587), SMTP_STARTTLS (true; false only for a relay without TLS)
#   SMTP_USERNAME, SMTP_PASSWORD  AUTH, both or neither. The password is written to a file only
#       Alertmanager's user reads (next to OUTPUT), named by smtp_auth_password_file: it never
#       enters the rendered configuration. SMTP_PASSWORD_FILE instead names a file that holds it
#       (a Docker secret).
set -euo pipefail

die() { printf 'alertmanager config: %s\n' "$*" >&2; exit 1; }

render() {
  local template="$1" out="$2" name value
  [[ -r "$template" ]] || die "template $template not readable"
  export SMTP_PORT="${SMTP_PORT:-587}" SMTP_STARTTLS="${SMTP_STARTTLS:-true}" SMTP_USERNAME="${SMTP_USERNAME:-}"
  for name in ALERTMANAGER_WEBHOOK_URL SMTP_HOST SMTP_FROM SMTP_TO; do
    [[ -n "${!name:-}" ]] || die "$name is not set (required; see deploy/RUNBOOK.md 4.2)"
  done
  case "$SMTP_STARTTLS" in true | false) ;; *) die "SMTP_STARTTLS must be true or false, not '$SMTP_STARTTLS'" ;; esac
  [[ "$SMTP_PORT" =~ ^[0-9]+$ ]] || die "SMTP_PORT must be a number, not '$SMTP_PORT'"
  mkdir -p "$(dirname "$out")"
  if [[ -n "${SMTP_PASSWORD_FILE:-}" ]]; then
    [[ -r "$SMTP_PASSWORD_FILE" ]] || die "SMTP_PASSWORD_FILE $SMTP_PASSWORD_FILE not readable"
  elif [[ -n "${SMTP_PASSWORD:-}" ]]; then
    SMTP_PASSWORD_FILE="$(dirname "$out")/smtp_password"
    (umask 077 && printf '%s' "$SMTP_PASSWORD" >"$SMTP_PASSWORD_FILE")
  else
    SMTP_PASSWORD_FILE=""
  fi
  export SMTP_PASSWORD_FILE
  if [[ -n "$SMTP_USERNAME" && -z "$SMTP_PASSWORD_FILE" ]] || [[ -z "$SMTP_USERNAME" && -n "$SMTP_PASSWORD_FILE" ]]; then
    die "SMTP_USERNAME and SMTP_PASSWORD (or SMTP_PASSWORD_FILE) must be set together"
  fi
  # values go between single quotes in YAML: a quote or a line break would change the file's meaning
  for name in ALERTMANAGER_WEBHOOK_URL SMTP_HOST SMTP_FROM SMTP_TO SMTP_USERNAME SMTP_PASSWORD_FILE; do
    value="${!name}"
    [[ "$value" != *"'"* && "$value" != *$'\n'* ]] || die "$name must not hold a quote (') or a line break"
  done
  # ${NAME} of these variables, and nothing else, replaced by its value (bash itself: no envsubst
  # needed; `&` in a value stays literal, whatever bash 5.2's patsub_replacement says)
  shopt -u patsub_replacement 2>/dev/null || true
  local text
  text="$(<"$template")"
  for name in ALERTMANAGER_WEBHOOK_URL SMTP_HOST SMTP_PORT SMTP_FROM SMTP_TO SMTP_USERNAME SMTP_PASSWORD_FILE SMTP_STARTTLS; do
    value="${!name}"
    text="${text//"\${$name}"/"$value"}"
  done
  printf '%s\n' "$text" >"$out.partial"
  if command -v amtool >/dev/null; then
    amtool check-config "$out.partial" >/dev/null || { amtool check-config "$out.partial" >&2 || true; die "the rendered configuration is invalid"; }
  fi
  mv -f "$out.partial" "$out"
}

if [[ "${1:-}" == "render" ]]; then
  [[ $# -eq 3 ]] || die "usage: $0 render TEMPLATE OUTPUT"
  render "$2" "$3"
  exit 0
fi

config="${ALERTMANAGER_CONFIG:-/run/alertmanager/alertmanager.yml}"
render "${ALERTMANAGER_TEMPLATE:-/etc/alertmanager/alertmanager.yml}" "$config"
exec prometheus-alertmanager --config.file="$config" "$@"
