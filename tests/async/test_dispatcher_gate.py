"""Async events wait for the function registry: a restarted gateway must not take an event before
it has listed the functions, or it finds the function "gone" and drops the event."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from kfaas.gateway.asyncq import AsyncEvent, MemoryQueue
from kfaas.gateway.dispatcher import Dispatcher
from kfaas.gateway.invoker import Invoker
from kfaas.gateway.metrics import GatewayMetrics
from kfaas.gateway.registry import FunctionRegistry
from kfaas.gateway.routing import Router
from kfaas.upstream import UpstreamPool


async def test_no_event_is_taken_before_the_functions_are_known(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = MemoryQueue(max_events=10, max_bytes=1 << 20)
    await queue.start()
    await queue.put(AsyncEvent("r-1", "default/fn", b"{}", accepted_at=time.time()))
    known = asyncio.Event()
    invoker = Invoker(FunctionRegistry(), Router(lambda key, value: None), GatewayMetrics(),
                      UpstreamPool())  # fmt: skip
    dispatcher = Dispatcher(queue, invoker, retry_base_seconds=1, functions_known=known)
    dispatcher.start()
    try:
        await asyncio.sleep(0.3)
        assert len(queue) == 1, "an event was taken before the registry was complete"
        with caplog.at_level(logging.ERROR, logger="kfaas.gateway.dispatcher"):
            known.set()  # complete, and `default/fn` is not in it: now it is really gone
            for _ in range(50):
                if len(queue) == 0:
                    break
                await asyncio.sleep(0.02)
        assert len(queue) == 0
        assert "r-1 dropped: function default/fn no longer exists" in caplog.text
    finally:
        await dispatcher.stop(drain_seconds=1)
        await queue.close()
