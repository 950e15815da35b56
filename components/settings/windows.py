"""Maintenance and backup windows (UTC), as RDS and ElastiCache spell them.

The parsers turn a daily ``hh24:mi-hh24:mi`` or weekly ``ddd:hh24:mi-ddd:hh24:mi`` window into
minute ranges within a week, so that two windows can be checked for overlap (both services
reject a backup window that overlaps the maintenance window).
"""

from __future__ import annotations

from components.settings.parsers import InvalidValueError, Parser

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK = 7 * 24 * 60


def _clock(text_value: str) -> int:
    hours, minutes = text_value.split(":")
    if not (hours.isdigit() and minutes.isdigit() and len(hours) == len(minutes) == 2):
        raise ValueError(text_value)
    if int(hours) > 23 or int(minutes) > 59:
        raise ValueError(text_value)
    return int(hours) * 60 + int(minutes)


Window = tuple[tuple[int, int], ...]
"""Minute ranges [start, end) within a week, starting Monday 00:00 UTC."""


def _span(start: int, end: int, period: int) -> Window:
    """Ranges of a window from ``start`` to ``end`` that may wrap past the period's end."""
    if end > start:
        return ((start, end),)
    return ((start, period), (0, end))


def daily_window(min_minutes: int) -> Parser[Window]:
    """``hh24:mi-hh24:mi`` in UTC, at least ``min_minutes`` long; repeated every day."""

    def parse(raw: str) -> Window:
        expected = f"a daily UTC window hh24:mi-hh24:mi of at least {min_minutes} minutes"
        try:
            start_text, end_text = raw.split("-")
            start, end = _clock(start_text), _clock(end_text)
        except ValueError:
            raise InvalidValueError(f"{expected}, such as 03:00-04:00") from None
        length = (end - start) % (24 * 60)
        if length < min_minutes:
            raise InvalidValueError(expected)
        day = _span(start, end, 24 * 60)
        return tuple(
            (offset + a, offset + b) for offset in range(0, _WEEK, 24 * 60) for a, b in day
        )

    return parse


def weekly_window(min_minutes: int) -> Parser[Window]:
    """``ddd:hh24:mi-ddd:hh24:mi`` in UTC, at least ``min_minutes`` and at most 24 hours."""

    def parse(raw: str) -> Window:
        expected = (
            f"a weekly UTC window ddd:hh24:mi-ddd:hh24:mi of {min_minutes} minutes to 24 hours"
        )
        try:
            start_text, end_text = raw.split("-")
            start_day, start_clock = start_text.split(":", 1)
            end_day, end_clock = end_text.split(":", 1)
            start = _DAYS.index(start_day.lower()) * 1440 + _clock(start_clock)
            end = _DAYS.index(end_day.lower()) * 1440 + _clock(end_clock)
        except ValueError:
            raise InvalidValueError(f"{expected}, such as sun:04:00-sun:05:00") from None
        length = (end - start) % _WEEK
        if not min_minutes <= length <= 24 * 60:
            raise InvalidValueError(expected)
        return _span(start, end, _WEEK)

    return parse


def windows_overlap(first: Window, second: Window) -> bool:
    return any(a < d and c < b for a, b in first for c, d in second)
