"""`perInstance` workers run invocations in parallel, one each; the rest wait in order."""

from __future__ import annotations

import asyncio
import itertools

from runtime.instances import Starter

APP = """
import os, time
def handler(event, context):
    started = time.time()
    time.sleep(event["hold"])
    return {"pid": os.getpid(), "start": started, "end": time.time(), "n": event["n"]}
"""


def _overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


async def test_two_workers_run_two_invocations_at_once(start: Starter) -> None:
    instance = await start({"app.py": APP}, KFAAS_PER_INSTANCE="2")
    replies = await asyncio.gather(*(instance.invoke({"hold": 0.3, "n": n}) for n in range(2)))
    first, second = (reply.json() for reply in replies)
    assert first["pid"] != second["pid"]
    assert _overlaps(first, second)


async def test_one_worker_serialises_in_arrival_order(start: Starter) -> None:
    instance = await start({"app.py": APP}, KFAAS_PER_INSTANCE="1")
    tasks = []
    for n in range(4):
        tasks.append(asyncio.ensure_future(instance.invoke({"hold": 0.1, "n": n})))
        await asyncio.sleep(0.02)  # stagger the arrivals so their order is defined
    results = [reply.json() for reply in await asyncio.gather(*tasks)]
    assert len({result["pid"] for result in results}) == 1
    for earlier, later in itertools.pairwise(results):
        assert earlier["end"] <= later["start"]  # never two at once, and first come first served
