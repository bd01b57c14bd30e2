"""The ``AsyncQueue`` seam for asynchronous invocations, and its in-memory implementation.

``Event`` invocations are answered 202 once ``put`` returns, so a durable queue must have the event
stored by then. Consumers ``take`` a delivery, and when they are finished with it — invoked,
re-queued for a retry, or handed to a destination — call ``done``. A retry is a new ``put`` with a
delay followed by ``done`` on the old delivery, never the other way round, so a crash in between
can only duplicate an event, not lose it (at least once, as Lambda).

The in-memory queue serves ``kfaas dev`` and unit tests; Redis Streams and Kafka queues come with
the durable async work.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class AsyncEvent:
    """One accepted asynchronous invocation and the attempts made so far."""

    request_id: str
    function_key: str
    payload: bytes
    accepted_at: float
    """Wall-clock seconds when the gateway accepted the event (the event's age counts from here)."""
    invocations: int = 0
    """Attempts that reached the function (Lambda's ``approximateInvokeCount``)."""
    function_errors: int = 0
    throttles: int = 0
    carrier: dict[str, str] = field(default_factory=dict)
    """Trace propagation headers of the original request."""

    @classmethod
    def new(
        cls,
        function_key: str,
        payload: bytes,
        *,
        request_id: str,
        carrier: dict[str, str] | None = None,
    ) -> AsyncEvent:
        return cls(
            request_id=request_id,
            function_key=function_key,
            payload=payload,
            accepted_at=time.time(),
            carrier=carrier or {},
        )

    def replace(self, **changes: object) -> AsyncEvent:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Delivery:
    event: AsyncEvent
    handle: str
    """Queue-specific identity of this delivery (a stream entry id, an offset, a sequence)."""


class AsyncQueue(Protocol):
    async def put(self, event: AsyncEvent, delay: float = 0.0) -> None:
        """Store the event durably; it becomes deliverable after ``delay`` seconds."""

    async def take(self) -> Delivery:
        """Wait for the next deliverable event."""

    async def done(self, delivery: Delivery) -> None:
        """Forget a delivery that has been fully handled."""

    async def close(self) -> None: ...


class MemoryQueue:
    """Events in a heap ordered by the time they become deliverable; lost when the process ends."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, AsyncEvent]] = []
        self._sequence = itertools.count()
        self._changed = asyncio.Event()
        self.pending: dict[str, AsyncEvent] = {}

    async def put(self, event: AsyncEvent, delay: float = 0.0) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._sequence), event))
        self._changed.set()

    async def take(self) -> Delivery:
        while True:
            self._changed.clear()
            if self._heap:
                due, sequence, event = self._heap[0]
                wait = due - time.monotonic()
                if wait <= 0:
                    heapq.heappop(self._heap)
                    handle = str(sequence)
                    self.pending[handle] = event
                    return Delivery(event, handle)
            else:
                wait = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)

    async def done(self, delivery: Delivery) -> None:
        self.pending.pop(delivery.handle, None)

    async def close(self) -> None:
        self._changed.set()

    def __len__(self) -> int:
        return len(self._heap) + len(self.pending)
