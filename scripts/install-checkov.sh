#!/usr/bin/env bash
# Installs Checkov into its own virtualenv (.venv-checkov): it pins an old `packaging` that
# would break pulumi in the main one. Idempotent; re-run when the pinned version changes.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOV_VERSION="3.3.30"
VENV=".venv-checkov"
STAMP="$VENV/.installed-$CHECKOV_VERSION"
if [ -f "$STAMP" ]; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
"$VENV/bin/checkov" --version
touch "$STAMP"
