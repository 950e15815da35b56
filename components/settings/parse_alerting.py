"""Section parser for alerting: the recipients of alerts, the SMTP relay Alertmanager sends
email through, and the dead man's switch that watches Alertmanager itself.

The smarthost is ``host:port`` with a real host name (Alertmanager refuses a smarthost without a
port at start-up, after the deployment, so the stack refuses it first); the SMTP user name and
password are single-line printable text; the webhook and dead man's switch URLs are https.
"""

from __future__ import annotations

import re

from components.settings.model import AlertingSettings, Secret, SmtpSettings
from components.settings.parsers import InvalidValueError, email, host_name, https_url, port, text
from components.settings.reader import Reader

_CREDENTIAL = re.compile(r"[!-~]{1,256}")
"""Printable ASCII without spaces: what an SMTP AUTH PLAIN user name or password can carry in
the configuration without quoting surprises."""

grafana_password = text(
    re.compile(r"[!-~]{16,128}"), "16-128 printable characters without spaces (a generated one)"
)
"""Grafana's admin password: long enough not to be guessed at its login form."""


def smarthost(raw: str) -> str:
    """``host:port`` of an SMTP relay: a lower-case host name and a port number."""
    expected = "host:port of an SMTP relay, such as email-smtp.eu-west-1.amazonaws.com:587"
    host, sep, number = raw.rpartition(":")
    if not sep or not number.isdigit():
        raise InvalidValueError(expected)
    try:
        host_name(host)
        port(number)
    except InvalidValueError:
        raise InvalidValueError(expected) from None
    return raw


def alerting(r: Reader) -> AlertingSettings:
    """The alerting section: recipients, the SMTP relay and the dead man's switch."""
    credential = text(_CREDENTIAL, "1-256 printable characters without spaces")
    return AlertingSettings(
        email=r.get("alertEmail", email),
        webhook_url=Secret(r.get("alertWebhookUrl", https_url)),
        smtp=SmtpSettings(
            smarthost=r.get("alertSmtpSmarthost", smarthost),
            sender=r.get("alertSmtpFrom", email),
            username=r.get("alertSmtpUsername", credential),
            password=Secret(r.get("alertSmtpPassword", credential)),
        ),
        deadmans_switch_url=Secret(r.get("alertDeadMansSwitchUrl", https_url)),
    )
