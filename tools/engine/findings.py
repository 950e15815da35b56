"""One finding of the engine checks: what the engine or a provider would print, one line each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tools.mocks import CapturedResource

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    severity: Severity
    urn: str
    """The resource the finding is about (its engine URN)."""
    property: str
    """Dotted path of the input (``spec.template.spec.containers[0].image``), or empty."""
    message: str

    @classmethod
    def error(cls, resource: CapturedResource, path: str, message: str) -> Finding:
        return cls("error", resource.urn, path, message)

    @classmethod
    def warning(cls, resource: CapturedResource, path: str, message: str) -> Finding:
        return cls("warning", resource.urn, path, message)

    def line(self) -> str:
        """``error: <type> <name>: <property>: <message>`` -- the resource named by type and
        name (the last two parts of its URN), as ``pulumi preview`` names resources."""
        parts = self.urn.split("::")
        typ = parts[2].rsplit("$", 1)[-1] if len(parts) > 3 else self.urn
        name = parts[3] if len(parts) > 3 else ""
        where = f" {self.property}:" if self.property else ""
        return f"{self.severity}: {typ} {name!r}:{where} {self.message}"
