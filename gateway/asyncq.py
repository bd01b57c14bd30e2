"""The ``AsyncQueue`` seam for asynchronous invocations, and its in-memory implementation.

``Event`` invocations are answered 202 once ``put`` returns, so a durable queue must have the event
stored by then. Consumers ``take`` a delivery, and when they are finished with it — invoked,
re-queued for a retry, or handed to a destination — call ``done``. A retry is a new ``put`` with a
delay followed by ``done`` on the old delivery, never the other way round, so a crash in between
can only duplicate an event, not lose it (at least once, as Lambda).

The in-memory queue serves ``kfaas dev`` and unit tests; the durable Redis Streams and Kafka
queues (``redis_queue``, ``kafka_queue``, ADR 005) share the pure parts kept here:
the wire encoding of an event, the queue URL, and which Kafka offsets are safe to commit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import heapq
import itertools
import json
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from kfaas import aiokit


class QueueError(Exception):
    """A durable queue could not do what was asked; the message says which queue and why."""


class QueueUnavailable(QueueError):
    """The queue's server cannot be reached (or did not confirm a write) within the deadline."""


class QueueFull(QueueError):
    """The queue holds as many events or bytes as it may; a new event is refused (429)."""


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
    async def start(self) -> None:
        """Connect and prepare (consumer groups, topics); raises ``QueueError`` when it cannot."""

    async def accept(self, event: AsyncEvent) -> None:
        """Store a new event from a client, like ``put``; ``QueueFull`` past the queue's bound.

        Only new events are refused: ``put`` (retries, destinations) never drops accepted work.
        """

    async def put(self, event: AsyncEvent, delay: float = 0.0) -> None:
        """Store the event durably; it becomes deliverable after ``delay`` seconds."""

    async def take(self) -> Delivery:
        """Wait for the next deliverable event."""

    async def done(self, delivery: Delivery) -> None:
        """Forget a delivery that has been fully handled."""

    async def abandon(self, delivery: Delivery) -> None:
        """Give a delivery back unfinished; it is delivered again later (to this or another)."""

    async def close(self) -> None: ...


class MemoryQueue:
    """Events in a heap ordered by the time they become deliverable; lost when the process ends.

    Bounded in events and payload bytes (waiting plus being delivered), so a flood of ``Event``
    calls is refused instead of growing the gateway until it is killed with every event in it.
    """

    def __init__(self, *, max_events: int = 10_000, max_bytes: int = 64 << 20) -> None:
        self._heap: list[tuple[float, int, AsyncEvent]] = []
        self._sequence = itertools.count()
        self._changed = asyncio.Event()
        self.pending: dict[str, AsyncEvent] = {}
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.held_bytes = 0

    async def start(self) -> None:
        pass

    async def accept(self, event: AsyncEvent) -> None:
        refusal = bound_refusal(
            len(self), self.held_bytes, len(event.payload), self.max_events, self.max_bytes
        )
        if refusal:
            raise QueueFull(refusal)
        await self.put(event)

    async def put(self, event: AsyncEvent, delay: float = 0.0) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._sequence), event))
        self.held_bytes += len(event.payload)
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
            if wait is None:
                await self._changed.wait()
            else:
                await aiokit.wait_event(self._changed, wait)

    async def done(self, delivery: Delivery) -> None:
        self._forget(delivery)

    async def abandon(self, delivery: Delivery) -> None:
        if self._forget(delivery):
            await self.put(delivery.event, delay=ABANDONED_RETRY_SECONDS)

    def _forget(self, delivery: Delivery) -> bool:
        event = self.pending.pop(delivery.handle, None)
        if event is None:
            return False
        self.held_bytes -= len(event.payload)
        return True

    async def close(self) -> None:
        self._changed.set()

    def __len__(self) -> int:
        return len(self._heap) + len(self.pending)


def bound_refusal(
    events: int, held_bytes: int, size: int, max_events: int, max_bytes: int
) -> str | None:
    """Why a new event of ``size`` bytes does not fit a queue holding this much; None if it fits."""
    if events >= max_events:
        return f"the async queue holds {events} events, its maximum (KFAAS_ASYNC_QUEUE_MAX_EVENTS)"
    if held_bytes + size > max_bytes:
        return (
            f"the async queue holds {held_bytes} bytes of events and a {size}-byte event would "
            f"pass its maximum of {max_bytes} (KFAAS_ASYNC_QUEUE_MAX_BYTES)"
        )
    return None


# A delivery given back unfinished is offered again after this long, so that a fault that made it
# fail (a queue server restarting, say) has time to pass instead of failing it in a tight loop.
ABANDONED_RETRY_SECONDS = 1.0


# -- Wire encoding shared by the durable queues ---------------------------------------------


def encode_event(event: AsyncEvent, *, due_at: float = 0.0) -> bytes:
    """One event as JSON bytes; ``due_at`` (wall-clock seconds, 0 = now) travels with it."""
    envelope: dict[str, Any] = {
        "v": 1,
        "requestId": event.request_id,
        "function": event.function_key,
        "acceptedAt": event.accepted_at,
        "invocations": event.invocations,
        "functionErrors": event.function_errors,
        "throttles": event.throttles,
        "carrier": event.carrier,
        "payload": base64.b64encode(event.payload).decode("ascii"),
    }
    if due_at:
        envelope["dueAt"] = due_at
    return json.dumps(envelope, separators=(",", ":")).encode()


