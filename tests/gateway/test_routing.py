"""Routing and throttling decisions of one function pool, without any instance process."""

from __future__ import annotations

import asyncio

import pytest

from kfaas.backends import Endpoint
from kfaas.gateway.errors import ResourceNotReady, TooManyRequests
from kfaas.gateway.routing import FunctionPool, Router


def make_pool(reserved: int | None = None, wait: float = 5.0) -> tuple[FunctionPool, list[int]]:
    demand: list[int] = []
    pool = FunctionPool(
        "default/fn",
        reserved=reserved,
        max_wait_seconds=wait,
        on_demand=lambda key, value: demand.append(value),
    )
    return pool, demand


async def test_least_outstanding_and_never_over_capacity() -> None:
    pool, _ = make_pool()
    pool.set_endpoints([Endpoint("a", "http://a", 2), Endpoint("b", "http://b", 2)])
    taken = [await pool.acquire() for _ in range(4)]
    assert sorted(slot.endpoint.instance_id for slot in taken) == ["a", "a", "b", "b"]
    assert all(slot.in_flight <= slot.endpoint.capacity for slot in taken)
    fifth = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    assert not fifth.done(), "a fifth invocation must wait: every worker is busy"
    pool.release(taken[0])
    slot = await asyncio.wait_for(fifth, 1)
    assert slot.endpoint.instance_id == taken[0].endpoint.instance_id


async def test_waiting_request_is_held_until_an_instance_is_ready() -> None:
    pool, demand = make_pool()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    assert demand[-1] == 1, "the backend must hear about the held request (scale from zero)"
    pool.set_endpoints([Endpoint("a", "http://a", 1)])
    slot = await asyncio.wait_for(waiting, 1)
    assert slot.endpoint.instance_id == "a"
    pool.release(slot)
    assert demand[-1] == 0


async def test_waiters_are_served_in_arrival_order() -> None:
    pool, _ = make_pool()
    order: list[int] = []

    async def call(index: int) -> None:
        slot = await pool.acquire()
        order.append(index)
        pool.release(slot)

    tasks = [asyncio.create_task(call(i)) for i in range(5)]
    await asyncio.sleep(0)
    pool.set_endpoints([Endpoint("a", "http://a", 1)])
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert order == [0, 1, 2, 3, 4]


async def test_reserved_concurrency_counts_in_flight_and_waiting() -> None:
    pool, _ = make_pool(reserved=2)
    pool.set_endpoints([Endpoint("a", "http://a", 1)])
    first = await pool.acquire()
    second = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    with pytest.raises(TooManyRequests) as raised:
        await pool.acquire()
    assert raised.value.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
    pool.release(first)
    pool.release(await second)


async def test_reserved_concurrency_caps_a_function_s_versions_together() -> None:
    """As in Lambda: `concurrency.reserved` is the function's, over `$LATEST` and every version."""
    router = Router(lambda key, value: None)
    pools = [router.pool(key, 2) for key in ("default/fn", "default/fn:1", "default/fn:2")]
    other = router.pool("default/other", 2)
    for pool in [*pools, other]:
        pool.set_endpoints([Endpoint("a", "http://a", 5)])
    latest, first = await pools[0].acquire(), await pools[1].acquire()
    with pytest.raises(TooManyRequests):
        await pools[2].acquire()
    # Another function's count is its own.
    held = [await other.acquire(), await other.acquire()]
    pools[0].release(latest)
    pools[2].release(await pools[2].acquire())
    pools[1].release(first)
    for slot in held:
        other.release(slot)


async def test_bounded_wait_without_instances_is_not_ready() -> None:
    pool, _ = make_pool(wait=0.05)
    with pytest.raises(ResourceNotReady):
        await pool.acquire()
    assert pool.concurrency == 0


async def test_bounded_wait_with_busy_instances_is_a_throttle() -> None:
    pool, _ = make_pool(wait=0.05)
    pool.set_endpoints([Endpoint("a", "http://a", 1)])
    held = await pool.acquire()
    with pytest.raises(TooManyRequests) as raised:
        await pool.acquire()
    assert raised.value.reason == "ConcurrentInvocationLimitExceeded"
    pool.release(held)
    assert pool.concurrency == 0


async def test_removed_instance_keeps_running_work_but_gets_no_more() -> None:
    pool, _ = make_pool()
    pool.set_endpoints([Endpoint("a", "http://a", 2)])
    slot = await pool.acquire()
    pool.set_endpoints([Endpoint("b", "http://b", 2)])
    assert slot.retired
    other = await pool.acquire()
    assert other.endpoint.instance_id == "b"
    pool.release(slot)
    pool.release(other)
    assert pool.in_flight == 0


async def test_cancelled_waiter_does_not_leak_a_worker() -> None:
    pool, _ = make_pool()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    pool.set_endpoints([Endpoint("a", "http://a", 1)])
    slot = await asyncio.wait_for(pool.acquire(), 1)
    assert slot.in_flight == 1 and pool.in_flight == 1
