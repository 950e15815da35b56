#!/usr/bin/env bash
# Installs the Node.js tools the tests use: tools/crd-validate (CustomResource manifests checked
# against their CRD schemas). Installs Debian's nodejs and npm first where node or npm is missing
# (a clean CI machine), then the exact packages of tools/crd-validate/package-lock.json (npm ci).
# Idempotent: does nothing while the stamp records the current lock file.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOL="tools/crd-validate"
STAMP="$TOOL/node_modules/.installed"
lock_hash() { sha256sum "$TOOL/package-lock.json" | cut -d' ' -f1; }

if command -v node >/dev/null && command -v npm >/dev/null && [ -f "$STAMP" ] \
  && [ "$(cat "$STAMP")" = "$(lock_hash)" ]; then
  touch "$STAMP"  # up to date: only tell make so
  exit 0
fi

missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  # ca-certificates: npm reaches the registry over https (nodejs only recommends it)
  bash scripts/apt-install.sh ca-certificates "${missing[@]}"
fi

# The @kubernetes-models packages declare node >=22 (npm warns EBADENGINE) but run on Debian
# bookworm's node 18 and on node 20; the tests check the validator on every run.
echo "node $(node --version), npm $(npm --version)"
npm ci --prefix "$TOOL" --no-audit --no-fund
node "$TOOL/validate.mjs" --list >/dev/null  # the validator and every model it names load
lock_hash >"$STAMP"
