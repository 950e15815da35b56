"""Cron schedules as the Kubernetes CronJob controller reads them.

The controller parses ``spec.schedule`` with robfig/cron's standard parser: five fields
(minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-6 or SUN-SAT,
Sunday being 0), each ``*``, ``?`` (day fields), a value, a range ``a-b``, a step ``*/n``,
``a-b/n`` or ``a/n``, or a comma-separated list of those; or one of the descriptors
``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight``, ``@hourly``.
A ``TZ=`` or ``CRON_TZ=`` prefix is refused by the API server when ``timeZone`` is set, which
our CronJobs do, so it is refused here too. A schedule the controller could not parse would be
accepted by ``pulumi up`` (the API server validates it, but only at deploy time) or, worse,
fire at an unintended time; checking it here names the key before anything is deployed.
"""

from __future__ import annotations

import re

from components.settings.model import Schedule
from components.settings.parsers import InvalidValueError

_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun",
                      "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)  # fmt: skip
"""Name, bounds and (for month and weekday) the names robfig/cron accepts, in value order."""
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ATOM = re.compile(r"^(\*|\?|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(\d+))?$")
EXPECTED = (
    "a cron schedule of five fields (minute hour day-of-month month day-of-week, in UTC), "
    "such as '30 3 * * *', or @daily/@weekly"
)


def _value(raw: str, low: int, high: int, names: tuple[str, ...], field: str) -> int:
    if raw in names:
        return names.index(raw) + low
    if not raw.isdigit():
        raise InvalidValueError(f"{EXPECTED}; the {field} field has {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise InvalidValueError(f"{EXPECTED}; the {field} field takes {low}-{high}, not {value}")
    return value


def _check_field(text: str, field: str, low: int, high: int, names: tuple[str, ...]) -> None:
    for part in text.split(","):
        match = _ATOM.fullmatch(part)
        if not match:
            raise InvalidValueError(f"{EXPECTED}; the {field} field has {part!r}")
        span, step = match.group(1), match.group(2)
        if step is not None and int(step) == 0:
            raise InvalidValueError(f"{EXPECTED}; the {field} field has a step of 0")
        if span == "?" and field not in ("day of month", "day of week"):
            raise InvalidValueError(f"{EXPECTED}; '?' is only for the day fields")
        if span in ("*", "?"):
            continue
        first, _, last = span.partition("-")
        start = _value(first, low, high, names, field)
        if last and _value(last, low, high, names, field) < start:
            raise InvalidValueError(f"{EXPECTED}; the {field} range {span!r} runs backwards")


def cron_schedule(raw: str) -> Schedule:
    """A schedule the CronJob controller accepts (see the module's docstring)."""
    text = raw.strip()
    lowered = text.lower()
    if lowered.startswith(("tz=", "cron_tz=")):
        raise InvalidValueError(
            f"{EXPECTED}, without a TZ= prefix: the CronJobs run in UTC (timeZone: Etc/UTC)"
        )
    expanded = _DESCRIPTORS.get(lowered, lowered)
    if lowered.startswith("@") and lowered not in _DESCRIPTORS:
        raise InvalidValueError(f"{EXPECTED}; {text!r} is not a descriptor the controller knows")
    fields = expanded.split()
    if len(fields) != len(_FIELDS):
        raise InvalidValueError(f"{EXPECTED}; got {len(fields)} field(s)")
    for value, (field, low, high, names) in zip(fields, _FIELDS, strict=True):
        _check_field(value, field, low, high, names)
    minute, hour, day_of_month, month, day_of_week = fields
    return Schedule(text, minute, hour, day_of_month, month, day_of_week)
