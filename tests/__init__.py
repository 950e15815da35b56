from tools.stacks import stack_names

STACKS = tuple(stack_names())
"""The stacks with a file in the repository (``Pulumi.<name>.yaml``)."""
