"""A Redis call cancelled at any moment ends: shutdown (SIGTERM) must never wait on a reader.

redis-py 8 gave clients a 5 s socket timeout by default, and with one it sends each command
through ``asyncio.wait_for``, which on Python 3.11 loses a cancellation that lands as the send
completes: a poller's read-ahead task then read on forever after SIGTERM (CI, 2026-11-30).
``open_redis`` turns the socket timeout off for every policy; here, on the real Redis, blocking
reads and plain commands are cancelled at many moments and every one of them ends.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from services.redis_server import RedisServer

from kfaas.brokers.policies import BLOCKING_READS, BOUNDED_CALLS, RedisPolicy, open_redis
from kfaas.brokers.redis_streams import RedisStreams

POLICIES = [BLOCKING_READS, BOUNDED_CALLS]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda policy: policy.name)
def test_no_policy_sets_a_socket_timeout(policy: RedisPolicy) -> None:
    client = open_redis("redis://127.0.0.1:1/0", policy)
    assert client.connection_pool.connection_kwargs["socket_timeout"] is None


@pytest.mark.parametrize("policy", POLICIES, ids=lambda policy: policy.name)
async def test_a_reader_cancelled_at_any_moment_ends(
    redis_service: RedisServer, policy: RedisPolicy
) -> None:
    streams = RedisStreams(redis_service.url, policy)
    stream, group = f"cancel-{uuid.uuid4().hex[:8]}", "g"
    await streams.ensure_group(stream, group, "0")
    ended_by_cancel = 0

    async def read_forever() -> None:
        while True:
            await streams.read(stream, group, "c", count=10, block_ms=2, start=">")

    rng = random.Random(7)
    try:
        for _ in range(300):
            reader = asyncio.create_task(read_forever())
            await asyncio.sleep(rng.uniform(0, 0.004))
            reader.cancel()
            done, _ = await asyncio.wait({reader}, timeout=2)
            assert done, "a cancelled reader went on reading"
            ended_by_cancel += reader.cancelled()
    finally:
        await streams.close()
    assert ended_by_cancel == 300
