"""Why a policy check could not run: bad input, or a pack process that failed.

Its own module because every step raises these (reading the pack and its configuration, the
process, the protocol calls) and the preview tells the two apart by exit code.
"""

from __future__ import annotations

from collections.abc import Sequence


class PolicyCheckError(Exception):
    """The policy check could not run; ``lines`` say why, one problem per line."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)


class PolicyInputError(PolicyCheckError):
    """Bad input: no pack where expected, a wrong ``PulumiPolicy.yaml`` or policy config."""


class PolicyPackError(PolicyCheckError):
    """The pack process failed: it died, printed no port, or an RPC failed."""
