"""One JSON object per line on standard output: what the program did, for people (kubectl logs)
and for the monitoring stack (the ``event`` and ``result`` fields are what alerts match)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def event(name: str, **fields: Any) -> None:
    """Print one event line: ``{"time": ..., "event": name, ...fields}``."""
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": name, **fields}
    print(json.dumps(record, sort_keys=False, default=str), flush=True)


def say(message: str) -> None:
    """A line for the operator on standard error (progress, plans, what to run next)."""
    print(message, file=sys.stderr, flush=True)
