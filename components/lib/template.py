"""Strict ``{{name}}`` templates: the one renderer of the files the program ships from templates
(the edge's nginx configuration, the monitoring's alert rules).

A placeholder is ``{{`` a lower-case name ``}}``; anything else passes through untouched, so
Go templates such as Prometheus's ``{{ $labels.pod }}`` (spaces, ``$``) stay as they are.
Filling is strict both ways: a placeholder without a value, or a value no placeholder uses, is
an error naming the file, so a renamed setting cannot leave a rule or a directive half-filled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


class TemplateError(ValueError):
    """A template and its values do not match: the message names the file and the names."""


def placeholders(template: str) -> set[str]:
    """The names of ``template``'s placeholders."""
    return set(PLACEHOLDER.findall(template))


def fill(name: str, template: str, values: Mapping[str, str]) -> str:
    """``template`` (the file ``name``) with its ``{{name}}`` placeholders replaced; every
    placeholder must have a value and every value a placeholder."""
    used = placeholders(template)
    missing, unused = used - set(values), set(values) - used
    if missing or unused:
        raise TemplateError(
            f"{name}: placeholders without a value {sorted(missing)}, "
            f"values without a placeholder {sorted(unused)}"
        )
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
