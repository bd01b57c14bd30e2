"""The durable async queue on Redis Streams: what a 202 stands on in a cluster (ADR 005).

Keys under one prefix (``kfaas:async`` by default):

- ``<prefix>:stream`` — events ready to run, read by the consumer group of all gateway replicas
  (``XREADGROUP``); an entry is acknowledged and deleted only once its event is fully handled.
- ``<prefix>:delayed`` — a sorted set of events waiting for a retry, scored by their due time in
  milliseconds. A Lua script moves due members to the stream atomically, so a retry is always in
  exactly one of the two keys and never only in a gateway's memory.

A gateway that dies keeps its entries pending in the group; once they have been idle for
``redelivery_seconds`` another replica takes them over with ``XAUTOCLAIM``. A live gateway keeps
its in-flight entries fresh (``XCLAIM … JUSTID``) so a long invocation is not taken from it.
Redis is reached through ``kfaas.brokers`` (ADR 019) with the ``BOUNDED_CALLS`` policy; brief
outages (a restart) are ridden out by retrying until a deadline (``durable.within_outage``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from kfaas.aiokit import wait_event
from kfaas.brokers.errors import BrokerError, BrokerUnavailable, GroupMissing
from kfaas.brokers.policies import BOUNDED_CALLS
from kfaas.brokers.redis_streams import RedisStreams

from .asyncq import AsyncEvent, Delivery, QueueError, QueueSpec, decode_event, encode_event
from .durable import QueueLoops, within_outage

log = logging.getLogger("kfaas.gateway.redis_queue")

_T = TypeVar("_T")
# The field an entry (and the move script) keeps the encoded event in.
_FIELD = "event"
# How long one XREADGROUP blocks; short enough to run reclaims and notice shutdown promptly.
_BLOCK_SECONDS = 1.0
# How often the mover looks for due retries when nothing tells it sooner (other replicas' puts).
_MOVER_POLL_SECONDS = 0.5
_MOVE_BATCH = 100
_CLAIM_BATCH = 10

# Moves due members of the delayed set (KEYS[1]) to the stream (KEYS[2]) in one atomic step and
# answers how many moved and the next due score, so the mover knows how long it may wait.
_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'event', member)
  redis.call('ZREM', KEYS[1], member)
end
local following = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, following[2] or false}
"""


