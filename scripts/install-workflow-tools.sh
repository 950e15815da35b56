#!/usr/bin/env bash
# Installs the Debian packages the workflow tests need, where missing: shellcheck (actionlint
# checks every `run:` script of the GitHub workflows with the shellcheck it finds on PATH;
# without it those scripts would go unchecked, so the test fails instead) and jq
# (scripts/github-environments.sh, exercised by the tests with a stand-in gh).
# GitHub's Ubuntu runners ship both already; a clean Debian machine gets them from apt.
# Idempotent: does nothing while both are on PATH and the stamp exists.
set -euo pipefail
cd "$(dirname "$0")/.."
STAMP=".venv/.workflow-tools-installed"
missing=()
for tool in shellcheck jq; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done

if [ "${#missing[@]}" -eq 0 ] && [ -f "$STAMP" ]; then
  touch "$STAMP"  # up to date: only tell make so
  exit 0
fi

if [ "${#missing[@]}" -gt 0 ]; then
  bash scripts/apt-install.sh "${missing[@]}"
fi

mkdir -p "$(dirname "$STAMP")"
{ shellcheck --version; jq --version; } | tee "$STAMP"
