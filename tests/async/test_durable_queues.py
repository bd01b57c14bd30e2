"""The Redis and Kafka queues keep the AsyncQueue contract against the real servers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kfaas.gateway.asyncq import AsyncEvent, AsyncQueue, Delivery


def event(n: int) -> AsyncEvent:
    return AsyncEvent.new("default/fn", f'{{"n": {n}}}'.encode(), request_id=f"req-{n}")


async def take(queue: AsyncQueue, seconds: float = 20.0) -> Delivery:
    async with asyncio.timeout(seconds):
        return await queue.take()


async def nothing_within(queue: AsyncQueue, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await queue.take()
    except TimeoutError:
        return True
    return False


async def test_put_take_done_round_trip(open_queue: Any) -> None:
    queue = await open_queue()
    sent = [event(n) for n in range(5)]
    for item in sent:
        await queue.put(item)
    got = [await take(queue) for _ in sent]
    assert sorted(d.event.request_id for d in got) == [e.request_id for e in sent]
    assert {d.event.request_id: d.event for d in got} == {e.request_id: e for e in sent}
    for delivery in got:
        await queue.done(delivery)


async def test_a_delayed_retry_is_stored_not_held_in_memory(open_queue: Any) -> None:
    first = await open_queue()
    retry = event(1).replace(invocations=1, function_errors=1)
    put_at = time.monotonic()
    await first.put(retry, delay=1.5)
    await first.close()  # the gateway that scheduled it is gone
    second = await open_queue()
    delivery = await take(second)
    assert time.monotonic() - put_at >= 1.4
    assert delivery.event == retry
    await second.done(delivery)


async def test_an_unfinished_delivery_goes_to_another_dispatcher(open_queue: Any) -> None:
    dying = await open_queue(redelivery_seconds=1.0)
    await dying.put(event(7))
    taken = await take(dying)
    await dying.close()  # taken, never done: as if the gateway died mid-invocation
    survivor = await open_queue(redelivery_seconds=1.0)
    again = await take(survivor)
    assert again.event == taken.event
    await survivor.done(again)
    assert await nothing_within(survivor, 2.5)


async def test_an_abandoned_delivery_comes_back(open_queue: Any) -> None:
    queue = await open_queue(redelivery_seconds=1.0)
    await queue.put(event(3))
    first = await take(queue)
    await queue.abandon(first)
    second = await take(queue)
    assert second.event.request_id == "req-3"
    await queue.done(second)


async def test_replicas_share_the_work(open_queue: Any) -> None:
    replicas = [await open_queue(), await open_queue()]
    for n in range(40):
        await replicas[0].put(event(n))
    seen: list[str] = []
    done = asyncio.Event()

    async def work(queue: AsyncQueue) -> None:
        while len(seen) < 40:
            delivery = await queue.take()
            seen.append(delivery.event.request_id)
            await queue.done(delivery)
            if len(seen) >= 40:
                done.set()

    workers = [asyncio.create_task(work(q)) for q in replicas for _ in range(4)]
    try:
        async with asyncio.timeout(30):
            await done.wait()
    finally:
        # Closing ends the takers still waiting (QueueError), as a gateway's shutdown does.
        for queue in replicas:
            await queue.close()
        await asyncio.gather(*workers, return_exceptions=True)
    assert sorted(seen) == sorted(f"req-{n}" for n in range(40))
    assert all(not worker.cancelled() for worker in workers)
