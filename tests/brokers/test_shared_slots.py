"""The shared slots of reserved concurrency on a real Redis (ADR 028): the Lua scripts' count,
leases that expire when their holder stops renewing them, and limiters of several replicas
sharing one budget through an outage of their Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from services.redis_server import RedisServer

from kfaas.brokers.limits import SharedSlots
from kfaas.gateway.reserved import Mode, SharedLimiter


async def eventually_async(
    read: Callable[[], Awaitable[int]], expected: int, within: float = 6.0
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (value := await read()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{value} != {expected}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def slots(redis_service: RedisServer) -> AsyncIterator[SharedSlots]:
    shared = SharedSlots(redis_service.url, prefix=f"kfaas-test:{uuid.uuid4().hex[:10]}:")
    yield shared
    await shared.close()


async def test_a_slot_is_taken_only_below_the_limit_and_given_back(slots: SharedSlots) -> None:
    taken = [await slots.acquire("ns/f", f"gw:{i}", 3, 10_000) for i in range(5)]
    assert taken == [True, True, True, False, False]
    assert await slots.taken("ns/f") == 3
    await slots.release("ns/f", ["gw:0"])
    assert await slots.acquire("ns/f", "gw:5", 3, 10_000) is True
    # Another function has a budget of its own.
    assert await slots.acquire("ns/g", "gw:0", 1, 10_000) is True


async def test_the_slots_of_a_holder_that_stopped_renewing_expire(slots: SharedSlots) -> None:
    assert await slots.acquire("ns/f", "crashed:1", 2, 300)
    assert await slots.acquire("ns/f", "alive:1", 2, 300)
    assert not await slots.acquire("ns/f", "alive:2", 2, 10_000)
    for _ in range(3):
        await asyncio.sleep(0.15)
        await slots.renew("ns/f", ["alive:1"], 300)
    # 450 ms later only the renewed one holds: the crashed replica's slot expired by itself.
    assert await slots.taken("ns/f") == 1
    assert await slots.acquire("ns/f", "alive:2", 2, 10_000)


async def test_replicas_are_counted_while_they_announce_themselves(slots: SharedSlots) -> None:
    assert await slots.heartbeat("gw-a", 300) == 1
    assert await slots.heartbeat("gw-b", 300) == 2
    assert await slots.heartbeat("gw-b", 300) == 2
    await asyncio.sleep(0.4)
    assert await slots.heartbeat("gw-b", 300) == 1


async def test_three_replicas_admit_reserved_in_all(slots: SharedSlots) -> None:
    limiters = [SharedLimiter(slots, f"gw-{i}") for i in range(3)]
    admitted = await asyncio.gather(*(limiters[i % 3].admit("ns/f", 4) for i in range(30)))
    assert admitted.count(True) == 4
    assert await slots.taken("ns/f") == 4


async def test_a_crashed_replica_s_slots_go_to_the_others_once_its_leases_expire(
    slots: SharedSlots,
) -> None:
    crashed = SharedLimiter(slots, "gw-crashed", tick_seconds=0.1, lease_seconds=0.6)
    alive = SharedLimiter(slots, "gw-alive", tick_seconds=0.1, lease_seconds=0.6)
    alive.start()
    try:
        assert [await crashed.admit("ns/f", 2) for _ in range(2)] == [True, True]
        assert await alive.admit("ns/f", 2) is False
        # The crashed replica never renews nor releases: within a lease the budget is free.
        await eventually_async(lambda: slots.taken("ns/f"), 0, within=3.0)
        assert [await alive.admit("ns/f", 2) for _ in range(3)] == [True, True, False]
        await asyncio.sleep(1.0)  # the survivor's running slots are renewed meanwhile
        assert await slots.taken("ns/f") == 2
    finally:
        await alive.stop()
    assert await slots.taken("ns/f") == 0  # given back on a clean stop


@pytest.mark.redis
async def test_an_outage_never_admits_more_than_reserved_and_recovery_restores_the_count(
    tmp_path: Path,
) -> None:
    # A Redis of this test's own, stopped and started again: the session's serves other tests.
    server = RedisServer(tmp_path)
    server.up()
    clients = [SharedSlots(server.url) for _ in range(3)]
    limiters = [
        SharedLimiter(client, f"gw-{i}", tick_seconds=0.1, lease_seconds=2)
        for i, client in enumerate(clients)
    ]
    try:
        for limiter in limiters:
            limiter.start()
        await asyncio.sleep(0.5)  # every replica counted by the others: the share is 7 // 3
        running = [
            sum(await asyncio.gather(*(lim.admit("ns/f", 7) for _ in range(5)))) for lim in limiters
        ]
        assert sum(running) == 7
        server.down()
        # In the outage each replica holds to its share, whatever it runs already.
        for limiter in limiters:
            while limiter.leases.count("ns/f"):
                limiter.release("ns/f")
        outage = [
            sum(await asyncio.gather(*(lim.admit("ns/f", 7) for _ in range(5)))) for lim in limiters
        ]
        assert outage == [2, 2, 2]
        assert all(limiter.mode is Mode.DEGRADED for limiter in limiters)
        server.up()
        for _ in range(50):
            if all(limiter.mode is Mode.SHARED for limiter in limiters):
                break
            await asyncio.sleep(0.1)
        assert all(limiter.mode is Mode.SHARED for limiter in limiters)
        # The 6 admitted in the outage still run and were registered again; the 7 given back
        # in the outage (Redis was not told) expire with their leases: then one more fits.
        await eventually_async(lambda: clients[0].taken("ns/f"), 6)
        more = await asyncio.gather(*(limiters[i % 3].admit("ns/f", 7) for i in range(6)))
        assert more.count(True) == 1
    finally:
        for limiter in limiters:
            await limiter.stop()
        server.down()
