"""Alertmanager's configuration (``alertmanager.yml``) from the stack's alerting settings.

Routing by severity, the kubernetes-mixin conventions (critical pages someone, warning goes to
the work queue, info is for troubleshooting only):

* ``alertname="Watchdog"`` (always firing) goes only to the dead man's switch, every minute; the
  switch alerts when the calls stop, so a dead Prometheus, Alertmanager or notification path is
  noticed. It is matched by name, whatever its severity, and never reaches people.
* ``severity="critical"`` goes by email **and** to the chat webhook;
* ``severity="warning"`` goes to the chat webhook only;
* ``severity="info"`` and ``"none"`` (the ``InfoInhibitor``) go nowhere (the ``null`` receiver);
* an alert with no known severity goes to chat, so a rule that forgot its label is still seen.

Alerts are grouped by alertname and namespace (one notification per problem and place), and a
critical alert inhibits the warning of the same alertname and namespace (the warning tier of a
two-tier rule says nothing the critical one does not).

The configuration holds secrets (the SMTP password, the webhook and dead man's switch URLs), so
it becomes a Kubernetes Secret. ``alertmanager_config`` therefore returns the document with
the secrets as given: plain strings for a rendering, or secret ``pulumi.Output``s, in which
case ``pulumi.Output.json_dumps`` of the document keeps them secret end to end (JSON is YAML, and
Alertmanager reads either). Field names are those of Alertmanager 0.25+ (``matchers``,
``source_matchers``/``target_matchers``), which ``amtool check-config`` checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pulumi
import yaml

from components.settings import AlertingSettings

T = TypeVar("T")

EMAIL = "email"
CHAT = "slack"
DEADMANS_SWITCH = "deadmans-switch"
NULL = "null"
RECEIVERS = (EMAIL, CHAT, DEADMANS_SWITCH, NULL)
"""The receivers' names, as ``amtool config routes test`` prints them."""

WATCHDOG = "Watchdog"
"""The always-firing alert of the dead man's switch (``vector(1)``), routed by name."""

GROUP_BY = ("alertname", "namespace")
GROUP_WAIT = "30s"
"""How long the first alert of a group waits for its siblings before the first notification."""
GROUP_INTERVAL = "5m"
"""How long a group waits before notifying about alerts added to it."""
REPEAT_INTERVAL = "12h"
"""How often a still-firing warning is sent again (the work queue)."""
CRITICAL_REPEAT_INTERVAL = "4h"
"""How often a still-firing critical alert is sent again: someone is paged until it is fixed."""
HEARTBEAT_INTERVAL = "1m"
"""How often the Watchdog reaches the dead man's switch (its group interval and repeat
interval): the switch's own grace period must be a few of these."""

SECRET_KEYS = ("alertWebhookUrl", "alertSmtpPassword", "alertDeadMansSwitchUrl")
"""The settings (configuration keys) whose values the configuration carries: what makes it a
Secret, and what the offline preview replaces with its placeholders."""


@dataclass(frozen=True)
class AlertmanagerSecrets(Generic[T]):
    """The secret values the configuration carries: strings when rendering a file, secret
    ``pulumi.Output[str]`` when building the Kubernetes Secret."""

    webhook_url: T
    """``alertWebhookUrl``: the chat incoming webhook."""
    smtp_password: T
    """``alertSmtpPassword``."""
    deadmans_switch_url: T
    """``alertDeadMansSwitchUrl``: the heartbeat check's URL."""

    @classmethod
    def of_keys(cls, values: dict[str, T]) -> AlertmanagerSecrets[T]:
        """From a mapping of configuration key (``SECRET_KEYS``) to value."""
        return cls(
            webhook_url=values["alertWebhookUrl"],
            smtp_password=values["alertSmtpPassword"],
            deadmans_switch_url=values["alertDeadMansSwitchUrl"],
        )


def _route(receiver: str, *matchers: str, **fields: Any) -> dict[str, Any]:
    return {"receiver": receiver, "matchers": list(matchers), **fields}


