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
Redis errors become ``QueueError``/``QueueUnavailable`` here; brief outages (a restart) are ridden
out by retrying until a deadline.
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
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .asyncq import (
    AsyncEvent,
    Delivery,
    QueueError,
    QueueSpec,
    QueueUnavailable,
    decode_event,
    encode_event,
    guarded_task,
    stop_tasks,
    wait_event,
)

log = logging.getLogger("kfaas.gateway.redis_queue")

_T = TypeVar("_T")
_FIELD = b"event"
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

# A call that takes longer than this is treated like a lost connection.
_CALL_SECONDS = 5.0
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


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
        # No socket_timeout: redis-py then sends through asyncio.wait_for, which on Python 3.11
        # can swallow a cancellation; our calls carry their own deadlines instead.
        self._client = aioredis.Redis.from_url(
            spec.url,
            socket_connect_timeout=5,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
        )
        self._in_flight: set[bytes] = set()
        self._reclaimed: deque[Delivery] = deque()
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._claiming = False
        self._mover_wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._move_script = self._client.register_script(_MOVE_DUE)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._retrying("connect", self._ensure_group)
        except QueueError:
            await self._client.aclose()
            raise
        await self._warn_unless_durable()
        self._tasks = [
            guarded_task("kfaas-async-redis-mover", self._mover, log),
            guarded_task("kfaas-async-redis-heartbeat", self._heartbeat, log),
        ]

    async def close(self) -> None:
        # The loops see the flag; cancelling alone is not enough, as a client library may
        # swallow a cancellation that lands inside one of its calls.
        self._closing.set()
        self._mover_wake.set()
        await stop_tasks(self._tasks)
        self._tasks.clear()
        await self._client.aclose()

    async def _ensure_group(self) -> None:
        try:
            await self._client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _warn_unless_durable(self) -> None:
        """Say so when a 202 would not survive a Redis restart (AOF off) or an OS crash."""
        try:
            config: dict[Any, Any] = await self._client.config_get("appendonly")
        except ResponseError:
            return  # CONFIG may be renamed or forbidden by ACLs; nothing to check then
        appendonly = config.get(b"appendonly", config.get("appendonly"))
        if appendonly not in (b"yes", "yes"):
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

            async def add() -> None:
                await self._client.xadd(self.stream, {_FIELD: data})

            await self._retrying("enqueue", add)
            return
        due_at = time.time() + delay
        member = encode_event(event, due_at=due_at)

        async def schedule() -> None:
            await self._client.zadd(self.delayed, {member: int(due_at * 1000)})

        await self._retrying("schedule a retry", schedule)
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
            except _TRANSIENT as exc:
                log.warning("redis queue unavailable while reading: %s", exc)
                await asyncio.sleep(1.0)
                continue
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise QueueError(f"redis queue {self.stream}: {exc}") from exc
                # The stream was deleted (or Redis lost it): recreate the group and go on.
                log.error("redis queue %s lost its consumer group; recreating it", self.stream)
                await self._ensure_group()
                continue
            if delivery is not None:
                return delivery

    async def done(self, delivery: Delivery) -> None:
        entry = delivery.handle.encode()
        self._in_flight.discard(entry)

        async def ack() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.xack(self.stream, self.group, entry)
                pipe.xdel(self.stream, entry)
                await pipe.execute()

        await self._retrying("acknowledge", ack)

    async def abandon(self, delivery: Delivery) -> None:
        # No longer kept fresh, the entry is reclaimed once idle for redelivery_seconds.
        self._in_flight.discard(delivery.handle.encode())

    # -- reading -------------------------------------------------------------------------------

    async def _read(self) -> Delivery | None:
        until_claim = self._next_claim - time.monotonic()
        block = _BLOCK_SECONDS if self._claiming or until_claim <= 0 else until_claim
        block = min(_BLOCK_SECONDS, block)
        async with asyncio.timeout(block + _CALL_SECONDS):
            reply: Any = await self._client.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=1,
                block=max(1, int(block * 1000)),
            )
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                delivery = await self._delivery(entry_id, fields)
                if delivery is not None:
                    return delivery
        return None

    async def _reclaim(self) -> None:
        """Take over entries other (dead) consumers left idle past the redelivery timeout."""
        self._claiming = True
        try:
            async with asyncio.timeout(_CALL_SECONDS):
                reply = await self._client.xautoclaim(
                    self.stream,
                    self.group,
                    self.consumer,
                    self.redelivery_ms,
                    start_id=self._claim_cursor,
                    count=_CLAIM_BATCH,
                )
        finally:
            self._claiming = False
        cursor, entries = reply[0], reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        if deleted:
            # Pending ids whose entries are gone (deleted by hand): nothing left to run.
            await self._client.xack(self.stream, self.group, *deleted)
        for entry_id, fields in entries:
            log.info("redis queue: redelivering %r left idle by another dispatcher", entry_id)
            delivery = await self._delivery(entry_id, fields)
            if delivery is not None:
                self._reclaimed.append(delivery)
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        if self._claim_cursor in ("0-0", "0"):
            self._claim_cursor = "0-0"
            self._next_claim = time.monotonic() + self.redelivery_ms / 2000

    async def _delivery(self, entry_id: bytes, fields: dict[bytes, bytes]) -> Delivery | None:
        try:
            event, _due = decode_event(fields[_FIELD])
        except (KeyError, QueueError) as exc:
            # Not ours to run and never will be: say so loudly and get it out of the way.
            log.error("redis queue %s: dropping malformed entry %r: %s", self.stream, entry_id, exc)
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.xack(self.stream, self.group, entry_id)
                pipe.xdel(self.stream, entry_id)
                await pipe.execute()
            return None
        self._in_flight.add(entry_id)
        return Delivery(event, entry_id.decode())

    # -- background loops --------------------------------------------------------------------

    async def _mover(self) -> None:
        """Move due retries from the delayed set to the stream, waking for the next due time."""
        while not self._closing.is_set():
            self._mover_wake.clear()
            wait = _MOVER_POLL_SECONDS
            try:
                async with asyncio.timeout(_CALL_SECONDS):
                    moved, following = await self._move_script(
                        keys=[self.delayed, self.stream],
                        args=[int(time.time() * 1000), _MOVE_BATCH],
                    )
                if int(moved) >= _MOVE_BATCH:
                    continue
                if following:
                    wait = min(wait, max(0.0, float(following) / 1000 - time.time()))
            except _TRANSIENT as exc:
                log.warning("redis queue unavailable while moving retries: %s", exc)
                wait = 1.0
            await wait_event(self._mover_wake, wait)

    async def _heartbeat(self) -> None:
        """Reset the idle time of in-flight entries, so no other replica reclaims them."""
        while not await wait_event(self._closing, self.redelivery_ms / 3000):
            entries: list[Any] = list(self._in_flight)
            if not entries:
                continue
            try:
                async with asyncio.timeout(_CALL_SECONDS):
                    await self._client.xclaim(
                        self.stream, self.group, self.consumer, 0, entries, justid=True
                    )
            except _TRANSIENT as exc:
                log.warning("redis queue unavailable while renewing claims: %s", exc)

    # -- errors ----------------------------------------------------------------------------------

    async def _retrying(self, what: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``operation``, retrying connection failures until ``unavailable_seconds`` pass."""
        deadline = time.monotonic() + self.unavailable_seconds
        delay = 0.05
        while True:
            try:
                async with asyncio.timeout(_CALL_SECONDS):
                    return await operation()
            except _TRANSIENT as exc:
                if time.monotonic() + delay > deadline:
                    raise QueueUnavailable(
                        f"redis queue at {self.spec.url} could not {what} within "
                        f"{self.unavailable_seconds:g} s: {exc}"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except RedisError as exc:
                raise QueueError(f"redis queue at {self.spec.url} could not {what}: {exc}") from exc
