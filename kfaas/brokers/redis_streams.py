"""The Redis commands kfaas uses on streams, with redis-py's errors translated at the boundary.

The gateway's durable async queue and the stream pollers both keep their work in Redis Streams
read by consumer groups. Entries are returned as ``(id, fields)`` with the id as text and the
fields as bytes, as Redis stores them; every redis-py error leaves as a ``kfaas.brokers.errors``
exception (``GroupMissing`` when the stream lost its group). A client is opened with a named
``RedisPolicy``; a policy with a call deadline bounds every command here by it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from .errors import BrokerError, redis_error_code, redis_errors
from .policies import RedisPolicy, open_redis

Entry = tuple[str, dict[bytes, bytes]]


async def _awaited(result: Any) -> Any:
    # redis-py types its commands as "value or awaitable" for its sync and async clients alike.
    if isinstance(result, Awaitable):
        return await result
    return result


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(raw: Any) -> list[Entry]:
    return [(_text(entry_id), dict(fields or {})) for entry_id, fields in raw or []]


@dataclass(frozen=True)
class Claimed:
    """What one XAUTOCLAIM took over: the next cursor, the entries, and the pending ids whose
    entries were deleted from the stream (nothing left to run for them)."""

    cursor: str
    entries: list[Entry]
    deleted: list[str]


class RedisStreams:
    """One connection pool to one Redis server, set up as ``policy`` says."""

    def __init__(self, url: str, policy: RedisPolicy) -> None:
        self.url = url
        self.policy = policy
        self.client = open_redis(url, policy)

    async def close(self) -> None:
        await self.client.aclose()

    @contextlib.asynccontextmanager
    async def _call(self, what: str, blocking_seconds: float = 0.0) -> AsyncIterator[None]:
        """Translate errors of the commands inside; bound them by the policy's call deadline."""
        with redis_errors(what):
            if self.policy.call_seconds is None:
                yield
            else:
                async with asyncio.timeout(blocking_seconds + self.policy.call_seconds):
                    yield

    # -- groups ------------------------------------------------------------------------------

    async def ensure_group(self, stream: str, group: str, start: str) -> None:
        """Create the consumer group at ``start`` ($ for new entries, 0 for all) unless it exists;
        the stream is created with it."""
        try:
            async with self._call(f"creating group {group} on {stream}"):
                await _awaited(self.client.xgroup_create(stream, group, id=start, mkstream=True))
        except BrokerError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ResponseError) and redis_error_code(cause) == "BUSYGROUP"):
                raise

    async def group_backlog(self, stream: str, group: str) -> tuple[int, int | None]:
        """The group's pending entries and its lag (entries not yet delivered; None when Redis
        cannot tell: before 7.0, or after deletions it cannot count past), from XINFO GROUPS."""
        async with self._call("XINFO GROUPS"):
            groups = await _awaited(self.client.xinfo_groups(stream))
        for info in groups or []:
            if _text(info.get("name", b"")) == group:
                lag = info.get("lag")
                return int(info.get("pending") or 0), None if lag is None else int(lag)
        return 0, None

    # -- reading -----------------------------------------------------------------------------

    async def read(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        count: int,
        block_ms: int | None,
        start: str,
    ) -> list[Entry]:
        """XREADGROUP: new entries (start ``>``) or this consumer's pending ones (start ``0``)."""
        async with self._call("XREADGROUP", (block_ms or 0) / 1000):
            raw = await _awaited(
                self.client.xreadgroup(
                    group, consumer, {stream: start}, count=count, block=block_ms
                )
            )
        for _, entries in raw or []:
            return _entries(entries)
        return []

    async def autoclaim(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, start: str, count: int
    ) -> Claimed:
        """XAUTOCLAIM entries idle for ``min_idle_ms``."""
        async with self._call("XAUTOCLAIM"):
            raw = await _awaited(
                self.client.xautoclaim(
                    stream, group, consumer, min_idle_ms, start_id=start, count=count
                )
            )
        cursor, entries = raw[0], raw[1]
        # Redis 7 lists deleted entries' ids third; before, they come back as (id, None).
        deleted = [_text(entry_id) for entry_id in (raw[2] if len(raw) > 2 else [])]
        claimed = _entries(entries)
        deleted += [entry_id for entry_id, fields in claimed if not fields]
        return Claimed(_text(cursor), [e for e in claimed if e[1]], deleted)

    async def keep_claimed(
        self, stream: str, group: str, consumer: str, entry_ids: Sequence[str]
    ) -> None:
        """Reset the idle time of entries still being worked on, so nobody reclaims them."""
        if not entry_ids:
            return
        async with self._call("XCLAIM"):
            await _awaited(
                self.client.xclaim(stream, group, consumer, 0, list(entry_ids), justid=True)
            )

    async def set_delivery_count(
        self, stream: str, group: str, consumer: str, entry_ids: Sequence[str], count: int
    ) -> None:
        """Record in the group how often entries were delivered (XCLAIM … RETRYCOUNT)."""
        if not entry_ids:
            return
        async with self._call("XCLAIM RETRYCOUNT"):
            await _awaited(
                self.client.xclaim(
                    stream, group, consumer, 0, list(entry_ids), retrycount=count, justid=True
                )
            )

    async def delivery_counts(
        self, stream: str, group: str, entry_ids: Sequence[str]
    ) -> dict[str, int]:
        """How many times each pending entry was delivered (XPENDING)."""
        if not entry_ids:
            return {}
        async with self._call("XPENDING"):
            raw = await _awaited(
                self.client.xpending_range(
                    stream, group, min=entry_ids[0], max=entry_ids[-1], count=len(entry_ids) * 4
                )
            )
        wanted = set(entry_ids)
        counts = {}
        for item in raw or []:
            entry_id = _text(item["message_id"])
            if entry_id in wanted:
                counts[entry_id] = int(item["times_delivered"])
        return counts

    # -- finishing ---------------------------------------------------------------------------

    async def ack(self, stream: str, group: str, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        async with self._call("XACK"):
            await _awaited(self.client.xack(stream, group, *entry_ids))

    async def ack_and_delete(self, stream: str, group: str, entry_ids: Sequence[str]) -> None:
        """XACK and XDEL in one transaction: the entries are done and need not be kept."""
        async with self._call("XACK+XDEL"), self.client.pipeline(transaction=True) as pipe:
            pipe.xack(stream, group, *entry_ids)
            pipe.xdel(stream, *entry_ids)
            await pipe.execute()

    # -- writing -----------------------------------------------------------------------------

    async def add(self, stream: str, fields: Mapping[str, str | bytes]) -> str:
        """XADD one entry; its id."""
        async with self._call(f"XADD {stream}"):
            entry_id = await _awaited(self.client.xadd(stream, dict[Any, Any](fields)))
        return _text(entry_id)

    async def add_all(self, stream: str, fields_list: Sequence[Mapping[str, str | bytes]]) -> None:
        """XADD entries in one round trip (MULTI/EXEC)."""
        async with self._call(f"XADD {stream}"), self.client.pipeline(transaction=True) as pipe:
            for fields in fields_list:
                pipe.xadd(stream, dict[Any, Any](fields))
            await pipe.execute()

    async def schedule(self, key: str, member: bytes, score: int) -> None:
        """ZADD one member to a sorted set (the async queue's not-yet-due retries)."""
        async with self._call(f"ZADD {key}"):
            await _awaited(self.client.zadd(key, {member: score}))

    def script(self, source: str) -> Script:
        """A Lua script, sent by its hash once Redis has it."""
        return Script(self, self.client.register_script(source))

    async def appendonly(self) -> bool | None:
        """Whether Redis logs every write (AOF), None when CONFIG is renamed or forbidden."""
        try:
            async with self._call("CONFIG GET appendonly"):
                config: dict[Any, Any] = await self.client.config_get("appendonly")
        except BrokerError as exc:
            if isinstance(exc.__cause__, ResponseError):
                return None
            raise
        return config.get(b"appendonly", config.get("appendonly")) in (b"yes", "yes")


class Script:
    def __init__(self, streams: RedisStreams, script: Any) -> None:
        self._streams = streams
        self._script = script

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        async with self._streams._call("EVALSHA"):
            return await self._script(keys=list(keys), args=list(args))