def routes() -> dict[str, Any]:
    """The routing tree: Watchdog first (and only there), then critical to email and on to
    chat, warning to chat, info and none to nowhere; anything else falls to chat."""
    return {
        "receiver": CHAT,
        "group_by": list(GROUP_BY),
        "group_wait": GROUP_WAIT,
        "group_interval": GROUP_INTERVAL,
        "repeat_interval": REPEAT_INTERVAL,
        "routes": [
            _route(
                DEADMANS_SWITCH,
                f'alertname="{WATCHDOG}"',
                group_wait="0s",
                group_interval=HEARTBEAT_INTERVAL,
                repeat_interval=HEARTBEAT_INTERVAL,
            ),
            _route(
                EMAIL,
                'severity="critical"',
                repeat_interval=CRITICAL_REPEAT_INTERVAL,
                # and on to chat: a page by email and a line in the channel
                **{"continue": True},
            ),
            _route(CHAT, 'severity=~"critical|warning"'),
            _route(NULL, 'severity=~"info|none"'),
        ],
    }


def inhibit_rules() -> list[dict[str, Any]]:
    """A critical alert silences the warning of the same alertname in the same namespace."""
    return [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": list(GROUP_BY),
        }
    ]


_CHAT_TITLE = (
    '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] '
    "{{ .CommonLabels.alertname }} ({{ .CommonLabels.namespace }})"
)
_CHAT_TEXT = (
    "{{ range .Alerts }}*{{ .Labels.severity }}*: {{ .Annotations.summary }}\n"
    "{{ .Annotations.description }}\nRunbook: {{ .Annotations.runbook_url }}\n{{ end }}"
)


def receivers(alerting: AlertingSettings, secrets: AlertmanagerSecrets[T]) -> list[dict[str, Any]]:
    """Email to the alert address, chat through the webhook, the dead man's switch as a plain
    webhook (no resolved notifications: only the heartbeat matters), and the null receiver."""
    return [
        {
            "name": EMAIL,
            "email_configs": [{"to": alerting.email, "send_resolved": True}],
        },
        {
            "name": CHAT,
            "slack_configs": [
                {
                    "api_url": secrets.webhook_url,
                    "send_resolved": True,
                    "title": _CHAT_TITLE,
                    "text": _CHAT_TEXT,
                }
            ],
        },
        {
            "name": DEADMANS_SWITCH,
            "webhook_configs": [
                {"url": secrets.deadmans_switch_url, "send_resolved": False, "max_alerts": 1}
            ],
        },
        {"name": NULL},
    ]


def alertmanager_config(
    alerting: AlertingSettings, secrets: AlertmanagerSecrets[T]
) -> dict[str, Any]:
    """The whole configuration document, secrets as given (see the module's docstring)."""
    smtp = alerting.smtp
    return {
        "global": {
            "resolve_timeout": "5m",
            "smtp_smarthost": smtp.smarthost,
            "smtp_from": smtp.sender,
            "smtp_auth_username": smtp.username,
            "smtp_auth_password": secrets.smtp_password,
            # STARTTLS or nothing: credentials and alert contents never cross in clear text
            "smtp_require_tls": True,
        },
        "route": routes(),
        "inhibit_rules": inhibit_rules(),
        "receivers": receivers(alerting, secrets),
    }


def render_alertmanager(alerting: AlertingSettings, secrets: AlertmanagerSecrets[str]) -> str:
    """``alertmanager.yml`` as text, with the given secret values written in."""
    return yaml.safe_dump(
        alertmanager_config(alerting, secrets), sort_keys=False, width=100, allow_unicode=True
    )


def alertmanager_secret_text(alerting: AlertingSettings) -> pulumi.Output[str]:
    """``alertmanager.yml`` for the Kubernetes Secret: the configuration as JSON (which
    Alertmanager reads as YAML) with the secret settings' values, a secret Output end to end."""
    secrets = AlertmanagerSecrets(
        webhook_url=alerting.webhook_url.output(),
        smtp_password=alerting.smtp.password.output(),
        deadmans_switch_url=alerting.deadmans_switch_url.output(),
    )
    return pulumi.Output.json_dumps(alertmanager_config(alerting, secrets))
