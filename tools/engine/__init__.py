"""Engine checks: what ``pulumi preview`` and ``pulumi up`` refuse that the mock runtime accepts.

The offline preview runs the program under the SDK's mock monitor, which registers anything.
This package replays, over the captured plan, the checks the real engine and providers make
before they change anything:

* ``graph``  -- unique URNs; every parent, dependency and provider reference registered;
* ``inputs`` -- every input of every pulumi-aws, pulumi-kubernetes and pulumi-docker resource
  against the provider schema of the pinned SDK (``schema``), at any depth;
* ``charts`` -- every Helm chart in the table of pinned charts, its values keys defined by the
  chart, and no chart with install hooks through ``helm.v4.Chart``.

What cannot be replayed here: value validation inside provider binaries (Terraform-level ranges
and conflicts), chart rendering, and the cloud's own limits (see the README).

The stage itself is ``tools.engine.check``.
"""
