"""The Redis commands the stream poller uses, with redis-py's errors translated at the boundary.

The only module of the pollers that imports redis. Entries are returned as `(id, fields)` with the
id as text and the fields as bytes, as Redis stores them; every redis-py error becomes a
`SourceError` (reading, acknowledging) or a `DestinationError` (writing to an on-failure stream).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from kfaas.pollers.errors import DestinationError, SourceError

Entry = tuple[str, dict[bytes, bytes]]


@contextmanager
def _translated(what: str, error: type[Exception] = SourceError) -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise error(f"redis: {what}: {exc}") from exc


async def _awaited(result: Any) -> Any:
    # redis-py types its commands as "value or awaitable" for its sync and async clients alike.
    if isinstance(result, Awaitable):
        return await result
    return result


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(raw: Any) -> list[Entry]:
    return [(_text(entry_id), dict(fields or {})) for entry_id, fields in raw or []]


class RedisStreams:
    """One connection pool to one Redis server."""

    def __init__(self, url: str) -> None:
        self.url = url
        # No socket timeout of our own: XREADGROUP BLOCK waits server-side; health checks
        # find dead connections after a server restart.
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url, health_check_interval=5, socket_connect_timeout=5, retry_on_timeout=False
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def ensure_group(self, stream: str, group: str, start: str) -> None:
        """Create the consumer group at `start` ($ for new entries, 0 for all) unless it exists."""
        try:
            await _awaited(self.client.xgroup_create(stream, group, id=start, mkstream=True))
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise SourceError(f"redis: creating group {group} on {stream}: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise SourceError(f"redis: creating group {group} on {stream}: {exc}") from exc

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
        """XREADGROUP: new entries (start `>`) or this consumer's own pending ones (start `0`)."""
        with _translated("XREADGROUP"):
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
    ) -> tuple[str, list[Entry]]:
        """XAUTOCLAIM entries idle for `min_idle_ms`: the next cursor and the claimed entries."""
        with _translated("XAUTOCLAIM"):
            raw = await _awaited(
                self.client.xautoclaim(
                    stream, group, consumer, min_idle_ms, start_id=start, count=count
                )
            )
        cursor, entries = raw[0], raw[1]
        # Entries deleted from the stream while pending come back as (id, None): skip them.
        return _text(cursor), [e for e in _entries(entries) if e[1]]

    async def keep_claimed(
        self, stream: str, group: str, consumer: str, entry_ids: Sequence[str]
    ) -> None:
        """Reset the idle time of entries still being worked on, so nobody reclaims them."""
        if not entry_ids:
            return
        with _translated("XCLAIM"):
            await _awaited(
                self.client.xclaim(stream, group, consumer, 0, list(entry_ids), justid=True)
            )

    async def set_delivery_count(
        self, stream: str, group: str, consumer: str, entry_ids: Sequence[str], count: int
    ) -> None:
        """Record in the group how often entries were delivered (XCLAIM … RETRYCOUNT)."""
        if not entry_ids:
            return
        with _translated("XCLAIM RETRYCOUNT"):
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
        with _translated("XPENDING"):
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

    async def ack(self, stream: str, group: str, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        with _translated("XACK"):
            await _awaited(self.client.xack(stream, group, *entry_ids))

    async def group_backlog(self, stream: str, group: str) -> tuple[int, int | None]:
        """The group's pending entries and its lag (entries not yet delivered; None when Redis
        cannot tell: before 7.0, or after deletions it cannot count past), from XINFO GROUPS."""
        with _translated("XINFO GROUPS"):
            groups = await _awaited(self.client.xinfo_groups(stream))
        for info in groups or []:
            if _text(info.get("name", b"")) == group:
                lag = info.get("lag")
                return int(info.get("pending") or 0), None if lag is None else int(lag)
        return 0, None

    async def add(self, stream: str, fields_list: Sequence[Mapping[str, str | bytes]]) -> None:
        """XADD entries in one round trip (MULTI/EXEC), for the on-failure destination."""
        with _translated(f"XADD {stream}", DestinationError):
            async with self.client.pipeline(transaction=True) as pipe:
                for fields in fields_list:
                    pipe.xadd(stream, dict[Any, Any](fields))
                await pipe.execute()
