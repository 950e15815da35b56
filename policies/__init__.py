"""The ``exposcholar-security`` CrossGuard policy pack.

``policies/__main__.py`` is what the Pulumi CLI runs (``pulumi preview --policy-pack policies
--policy-pack-config policies/config/<stack>.json``); the rules live in ``policies.rules`` and
import without starting the pack's gRPC server, for tests and the offline analyzer.
"""

from policies.rules import ALL_POLICIES, PACK_NAME, effective_enforcement, load_config

__all__ = ["ALL_POLICIES", "PACK_NAME", "effective_enforcement", "load_config"]
