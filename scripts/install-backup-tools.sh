#!/usr/bin/env bash
# Installs the Debian packages the backup program's tests and bench need, where missing:
# PostgreSQL (server and client programs: the tests start a real server, the program runs
# pg_dump, pg_restore, psql and, for the restore test, initdb and pg_ctl) and Redis
# (redis-server, redis-cli and redis-check-rdb). Only the binaries are used: no service is
# started. Idempotent: does nothing while all are present and the stamp exists.
set -euo pipefail
cd "$(dirname "$0")/.."
STAMP=".venv/.backup-tools-installed"
missing=()
bindir=""
if command -v pg_config >/dev/null; then bindir="$(pg_config --bindir)"; fi
{ [ -n "$bindir" ] && [ -x "$bindir/initdb" ] && [ -x "$bindir/pg_ctl" ]; } || missing+=(postgresql)
command -v pg_dump >/dev/null && command -v psql >/dev/null || missing+=(postgresql-client)
command -v redis-server >/dev/null && command -v redis-check-rdb >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v runuser >/dev/null || missing+=(util-linux)

if [ "${#missing[@]}" -eq 0 ] && [ -f "$STAMP" ]; then
  touch "$STAMP"
  exit 0
fi
if [ "${#missing[@]}" -gt 0 ]; then
  bash scripts/apt-install.sh "${missing[@]}"
fi
mkdir -p "$(dirname "$STAMP")"
{ "$(pg_config --bindir)/postgres" --version; redis-server --version; } | tee "$STAMP"
