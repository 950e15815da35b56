"""Reading keys one by one while collecting every problem, and the errors that report them.

The section parsers read through a ``Reader``: a missing or invalid key, or a broken rule
across keys, is recorded as a ``SettingsProblem`` and reading goes on, so one run names every
problem. ``parse_settings`` raises them together as one ``SettingsError``, whose lines each
name the key, the value given and what was expected. ``SettingsError`` is a
``pulumi.RunError``, so the Pulumi CLI prints the message without a Python traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar, cast

import pulumi

from components.settings.keys import KEYS_BY_NAME, PROJECT
from components.settings.model import StackRole
from components.settings.parsers import InvalidValueError, Parser, choice

T = TypeVar("T")


@dataclass(frozen=True)
class SettingsProblem:
    """One invalid or missing value."""

    key: str
    """Fully qualified key, e.g. ``exposcholar:vpcCidr``."""
    value: str | None
    """The value as given (``None`` when missing; masked for secrets)."""
    expected: str

    def __str__(self) -> str:
        given = "nothing (the key is not set)" if self.value is None else repr(self.value)
        return f"{self.key}: got {given}; expected {self.expected}"


class SettingsError(pulumi.RunError):
    """All the problems found in a stack's configuration, reported together."""

    def __init__(self, stack: str, problems: list[SettingsProblem]) -> None:
        self.stack = stack
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(
            f"stack {stack!r} has {len(self.problems)} configuration problem(s):\n{lines}"
        )


class Reader:
    """Reads raw values key by key, recording every problem instead of stopping at the first.

    ``get`` returns the parsed value, or ``None`` (typed as the value) when the key is missing
    or invalid; ``ok`` says whether keys parsed, for checks across keys. ``parse_settings``
    raises before any object built from a failed key can escape.
    """

    def __init__(self, stack: str, raw: Mapping[str, str]) -> None:
        self.stack = stack
        self.raw = raw
        self.problems: list[SettingsProblem] = []
        self._failed: set[str] = set()
        self.role = self.get("stackRole", choice(StackRole))

    @property
    def production(self) -> bool:
        """Production floors apply when the role says so. A missing or invalid role is itself
        the one problem reported (no knock-on floors); it stops the run all the same."""
        return self.role is StackRole.PRODUCTION

    def problem(self, key: str, expected: str, value: str | None = None) -> None:
        spec = KEYS_BY_NAME.get(key)
        shown = "****" if value is not None and spec is not None and spec.secret else value
        self.problems.append(SettingsProblem(f"{PROJECT}:{key}", shown, expected))
        self._failed.add(key)

    def get(self, key: str, parse: Parser[T]) -> T:
        raw = self.raw.get(key)
        if raw is None:
            where = "pulumi config set --secret" if KEYS_BY_NAME[key].secret else "the stack file"
            self.problem(key, f"a value; set it in {where}")
            return cast(T, None)
        try:
            return parse(raw)
        except InvalidValueError as exc:
            self.problem(key, exc.expected, raw)
            return cast(T, None)

    def ok(self, *keys: str) -> bool:
        return not self._failed.intersection(keys)

    def check(
        self, key: str, holds: Callable[[], bool], expected: str, *, needs: tuple[str, ...] = ()
    ) -> None:
        """Record a problem on ``key`` unless ``holds()``; only asked when ``key`` and the keys
        it ``needs`` parsed, so a bad value is reported once, under its own key."""
        if self.ok(key, *needs) and not holds():
            self.problem(key, expected, self.raw.get(key))