def decode_event(data: bytes) -> tuple[AsyncEvent, float]:
    """The event and its due time from ``encode_event``'s bytes; ``QueueError`` if malformed."""
    try:
        envelope = json.loads(data)
        event = AsyncEvent(
            request_id=str(envelope["requestId"]),
            function_key=str(envelope["function"]),
            payload=base64.b64decode(envelope["payload"], validate=True),
            accepted_at=float(envelope["acceptedAt"]),
            invocations=int(envelope.get("invocations", 0)),
            function_errors=int(envelope.get("functionErrors", 0)),
            throttles=int(envelope.get("throttles", 0)),
            carrier={str(k): str(v) for k, v in envelope.get("carrier", {}).items()},
        )
        return event, float(envelope.get("dueAt", 0.0))
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise QueueError(f"not an encoded async event: {data[:80]!r}") from exc


# -- Queue URLs -------------------------------------------------------------------------------

QueueKind = Literal["memory", "redis", "kafka"]


@dataclass(frozen=True)
class QueueSpec:
    """Where a gateway keeps its async events, parsed from ``--async-queue``/KFAAS_ASYNC_QUEUE."""

    kind: QueueKind
    url: str = ""
    """Redis: the connection URL without kfaas's own query options."""
    bootstrap_servers: str = ""
    """Kafka: ``host:port[,host:port…]``."""
    name: str = ""
    """Redis: the key prefix (``kfaas:async``); Kafka: the topic (``kfaas-async``)."""
    group: str = "kfaas-dispatchers"
    partitions: int = 8
    """Kafka: partitions of topics kfaas creates (more partitions, more replicas can share)."""


_REDIS_OPTIONS = {"prefix", "group"}
_KAFKA_OPTIONS = {"group", "partitions"}


def parse_queue_url(raw: str) -> QueueSpec:
    """``memory``, ``redis[s]://host:port/db[?prefix=…&group=…]`` or
    ``kafka://host:port[,host:port]/[topic][?group=…&partitions=N]``; ValueError if neither."""
    text = raw.strip()
    if text in ("", "memory"):
        return QueueSpec("memory")
    parts = urllib.parse.urlsplit(text)
    options = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    if parts.scheme in ("redis", "rediss"):
        # Other query options are redis-py's own (ssl_cert_reqs, socket_timeout, …): kept.
        kept = urllib.parse.urlencode(
            [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k not in _REDIS_OPTIONS]
        )
        return QueueSpec(
            "redis",
            url=urllib.parse.urlunsplit(parts._replace(query=kept)),
            name=options.get("prefix") or "kfaas:async",
            group=options.get("group") or "kfaas-dispatchers",
        )
    if parts.scheme == "kafka":
        _check_options(raw, options, _KAFKA_OPTIONS)
        if not parts.netloc:
            raise ValueError(f"async queue {raw!r}: kafka:// needs host:port of a broker")
        try:
            partitions = int(options.get("partitions") or 8)
        except ValueError:
            raise ValueError(f"async queue {raw!r}: partitions must be a number") from None
        if partitions < 1:
            raise ValueError(f"async queue {raw!r}: partitions must be 1 or more")
        return QueueSpec(
            "kafka",
            bootstrap_servers=parts.netloc,
            name=parts.path.strip("/") or "kfaas-async",
            group=options.get("group") or "kfaas-dispatchers",
            partitions=partitions,
        )
    raise ValueError(
        f"async queue {raw!r} is not memory, redis://host:port/db or kafka://host:port/topic"
    )


def _check_options(raw: str, options: dict[str, str], known: set[str]) -> None:
    unknown = set(options) - known
    if unknown:
        raise ValueError(
            f"async queue {raw!r}: unknown option(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )


# -- Kafka offsets ------------------------------------------------------------------------


class OffsetTracker:
    """Which offset of one partition may be committed while records finish out of order.

    Kafka keeps one committed offset per partition: everything below it counts as done. The
    dispatcher works on many records of a partition at once, so the commit point is the lowest
    offset still outstanding (taken and not done); a restart redelivers from there, which can
    repeat finished records but never skips one.
    """

    def __init__(self) -> None:
        self._outstanding: set[int] = set()
        self._highest_seen = -1
        self._committed = -1

    def taken(self, offsets: Iterable[int]) -> None:
        for offset in offsets:
            self._outstanding.add(offset)
            self._highest_seen = max(self._highest_seen, offset)

    def done(self, offset: int) -> None:
        self._outstanding.discard(offset)

    def committable(self) -> int | None:
        """The offset to commit (the next one to read), or None when nothing new is safe."""
        if self._highest_seen < 0:
            return None
        point = min(self._outstanding) if self._outstanding else self._highest_seen + 1
        if point <= self._committed:
            return None
        return point

    def committed(self, offset: int) -> None:
        self._committed = max(self._committed, offset)


# -- Background loops of the durable queues -----------------------------------------------------


# A queue's loop (mover, heartbeat, fetcher, dispatcher) that keeps failing restarts once a second.
LOOP_RESTART = aiokit.Backoff(first=1.0, most=1.0)
