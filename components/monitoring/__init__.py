"""Monitoring: Prometheus, Alertmanager, Grafana, node and blackbox exporters, alert rules with
runbooks and dashboards. This package carries its rule, dashboard and configuration files; the
offline preview renders them per stack (``build/<stack>/monitoring/``) and the tests prove them
with the real tools (promtool, amtool, blackbox_exporter, a Prometheus on loopback)."""
