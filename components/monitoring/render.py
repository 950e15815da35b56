"""Every monitoring file of a stack, rendered at once: ``render_all(settings, secrets)``.

One registry, so the offline preview's ``monitoring`` stage (``build/<stack>/monitoring/``) and
the tests see exactly the files the cluster mounts, under the same relative paths:

* ``prometheus.yml`` — scrape jobs and alerting (``prometheus``), naming each rule file;
* ``rules/<name>.yml`` — the alert rules, beside the configuration as its ``rule_files`` say;
* ``alertmanager.yml`` — routing and receivers (``alertmanager``), with the secret values given;
* ``blackbox.yml`` — the blackbox exporter's modules (a static file of this package);
* ``dashboards/<name>.json`` — Grafana dashboards (static files of this package), when present.

Pure: no resources, no configuration reads; reads only this package's own files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from components.monitoring.alertmanager import SECRET_KEYS, AlertmanagerSecrets, render_alertmanager
from components.monitoring.prometheus import render_prometheus
from components.monitoring.rules import render_rules
from components.settings import StackSettings

PACKAGE_DIR = Path(__file__).resolve().parent
BLACKBOX_FILE = PACKAGE_DIR / "blackbox.yml"
DASHBOARDS_DIR = PACKAGE_DIR / "dashboards"
RULES_DIR = "rules"
"""The rule files' folder, relative to ``prometheus.yml``."""


def rule_files(settings: StackSettings) -> dict[str, str]:
    """``rules/<name>`` to the rule file's text (``rules.render_rules``)."""
    return {f"{RULES_DIR}/{name}": text for name, text in render_rules(settings).items()}


def dashboards() -> dict[str, str]:
    """``dashboards/<name>.json`` to each dashboard's JSON, as written in the repository."""
    if not DASHBOARDS_DIR.is_dir():
        return {}
    return {
        f"dashboards/{path.name}": path.read_text()
        for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def render_all(settings: StackSettings, secrets: Mapping[str, str]) -> dict[str, str]:
    """Relative path to text of every monitoring file; ``secrets`` maps each of
    ``alertmanager.SECRET_KEYS`` (configuration keys) to the value written in (the offline
    preview passes its placeholders)."""
    missing = [key for key in SECRET_KEYS if key not in secrets]
    if missing:
        raise KeyError(f"no value for the secret setting(s) {', '.join(missing)}")
    rules = rule_files(settings)
    files = {
        # each rule file by name: promtool then checks that every one exists and parses
        "prometheus.yml": render_prometheus(settings, sorted(rules)),
        **rules,
        "alertmanager.yml": render_alertmanager(
            settings.alerting, AlertmanagerSecrets.of_keys({k: secrets[k] for k in SECRET_KEYS})
        ),
        "blackbox.yml": BLACKBOX_FILE.read_text(),
        **dashboards(),
    }
    return files
