"""The metric names a PromQL expression reads, found without a PromQL parser.

The alert rules' and dashboards' tests check every name against
``components/monitoring/metrics.yaml``. A name is an identifier that is not a function or an
aggregation (followed by ``(``), not a keyword, not a label name (inside ``{...}`` or in a
``by``/``without``/``on``/``ignoring``/``group_left``/``group_right`` list) and not inside a
string or a range (``[5m]``). This covers the PromQL the rules and panels use; a name written
as ``{__name__="..."}`` is read from its matcher.
"""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
KEYWORDS = frozenset(
    {
        "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
        "group_left", "group_right", "inf", "nan", "atan2", "start", "end",
    }
)  # fmt: skip
"""Words of PromQL that are not metric names (compared in lower case)."""


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` reads."""
    named = set(_NAME_MATCHER.findall(expr))
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    found = {
        match.group(1)
        for match in _IDENTIFIER.finditer(text)
        if not match.group(2) and match.group(1).lower() not in KEYWORDS
    }
    return found | named
