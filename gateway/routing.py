"""Which instance runs an invocation, and when an invocation must wait or be throttled.

One ``FunctionPool`` per function holds its ready instances and the invocations waiting for a free
worker. Routing is least-outstanding-requests among instances with a free worker; an instance never
gets more than its capacity (``perInstance``) at once. Invocations beyond free capacity wait, in
arrival order and for a bounded time, while the backend starts instances; ``concurrency.reserved``
caps in-flight plus waiting invocations across all instances — and, as in Lambda, across all the
function's published versions, whose pools (``namespace/name:N``) share one count. With several
gateway replicas, a ``SlotLimiter`` (ADR 028) also takes each reserved invocation's slot from a
count all replicas share; over the cap either way is an immediate throttle, as in Lambda. Every
change in demand is reported to the backend, which scales with the shared rule.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kfaas.backends import Endpoint
from kfaas.names import parse_function_key

from .errors import ResourceNotReady, TooManyRequests

DemandListener = Callable[[str, int], None]


class SlotLimiter(Protocol):
    """Reserved concurrency counted across gateway replicas (``reserved.SharedLimiter``)."""

    async def admit(self, function: str, reserved: int) -> bool:
        """Take a slot of ``namespace/name`` unless ``reserved`` are taken."""
        ...

    def release(self, function: str) -> None: ...


def _reserved_throttle() -> TooManyRequests:
    return TooManyRequests(
        "Rate Exceeded.", reason="ReservedFunctionConcurrentInvocationLimitExceeded"
    )


@dataclass
class Slot:
    """A ready instance and the invocations it is running now."""

    endpoint: Endpoint
    in_flight: int = 0
    retired: bool = False


class FunctionPool:
    """Ready instances and waiting invocations of one function."""

    def __init__(
        self,
        key: str,
        *,
        reserved: int | None,
        max_wait_seconds: float,
        on_demand: DemandListener,
        limiter: SlotLimiter | None = None,
    ) -> None:
        self.key = key
        self.function = "/".join(_function_of(key))
        self._limiter = limiter
        # Invocations of this pool holding a slot of the limiter (taken while `reserved` was set).
        self._slots_held = 0
        self.reserved = reserved
        self.max_wait_seconds = max_wait_seconds
        self._on_demand = on_demand
        self._slots: dict[str, Slot] = {}
        self._waiters: collections.deque[asyncio.Future[Slot]] = collections.deque()
        self.in_flight = 0
        # The pools of the same function (`$LATEST` and its versions, this one included): the
        # reserved concurrency caps them together.
        self.siblings: list[FunctionPool] = [self]

    @property
    def concurrency(self) -> int:
        """In-flight plus waiting invocations: the demand the scaling rule sees."""
        return self.in_flight + sum(1 for waiter in self._waiters if not waiter.done())

    @property
    def ready_instances(self) -> int:
        return sum(1 for slot in self._slots.values() if not slot.retired)

    def set_endpoints(self, endpoints: list[Endpoint]) -> None:
        """Replace the set of ready instances, keeping the in-flight count of those that stay."""
        fresh: dict[str, Slot] = {}
        for endpoint in endpoints:
            slot = self._slots.get(endpoint.instance_id)
            if slot is None or slot.endpoint != endpoint:
                slot = Slot(endpoint, in_flight=slot.in_flight if slot else 0)
            fresh[endpoint.instance_id] = slot
        for instance_id, slot in self._slots.items():
            if instance_id not in fresh:
                slot.retired = True
        self._slots = fresh
        self._wake_waiters()

    async def acquire(self) -> Slot:
        """Take a worker on some instance, waiting for one if none is free."""
        if self.reserved is not None and self._function_concurrency() >= self.reserved:
            raise _reserved_throttle()
        if self.reserved is not None and self._limiter is not None:
            if not await self._limiter.admit(self.function, self.reserved):
                raise _reserved_throttle()
            self._slots_held += 1
            try:
                return await self._acquire_slot()
            except BaseException:
                self._give_back()
                raise
        return await self._acquire_slot()

    async def _acquire_slot(self) -> Slot:
        slot = self._pick()
        if slot is not None and not self._waiters:
            self._take(slot)
            self._report()
            return slot
        waiter: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._report()
        self._wake_waiters()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), self.max_wait_seconds)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done() and not waiter.cancelled():
                self._release_slot(waiter.result())
            else:
                waiter.cancel()
            self._report()
            if isinstance(exc, asyncio.CancelledError):
                raise
            if self.ready_instances == 0:
                raise ResourceNotReady(
                    f"Function {self.key} has no ready instance after "
                    f"{self.max_wait_seconds:g} seconds."
                ) from None
            raise TooManyRequests(
                "Rate Exceeded.", reason="ConcurrentInvocationLimitExceeded"
            ) from None

    def _function_concurrency(self) -> int:
        return sum(pool.concurrency for pool in self.siblings)

    def release(self, slot: Slot) -> None:
        self._give_back()
        self._release_slot(slot)

    def _release_slot(self, slot: Slot) -> None:
        slot.in_flight -= 1
        self.in_flight -= 1
        self._wake_waiters()
        self._report()

    def _give_back(self) -> None:
        if self._slots_held > 0 and self._limiter is not None:
            self._slots_held -= 1
            self._limiter.release(self.function)

    def _take(self, slot: Slot) -> None:
        slot.in_flight += 1
        self.in_flight += 1

    def unreachable(self, slot: Slot) -> None:
        """Stop routing to an instance that refused a connection (it is going away: its pod was
        deleted, or it crashed) until the backend lists it again."""
        if self._slots.get(slot.endpoint.instance_id) is slot:
            del self._slots[slot.endpoint.instance_id]
            slot.retired = True

    def _pick(self) -> Slot | None:
        best: Slot | None = None
        for slot in self._slots.values():
            if slot.in_flight < slot.endpoint.capacity and (
                best is None or slot.in_flight < best.in_flight
            ):
                best = slot
        return best

    def _wake_waiters(self) -> None:
        while self._waiters:
            if self._waiters[0].done():
                self._waiters.popleft()
                continue
            slot = self._pick()
            if slot is None:
                return
            self._take(slot)
            self._waiters.popleft().set_result(slot)

    def _report(self) -> None:
        self._on_demand(self.key, self.concurrency)


class Router:
    """All function pools of one gateway, fed with endpoints by the instance backend."""

    def __init__(
        self,
        on_demand: DemandListener,
        *,
        max_wait_seconds: float = 60.0,
        limiter: SlotLimiter | None = None,
    ) -> None:
        self._pools: dict[str, FunctionPool] = {}
        self._on_demand = on_demand
        self.max_wait_seconds = max_wait_seconds
        self.limiter = limiter

    def pool(self, key: str, reserved: int | None) -> FunctionPool:
        pool = self._pools.get(key) or self._new_pool(key)
        pool.reserved = reserved
        return pool

    def set_endpoints(self, key: str, endpoints: list[Endpoint]) -> None:
        pool = self._pools.get(key) or self._new_pool(key)
        pool.set_endpoints(endpoints)

    def _new_pool(self, key: str) -> FunctionPool:
        pool = FunctionPool(
            key,
            reserved=None,
            max_wait_seconds=self.max_wait_seconds,
            on_demand=self._on_demand,
            limiter=self.limiter,
        )
        self._pools[key] = pool
        # One list per function, shared by its pools: `namespace/name` and `namespace/name:N`.
        function = _function_of(key)
        for other_key, other in self._pools.items():
            if other_key != key and _function_of(other_key) == function:
                other.siblings.append(pool)
                pool.siblings = other.siblings
                break
        return pool

    def pools(self) -> dict[str, FunctionPool]:
        return dict(self._pools)


def _function_of(key: str) -> tuple[str, str]:
    namespace, name, _ = parse_function_key(key)
    return namespace, name
