"""Reserved concurrency across replicas (ADR 028): the pure bookkeeping, the limiter's modes over
a stand-in for the Redis slots, and the Router throttling on the limiter's word."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

import pytest

from kfaas.backends import Endpoint, EndpointsListener
from kfaas.brokers.errors import BrokerUnavailable
from kfaas.config import Settings
from kfaas.gateway.auth import Auth
from kfaas.gateway.errors import TooManyRequests
from kfaas.gateway.metrics import GatewayMetrics
from kfaas.gateway.registry import FunctionRegistry
from kfaas.gateway.reserved import (
    Census,
    Health,
    Leases,
    Mode,
    SharedLimiter,
    fallback_share,
    shared_limiter,
)
from kfaas.gateway.routing import Router
from kfaas.gateway.serving import compose_gateway


def test_the_fallback_share_never_adds_up_to_more_than_reserved() -> None:
    for reserved in range(0, 12):
        for replicas in range(1, 12):
            assert fallback_share(reserved, replicas) * replicas <= reserved
    assert fallback_share(10, 3) == 3
    assert fallback_share(3, 1) == 3
    # Never counted: another replica may run the whole budget.
    assert fallback_share(10, None) == 0


def test_leases_are_fungible_and_counted_per_function() -> None:
    leases = Leases("gw-a")
    first, second = leases.new_member(), leases.new_member()
    assert first.startswith("gw-a:") and first != second
    leases.add("ns/f", first)
    leases.add("ns/f", second)
    leases.add("ns/g", leases.new_member())
    assert leases.count("ns/f") == 2 and leases.count("ns/g") == 1
    assert leases.pop("ns/f") in {first, second}
    assert leases.pop("ns/f") in {first, second}
    assert leases.pop("ns/f") is None
    assert list(leases.snapshot()) == ["ns/g"]
    leases.discard("ns/g", "not-held")
    assert leases.count("ns/g") == 1


def mode_of(holder: Health | SharedLimiter) -> Mode:
    # Read through a call: mypy would otherwise keep the mode narrowed across transitions.
    return holder.mode


def test_health_goes_degraded_then_back_after_the_grace_period() -> None:
    health = Health(grace_seconds=4)
    assert health.failed(10) is True
    assert health.failed(11) is False  # logged once per outage
    assert mode_of(health) is Mode.DEGRADED
    assert health.answered(20) is False
    assert mode_of(health) is Mode.RECOVERING
    assert health.answered(23) is False
    assert health.failed(23.5) is True  # down again while recovering: a new outage
    assert health.answered(30) is False
    assert health.answered(34) is True
    assert mode_of(health) is Mode.SHARED
    assert health.answered(40) is False


def test_the_census_counts_only_once_the_others_had_time_to_count_this_replica() -> None:
    census = Census(settle_seconds=4)
    census.counted(3, now=100)
    assert census.replicas is None
    census.counted(3, now=103)
    assert census.replicas is None
    census.counted(2, now=104)
    assert census.replicas == 2


class FakeSlots:
    """The slot commands of ``SharedSlots`` over a dict, with a switch for an outage."""

    def __init__(self) -> None:
        self.up = True
        self.taken: dict[str, set[str]] = {}
        self.replicas = 1

    def _check(self) -> None:
        if not self.up:
            raise BrokerUnavailable("redis: refused")

    async def acquire(self, function: str, member: str, limit: int, lease_ms: int) -> bool:
        self._check()
        members = self.taken.setdefault(function, set())
        if len(members) >= limit:
            return False
        members.add(member)
        return True

    async def renew(self, function: str, members: Iterable[str], lease_ms: int) -> None:
        self._check()
        self.taken.setdefault(function, set()).update(members)

    async def release(self, function: str, members: Iterable[str]) -> None:
        self._check()
        self.taken.get(function, set()).difference_update(members)

    async def reconnect(self) -> None:
        pass

    async def heartbeat(self, replica: str, lease_ms: int) -> int:
        self._check()
        return self.replicas


def limiter_over(slots: FakeSlots, modes: list[Mode] | None = None) -> SharedLimiter:
    seen = modes if modes is not None else []
    return SharedLimiter(
        cast(Any, slots), "gw-a", tick_seconds=0.01, lease_seconds=1, on_mode=seen.append
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_shared_count_admits_up_to_reserved_and_takes_back_released_slots() -> None:
    slots = FakeSlots()
    limiter = limiter_over(slots)
    assert [await limiter.admit("ns/f", 2) for _ in range(3)] == [True, True, False]
    assert len(slots.taken["ns/f"]) == 2 and limiter.leases.count("ns/f") == 2
    limiter.release("ns/f")
    await settle()
    assert len(slots.taken["ns/f"]) == 1
    assert await limiter.admit("ns/f", 2) is True


async def test_an_outage_falls_back_to_the_share_and_recovery_registers_running_slots() -> None:
    slots = FakeSlots()
    slots.replicas = 2
    modes: list[Mode] = []
    limiter = limiter_over(slots, modes)
    # Counted by the others for two ticks: the share is known (5 // 2).
    await limiter.tick()
    await asyncio.sleep(0.03)
    await limiter.tick()
    assert limiter.census.replicas == 2
    assert await limiter.admit("ns/f", 5) is True
    slots.up = False
    admitted = [await limiter.admit("ns/f", 5) for _ in range(4)]
    assert admitted == [True, False, False, False]  # 2 running = the share
    assert mode_of(limiter) is Mode.DEGRADED and modes == [Mode.DEGRADED]
    limiter.release("ns/f")  # not told to Redis: it is down
    assert await limiter.admit("ns/f", 5) is True
    slots.up = True
    slots.taken.clear()  # Redis came back empty
    await limiter.tick()
    assert mode_of(limiter) is Mode.RECOVERING
    assert len(slots.taken["ns/f"]) == 2  # the running ones, registered again
    # Recovering: the share still bounds it, whatever Redis says.
    assert await limiter.admit("ns/f", 5) is False
    await asyncio.sleep(0.03)
    await limiter.tick()
    assert mode_of(limiter) is Mode.SHARED
    assert modes == [Mode.DEGRADED, Mode.RECOVERING, Mode.SHARED]
    assert [await limiter.admit("ns/f", 5) for _ in range(4)] == [True, True, True, False]


async def test_a_replica_that_never_counted_the_others_admits_nothing_in_an_outage() -> None:
    slots = FakeSlots()
    slots.up = False
    limiter = limiter_over(slots)
    assert await limiter.admit("ns/f", 100) is False
    assert mode_of(limiter) is Mode.DEGRADED


async def test_a_cancelled_admission_gives_its_slot_back() -> None:
    slots = FakeSlots()
    limiter = limiter_over(slots)
    hang = asyncio.Event()

    async def slow_acquire(function: str, member: str, limit: int, lease_ms: int) -> bool:
        slots.taken.setdefault(function, set()).add(member)
        await hang.wait()
        return True

    slots.acquire = slow_acquire  # type: ignore[method-assign]
    call = asyncio.ensure_future(limiter.admit("ns/f", 3))
    await settle()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await settle()
    assert limiter.leases.count("ns/f") == 0 and not slots.taken["ns/f"]


async def test_a_slot_given_back_while_another_admission_waits_is_never_leaked() -> None:
    # A refused admission once took away a running invocation's lease, which then stayed held
    # and renewed for ever: the function ran one short after every such race.
    slots = FakeSlots()
    limiter = limiter_over(slots)
    assert await limiter.admit("ns/f", 1) is True
    answer = asyncio.Event()
    real_acquire = slots.acquire

    async def slow_acquire(function: str, member: str, limit: int, lease_ms: int) -> bool:
        await answer.wait()
        return await real_acquire(function, member, limit, lease_ms)

    slots.acquire = slow_acquire  # type: ignore[method-assign]
    refused = asyncio.ensure_future(limiter.admit("ns/f", 1))
    await settle()
    limiter.release("ns/f")  # the running one ends while Redis is asked
    await settle()
    answer.set()
    # Redis had room again by then: admitted, and the one slot is this admission's.
    assert await refused is True
    assert limiter.leases.count("ns/f") == 1 and len(slots.taken["ns/f"]) == 1
    limiter.release("ns/f")
    await settle()
    assert limiter.leases.count("ns/f") == 0 and not slots.taken["ns/f"]


class Refusing:
    """A limiter that admits ``room`` invocations in all and records what was given back."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.asked = 0
        self.released: list[str] = []

    async def admit(self, function: str, reserved: int) -> bool:
        self.asked += 1
        if self.room == 0:
            return False
        self.room -= 1
        return True

    def release(self, function: str) -> None:
        self.released.append(function)
        self.room += 1


