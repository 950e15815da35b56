"""The offline policy check: the CrossGuard pack runs as its own process and is driven over the
real Analyzer gRPC protocol, the way ``pulumi preview --policy-pack DIR`` drives it.

One module per job; import from the module that has the name:

* ``session`` — ``PolicySession`` (a started, configured pack for many checks) and
  ``run_policy_check`` (one session, one check): the start-up calls the engine makes;
* ``pack`` — ``PulumiPolicy.yaml``, the pack's process as the CLI starts it, its environment,
  and the client that calls it;
* ``config`` — ``--policy-pack-config`` files and the configuration the engine reconciles;
* ``check`` — one check's ``Remediate``, ``Analyze`` and ``AnalyzeStack`` calls;
* ``streaming`` — a check fed as the program registers resources;
* ``wire`` — captured resources and configurations as protocol messages, and back;
* ``report`` — what the pack reported, printed as ``Policies:`` and written as JSON;
* ``errors`` — bad input versus a failed pack process.

Nothing here imports the pack (``policies/``) or the program's components: the pack is only
started as a process and its files read.
"""
