"""What the durable async queues (Redis, Kafka) share around their broker: outages and loops.

Both queues call a broker that may be restarting. ``within_outage`` runs one call under the
toolkit's ``retry_until_deadline`` and turns the broker vocabulary into the ``AsyncQueue`` seam's
(``QueueUnavailable`` when the outage outlasts the deadline, ``QueueError`` for a refusal), so the
dispatcher and the API never see which broker is underneath. ``QueueLoops`` runs a queue's
background loops (movers, heartbeats, fetchers) under the toolkit's guard once the queue is
connected, and stops them when it closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from kfaas import aiokit
from kfaas.brokers.errors import BrokerError, BrokerUnavailable

from .asyncq import LOOP_RESTART, QueueError, QueueUnavailable

T = TypeVar("T")


async def within_outage(
    where: str, what: str, operation: Callable[[], Awaitable[T]], seconds: float
) -> T:
    """``operation()``, retried while its broker is unavailable, for at most ``seconds``."""
    try:
        return await aiokit.retry_until_deadline(
            operation, retry_on=(BrokerUnavailable,), within_seconds=seconds
        )
    except aiokit.DeadlinePassed as exc:
        last = exc.__cause__ or exc
        raise QueueUnavailable(f"{where} could not {what} within {seconds:g} s: {last}") from last
    except BrokerError as exc:
        raise QueueError(f"{where} could not {what}: {exc}") from exc


class QueueLoops:
    """A durable queue's background loops and the flag that tells them the queue is closing.

    The loops watch ``closing`` and return; cancelling alone is not enough, as a client library
    may swallow a cancellation that lands inside one of its calls.
    """

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, loops: dict[str, Callable[[], Awaitable[None]]]) -> None:
        """Run each loop as a named task, logged and restarted if it ever dies (STYLE 10)."""
        self._tasks = [
            aiokit.guarded_task(name, loop, log=self.log, restart=LOOP_RESTART)
            for name, loop in loops.items()
        ]

    async def stop(self) -> None:
        """Set ``closing``, let the loops return (or cancel them after a grace), wait for them."""
        self.closing.set()
        await aiokit.stop_tasks(self._tasks)
        self._tasks.clear()