async def test_the_router_throttles_with_lambdas_reason_when_the_shared_count_is_full() -> None:
    limiter = Refusing(room=2)
    router = Router(lambda key, n: None, max_wait_seconds=0.05, limiter=limiter)
    router.set_endpoints("ns/f", [Endpoint("i1", "http://127.0.0.1:1", capacity=1)])
    latest = router.pool("ns/f", reserved=3)
    version = router.pool("ns/f:1", reserved=3)
    slot = await latest.acquire()
    # Admitted, then no free instance in time: the slot goes back with the refusal.
    with pytest.raises(TooManyRequests) as waited:
        await latest.acquire()
    assert waited.value.reason == "ConcurrentInvocationLimitExceeded"
    assert limiter.released == ["ns/f"]
    limiter.room = 0  # versions share the function's slots
    with pytest.raises(TooManyRequests) as throttled:
        await version.acquire()
    assert throttled.value.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
    latest.release(slot)
    assert limiter.released == ["ns/f", "ns/f"]


async def test_reserved_zero_and_unreserved_functions_never_ask_the_limiter() -> None:
    limiter = Refusing(room=0)
    router = Router(lambda key, n: None, max_wait_seconds=0.05, limiter=limiter)
    router.set_endpoints("ns/f", [Endpoint("i1", "http://127.0.0.1:1", capacity=5)])
    with pytest.raises(TooManyRequests):
        await router.pool("ns/f", reserved=0).acquire()
    slot = await router.pool("ns/f", reserved=None).acquire()
    router.pool("ns/f", reserved=None).release(slot)
    assert limiter.asked == 0 and limiter.released == []


class NoInstances:
    """A backend that never starts anything: enough to compose a gateway."""

    def subscribe(self, listener: EndpointsListener) -> None:
        pass

    def demand(self, function_key: str, concurrency: int) -> None:
        pass


async def test_a_replicated_gateway_without_a_platform_redis_warns_it_counts_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert shared_limiter(None, GatewayMetrics()) is None
    for replicated, warned in ((True, True), (False, False)):  # kfaas dev: one process, exact
        caplog.clear()
        gateway = compose_gateway(
            FunctionRegistry(default_namespace="default", region="us-east-1"),
            NoInstances(),
            Settings(),
            async_queue="memory",
            authentication=Auth("none"),
            replicated=replicated,
        )
        await gateway.destinations.close()
        lines = [
            r for r in caplog.records if getattr(r, "event", "") == "reserved-limiter-per-replica"
        ]
        assert bool(lines) is warned
