"""The Redis fixture is a real server: consumer-group streams work and data survives a restart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.redis_server import RedisServer

pytestmark = pytest.mark.redis


async def test_stream_consumer_group_round_trip(redis_service: RedisServer) -> None:
    client = aioredis.from_url(redis_service.url, decode_responses=True)
    try:
        stream = "kfaas:test:round-trip"
        await client.delete(stream)
        await client.xgroup_create(stream, "workers", id="0", mkstream=True)
        sent = [await client.xadd(stream, {"n": str(n)}) for n in range(5)]

        delivered: Any = await client.xreadgroup("workers", "w1", {stream: ">"}, count=10)
        [(name, entries)] = delivered
        assert name == stream
        assert [entry_id for entry_id, _ in entries] == sent
        assert [fields["n"] for _, fields in entries] == ["0", "1", "2", "3", "4"]

        assert await client.xack(stream, "workers", *sent[:3]) == 3
        pending = await client.xpending(stream, "workers")
        assert pending["pending"] == 2
        assert pending["min"] == sent[3]
    finally:
        await client.aclose()


async def test_data_and_pending_entries_survive_a_restart(redis_service: RedisServer) -> None:
    stream = "kfaas:test:durable"
    client = aioredis.from_url(redis_service.url, decode_responses=True)
    try:
        await client.delete(stream)
        await client.xgroup_create(stream, "workers", id="0", mkstream=True)
        first = await client.xadd(stream, {"payload": "kept"})
        second = await client.xadd(stream, {"payload": "pending"})
        await client.xreadgroup("workers", "w1", {stream: ">"})
        await client.xack(stream, "workers", first)
    finally:
        await client.aclose()

    # RDB snapshots are off: whatever comes back came back through the append-only file.
    await asyncio.to_thread(redis_service.restart)

    client = aioredis.from_url(redis_service.url, decode_responses=True)
    try:
        entries: Any = await client.xrange(stream)
        assert [(entry_id, fields["payload"]) for entry_id, fields in entries] == [
            (first, "kept"),
            (second, "pending"),
        ]
        pending = await client.xpending_range(stream, "workers", "-", "+", 10)
        assert [(entry["message_id"], entry["consumer"]) for entry in pending] == [(second, "w1")]
        config = await client.config_get("appendonly")
        assert config == {"appendonly": "yes"}
    finally:
        await client.aclose()
