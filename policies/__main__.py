"""Serve the pack: the Pulumi CLI (through ``pulumi-analyzer-policy-python``) runs this file
with the pack's directory on ``sys.path``; ``PolicyPack`` announces its port and blocks."""

from pulumi_policy import EnforcementLevel, PolicyPack

# The pack directory itself is on sys.path (the CLI runs it), not the repository root; mypy
# checks the same module as ``policies.rules``.
from rules import ALL_POLICIES, PACK_NAME  # type: ignore[import-not-found]

PolicyPack(
    name=PACK_NAME,
    policies=ALL_POLICIES,
    # Each policy sets its own level from its severity; this is only the pack's fallback.
    enforcement_level=EnforcementLevel.ADVISORY,
)
