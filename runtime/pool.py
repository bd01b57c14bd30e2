"""Handing idle workers to invocations, strictly in the order the invocations arrived.

`asyncio.Queue` lets a newcomer overtake a waiter that has been woken but not yet run; here a freed
worker goes straight to the oldest waiter, so "more concurrent requests than workers wait in a
FIFO" (ADR 002) holds exactly.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FifoPool(Generic[T]):
    def __init__(self) -> None:
        self._idle: deque[T] = deque()
        self._waiters: deque[asyncio.Future[T]] = deque()

    @property
    def waiting(self) -> int:
        return sum(not waiter.done() for waiter in self._waiters)

    async def acquire(self) -> T:
        if self._idle and not self._waiters:
            return self._idle.popleft()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # handed over just as we were cancelled
            raise

    def release(self, item: T) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        self._idle.append(item)
