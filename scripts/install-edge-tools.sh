#!/usr/bin/env bash
# Installs the Debian packages the edge tests and bench need, where missing: nginx (the tests
# and `python -m tools.edge` run the rendered edge configuration on loopback with Debian's
# nginx), wrk (bench/edge.py), and the edge pod's metrics sidecars' programs: mtail (the
# edgemetrics image installs the same Debian version) and prometheus-nginx-exporter
# (tests/test_edge_metrics.py). Only the binaries are used: no service is started, and on a
# machine without systemd none is.
# Idempotent: does nothing while all are present and the stamp exists.
set -euo pipefail
cd "$(dirname "$0")/.."
STAMP=".venv/.edge-tools-installed"
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v mtail >/dev/null || missing+=(mtail)
command -v prometheus-nginx-exporter >/dev/null || missing+=(prometheus-nginx-exporter)

if [ "${#missing[@]}" -eq 0 ] && [ -f "$STAMP" ]; then
  touch "$STAMP"
  exit 0
fi

if [ "${#missing[@]}" -gt 0 ]; then
  bash scripts/apt-install.sh "${missing[@]}"
fi

mkdir -p "$(dirname "$STAMP")"
{
  /usr/sbin/nginx -v 2>&1
  wrk --version 2>&1 | head -n 1 || true
  mtail --version 2>&1 | head -n 1
  prometheus-nginx-exporter --version 2>&1 | head -n 1
} | tee "$STAMP"