def consumer_name() -> str:
    """A name no other gateway process uses: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class RedisQueue:
    def __init__(
        self,
        spec: QueueSpec,
        *,
        redelivery_seconds: float = 30.0,
        unavailable_seconds: float = 10.0,
    ) -> None:
        self.spec = spec
        self.stream = f"{spec.name}:stream"
        self.delayed = f"{spec.name}:delayed"
        self.group = spec.group
        self.consumer = consumer_name()
        self.redelivery_ms = max(1, int(redelivery_seconds * 1000))
        self.unavailable_seconds = unavailable_seconds
        # redis-py's own retries would hide how long an outage lasted; ours are bounded below.
        self._redis = RedisStreams(spec.url, BOUNDED_CALLS)
        self._in_flight: set[str] = set()
        self._reclaimed: deque[Delivery] = deque()
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._claiming = False
        self._mover_wake = asyncio.Event()
        self._loops = QueueLoops(log)
        self._closing = self._loops.closing
        self._move_due = self._redis.script(_MOVE_DUE)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._within_outage("connect", self._ensure_group)
            await self._warn_unless_durable()
        except QueueError:
            await self._redis.close()
            raise
        self._loops.start(
            {
                "kfaas-async-redis-mover": self._mover,
                "kfaas-async-redis-heartbeat": self._heartbeat,
            }
        )

    async def close(self) -> None:
        self._mover_wake.set()
        await self._loops.stop()
        await self._redis.close()

    async def _ensure_group(self) -> None:
        await self._redis.ensure_group(self.stream, self.group, "0")

    async def _warn_unless_durable(self) -> None:
        """Say so when a 202 would not survive a Redis restart (AOF off) or an OS crash."""
        # CONFIG may be renamed or forbidden by ACLs (None): nothing to check then.
        if await self._within_outage("read its configuration", self._redis.appendonly) is False:
            log.warning(
                "redis at %s runs without appendonly: accepted async events are lost if it "
                "restarts; set appendonly yes (and appendfsync always for power-loss safety)",
                self.spec.url,
            )

    # -- the AsyncQueue seam -------------------------------------------------------------------

    async def accept(self, event: AsyncEvent) -> None:
        # Bounded by the server's storage, not by the gateway's memory.
        await self.put(event)

    async def put(self, event: AsyncEvent, delay: float = 0.0) -> None:
        if delay <= 0:
            data = encode_event(event)
            await self._within_outage(
                "enqueue", lambda: self._redis.add(self.stream, {_FIELD: data})
            )
            return
        due_at = time.time() + delay
        member = encode_event(event, due_at=due_at)
        score = int(due_at * 1000)
        await self._within_outage(
            "schedule a retry", lambda: self._redis.schedule(self.delayed, member, score)
        )
        self._mover_wake.set()

    async def take(self) -> Delivery:
        while True:
            if self._closing.is_set():
                # redis-py can lose a cancellation that lands in a blocked read; the flag ends
                # takers that missed theirs.
                raise QueueError(f"redis queue {self.stream} is closed")
            if self._reclaimed:
                return self._reclaimed.popleft()
            try:
                if time.monotonic() >= self._next_claim and not self._claiming:
                    await self._reclaim()
                    continue
                delivery = await self._read()
            except BrokerUnavailable as exc:
                log.warning("redis queue unavailable while reading: %s", exc)
                await asyncio.sleep(1.0)
                continue
            except GroupMissing:
                # The stream was deleted (or Redis lost it): recreate the group and go on.
                log.error("redis queue %s lost its consumer group; recreating it", self.stream)
                await self._within_outage("recreate its consumer group", self._ensure_group)
                continue
            except BrokerError as exc:
                raise QueueError(f"redis queue {self.stream}: {exc}") from exc
            if delivery is not None:
                return delivery

    async def done(self, delivery: Delivery) -> None:
        self._in_flight.discard(delivery.handle)
        await self._within_outage(
            "acknowledge",
            lambda: self._redis.ack_and_delete(self.stream, self.group, [delivery.handle]),
        )

    async def abandon(self, delivery: Delivery) -> None:
        # No longer kept fresh, the entry is reclaimed once idle for redelivery_seconds.
        self._in_flight.discard(delivery.handle)

    # -- reading -------------------------------------------------------------------------------

    async def _read(self) -> Delivery | None:
        until_claim = self._next_claim - time.monotonic()
        block = _BLOCK_SECONDS if self._claiming or until_claim <= 0 else until_claim
        block = min(_BLOCK_SECONDS, block)
        entries = await self._redis.read(
            self.stream,
            self.group,
            self.consumer,
            count=1,
            block_ms=max(1, int(block * 1000)),
            start=">",
        )
        for entry_id, fields in entries:
            delivery = await self._delivery(entry_id, fields)
            if delivery is not None:
                return delivery
        return None

    async def _reclaim(self) -> None:
        """Take over entries other (dead) consumers left idle past the redelivery timeout."""
        self._claiming = True
        try:
            claimed = await self._redis.autoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_ms=self.redelivery_ms,
                start=self._claim_cursor,
                count=_CLAIM_BATCH,
            )
        finally:
            self._claiming = False
        if claimed.deleted:
            # Pending ids whose entries are gone (deleted by hand): nothing left to run.
            await self._redis.ack(self.stream, self.group, claimed.deleted)
        for entry_id, fields in claimed.entries:
            log.info("redis queue: redelivering %r left idle by another dispatcher", entry_id)
            delivery = await self._delivery(entry_id, fields)
            if delivery is not None:
                self._reclaimed.append(delivery)
        self._claim_cursor = claimed.cursor
        if self._claim_cursor in ("0-0", "0"):
            self._claim_cursor = "0-0"
            self._next_claim = time.monotonic() + self.redelivery_ms / 2000

    async def _delivery(self, entry_id: str, fields: dict[bytes, bytes]) -> Delivery | None:
        try:
            event, _due = decode_event(fields[_FIELD.encode()])
        except (KeyError, QueueError) as exc:
            # Not ours to run and never will be: say so loudly and get it out of the way.
            log.error("redis queue %s: dropping malformed entry %r: %s", self.stream, entry_id, exc)
            await self._redis.ack_and_delete(self.stream, self.group, [entry_id])
            return None
        self._in_flight.add(entry_id)
        return Delivery(event, entry_id)

    # -- background loops --------------------------------------------------------------------

    async def _mover(self) -> None:
        """Move due retries from the delayed set to the stream, waking for the next due time."""
        while not self._closing.is_set():
            self._mover_wake.clear()
            wait = _MOVER_POLL_SECONDS
            try:
                moved, following = await self._move_due(
                    keys=[self.delayed, self.stream],
                    args=[int(time.time() * 1000), _MOVE_BATCH],
                )
                if int(moved) >= _MOVE_BATCH:
                    continue
                if following:
                    wait = min(wait, max(0.0, float(following) / 1000 - time.time()))
            except BrokerUnavailable as exc:
                log.warning("redis queue unavailable while moving retries: %s", exc)
                wait = 1.0
            await wait_event(self._mover_wake, wait)

    async def _heartbeat(self) -> None:
        """Reset the idle time of in-flight entries, so no other replica reclaims them."""
        while not await wait_event(self._closing, self.redelivery_ms / 3000):
            entries = list(self._in_flight)
            if not entries:
                continue
            try:
                await self._redis.keep_claimed(self.stream, self.group, self.consumer, entries)
            except BrokerUnavailable as exc:
                log.warning("redis queue unavailable while renewing claims: %s", exc)

    # -- errors ----------------------------------------------------------------------------------

    async def _within_outage(self, what: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``operation``, retrying while Redis is unavailable for ``unavailable_seconds``."""
        where = f"redis queue at {self.spec.url}"
        return await within_outage(where, what, operation, self.unavailable_seconds)
