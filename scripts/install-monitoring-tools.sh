#!/usr/bin/env bash
# Installs the Debian packages the monitoring tests need, where missing: prometheus (promtool
# checks and unit-tests the alert rules and checks prometheus.yml; the dashboard tests run a
# Prometheus on loopback), prometheus-alertmanager (amtool checks alertmanager.yml and tests its
# routes), prometheus-blackbox-exporter (checks blackbox.yml), prometheus-postgres-exporter and
# prometheus-redis-exporter (run against throw-away servers over TLS: the metric names the rules
# use), prometheus-node-exporter (runs the node-exporter DaemonSet's flags on loopback: every
# node_* name the rules use) and openssl (those servers' certificates). Only the binaries are
# used: no service is started, and on a machine without systemd none is.
# Idempotent: does nothing while all are present and the stamp exists.
set -euo pipefail
cd "$(dirname "$0")/.."
STAMP=".venv/.monitoring-tools-installed"
missing=()
{ command -v promtool >/dev/null && command -v prometheus >/dev/null; } || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v prometheus-blackbox-exporter >/dev/null || missing+=(prometheus-blackbox-exporter)
command -v prometheus-postgres-exporter >/dev/null || missing+=(prometheus-postgres-exporter)
command -v prometheus-redis-exporter >/dev/null || missing+=(prometheus-redis-exporter)
command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
command -v openssl >/dev/null || missing+=(openssl)

if [ "${#missing[@]}" -eq 0 ] && [ -f "$STAMP" ]; then
  touch "$STAMP"
  exit 0
fi

if [ "${#missing[@]}" -gt 0 ]; then
  bash scripts/apt-install.sh "${missing[@]}"
fi

mkdir -p "$(dirname "$STAMP")"
{
  promtool --version 2>&1 | head -n 1
  amtool --version 2>&1 | head -n 1
  prometheus-blackbox-exporter --version 2>&1 | head -n 1
  prometheus-postgres-exporter --version 2>&1 | head -n 1
  prometheus-redis-exporter --version 2>&1 | head -n 1
  prometheus-node-exporter --version 2>&1 | head -n 1
} | tee "$STAMP"
