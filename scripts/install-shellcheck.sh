#!/usr/bin/env bash
# Installs shellcheck (Debian's package) where it is missing. tests/test_workflows.py runs
# actionlint, which checks every `run:` script of the GitHub workflows with the shellcheck it
# finds on PATH; without it those scripts would go unchecked, so the test fails instead.
# GitHub's Ubuntu runners ship shellcheck already; a clean Debian machine gets it from apt.
# Idempotent: does nothing while shellcheck is on PATH and the stamp exists.
set -euo pipefail
cd "$(dirname "$0")/.."
STAMP=".venv/.shellcheck-installed"

if command -v shellcheck >/dev/null && [ -f "$STAMP" ]; then
  touch "$STAMP"  # up to date: only tell make so
  exit 0
fi

if ! command -v shellcheck >/dev/null; then
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: need root or sudo to install shellcheck" >&2; exit 1; }
    SUDO=(sudo)
  fi
  echo "Installing Debian package: shellcheck"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    shellcheck
fi

mkdir -p "$(dirname "$STAMP")"
shellcheck --version | tee "$STAMP"
