"""A policy check fed resource by resource as the program registers them, the way the engine
analyzes them during a deployment (``PolicySession.stream`` starts one, ``PolicySession.finish``
completes it). Its own module: it adds a worker thread and a queue to the plain check."""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

from tools.analyzer import wire
from tools.analyzer.check import CheckRun
from tools.analyzer.errors import PolicyPackError
from tools.mocks import CapturedResource
from tools.plan import STACK_TYPE

if TYPE_CHECKING:
    from tools.analyzer.session import PolicySession


class StreamingCheck:
    """``Remediate`` and ``Analyze`` of each resource in a worker thread, fed as the program
    registers resources: the pack's process works on the other core while the program is
    still running, instead of after it. ``PolicySession.finish`` completes the check."""

    def __init__(self, session: PolicySession, run: CheckRun) -> None:
        self.session = session
        self._run = run
        self._queue: queue.Queue[tuple[CapturedResource, bool] | None] = queue.Queue()
        self.seen: set[str] = set()
        self.error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._work, name="policy-analyze", daemon=True)
        self._thread.start()

    def add(self, resource: CapturedResource, *, analyze: bool = True) -> None:
        """Called for every captured resource, in registration order; ``analyze=False`` only
        makes it known (a provider another process analyzes may be referenced here)."""
        if resource.type != STACK_TYPE:
            self._queue.put((resource, analyze))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            resource, analyze = item
            if self.error is not None or self._cancelled:
                continue  # drain: the first failure is reported; a cancelled check stops
            try:
                subject = wire.resource_subject(resource)
                provider = wire.provider_urn(subject)
                if provider and provider not in self._run.by_urn:
                    # the engine registers a provider before anything that uses it; analyzing
                    # without it would miss what policies read from it (default tags)
                    raise PolicyPackError(
                        [f"error: {subject.urn} arrived before its provider {provider}"]
                    )
                self._run.by_urn[subject.urn] = subject
                if analyze:
                    self._run.analyze_one(subject)
                    self.seen.add(subject.urn)
            except BaseException as exc:
                self.error = exc

    def cancel(self) -> None:
        """Stop analyzing (the preview failed before the policy stage); returns at once."""
        self._cancelled = True
        self._queue.put(None)

    def close(self) -> CheckRun:
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self._run
