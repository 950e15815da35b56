from tools.stacks import stack_names

STACKS = tuple(stack_names())
"""The stacks with a file in the repository (``Pulumi.<name>.yaml``)."""
if not {"staging", "prod"} <= set(STACKS):
    # every stack-parametrized test would otherwise be skipped, and the suite pass on nothing
    raise RuntimeError(f"tests need the staging and prod stack files; found stacks {STACKS}")
