"""Reserved concurrency as one budget across gateway replicas (ADR 028).

Each replica counts its own invocations in its Router; with several replicas, that count alone
would let each of them run ``reserved`` at once. ``SharedLimiter`` takes a slot from the
platform Redis (``kfaas.brokers.limits``) before a reserved function's invocation runs and gives
it back when it ends; a background loop renews the leases of the invocations still running and
announces the replica, which tells every replica how many are alive.

When Redis cannot be reached the limiter must still never admit more than ``reserved`` in total:
each replica then admits up to its share, ``reserved // replicas alive`` (as last counted, and
only once every other replica has had time to count this one; otherwise 0). Back from an outage,
a replica registers its running invocations again and, for a grace period long enough for every
other replica to notice, admits only what both its share and Redis allow. The pure parts — the
leases held, the share, the mode — are plain code below; ``SharedLimiter`` only adds I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from kfaas import aiokit
from kfaas.brokers.errors import BrokerError, BrokerUnavailable
from kfaas.brokers.limits import SharedSlots

from .metrics import GatewayMetrics

log = logging.getLogger("kfaas.gateway.reserved")

LEASE_SECONDS = 10.0
TICK_SECONDS = 2.0
TICK_RESTART = aiokit.Backoff(first=TICK_SECONDS, most=TICK_SECONDS)


class Mode(enum.Enum):
    SHARED = "shared"
    DEGRADED = "degraded"
    RECOVERING = "recovering"


def fallback_share(reserved: int, replicas: int | None) -> int:
    """How many invocations one replica may run while the shared count is unreachable.

    ``replicas`` alive as last counted, or None when this replica never counted them (then 0:
    another replica may already run the whole budget). Never above ``reserved`` in total, as
    long as the count included every replica running.
    """
    if replicas is None or replicas < 1:
        return 0
    return reserved // replicas


@dataclass
class Leases:
    """The slots this replica holds, per function; a slot is any of them (they are alike)."""

    replica: str
    held: dict[str, set[str]] = field(default_factory=dict)

    def new_member(self) -> str:
        return f"{self.replica}:{uuid.uuid4().hex}"

    def count(self, function: str) -> int:
        return len(self.held.get(function, ()))

    def add(self, function: str, member: str) -> None:
        self.held.setdefault(function, set()).add(member)

    def discard(self, function: str, member: str) -> None:
        members = self.held.get(function)
        if members is not None:
            members.discard(member)
            if not members:
                del self.held[function]

    def pop(self, function: str) -> str | None:
        """Give back one slot of ``function``; None when none is held."""
        members = self.held.get(function)
        if not members:
            return None
        member = members.pop()
        if not members:
            del self.held[function]
        return member

    def snapshot(self) -> dict[str, list[str]]:
        return {function: sorted(members) for function, members in self.held.items()}


@dataclass
class Health:
    """Whether the shared count can be trusted now; transitions take the time they happen at.

    ``grace_seconds`` after Redis answers again, a replica still holds to its share: by then
    every other replica (each trying Redis every tick) has registered its running invocations.
    """

    grace_seconds: float
    mode: Mode = Mode.SHARED
    since: float = 0.0

    def failed(self, now: float) -> bool:
        """Redis did not answer; True when this starts an outage."""
        if self.mode is Mode.DEGRADED:
            return False
        self.mode, self.since = Mode.DEGRADED, now
        return True

    def answered(self, now: float) -> bool:
        """Redis answered; True when this ends the grace period (the shared count holds)."""
        if self.mode is Mode.DEGRADED:
            self.mode, self.since = Mode.RECOVERING, now
        elif self.mode is Mode.RECOVERING and now - self.since >= self.grace_seconds:
            self.mode, self.since = Mode.SHARED, now
            return True
        return False


@dataclass
class Census:
    """How many replicas are alive, as last counted; known only once this one has been counted
    by the others (it announced itself at least ``settle_seconds`` before the count)."""

    settle_seconds: float
    first_seen: float | None = None
    replicas: int | None = None

    def counted(self, replicas: int, now: float) -> None:
        if self.first_seen is None:
            self.first_seen = now
        if now - self.first_seen >= self.settle_seconds:
            self.replicas = replicas


class SharedLimiter:
    """Slots of reserved functions taken from Redis, with a safe share when it is unreachable."""

    def __init__(
        self,
        slots: SharedSlots,
        replica: str,
        *,
        lease_seconds: float = LEASE_SECONDS,
        tick_seconds: float = TICK_SECONDS,
        on_mode: Callable[[Mode], None] = lambda mode: None,
    ) -> None:
        self.slots = slots
        self.leases = Leases(replica)
        self.lease_ms = int(lease_seconds * 1000)
        self.tick_seconds = tick_seconds
        # Others count this replica within one tick of its first announcement; two for slack.
        self.census = Census(settle_seconds=2 * tick_seconds)
        self.health = Health(grace_seconds=2 * tick_seconds)
        self._on_mode = on_mode
        self._task: asyncio.Task[None] | None = None
        # Slots given back that Redis has not been told of yet: one task tells it, in batches
        # (under load, many invocations end between two of its round trips).
        self._giving_back: dict[str, set[str]] = {}
        # Admissions waiting for Redis's answer, per function.
        self._asking: dict[str, int] = {}
        self._flusher: asyncio.Task[None] | None = None

    @property
    def mode(self) -> Mode:
        return self.health.mode

    def start(self) -> None:
        self._task = aiokit.guarded_task(
            "kfaas-reserved-leases", self._tick_forever, log=log, restart=TICK_RESTART
        )

    async def stop(self) -> None:
        if self._task is not None:
            await aiokit.stop_tasks([self._task], grace_seconds=0)
        # Releases on their way are let finish: their slots would otherwise wait for expiry.
        for function, members in self.leases.snapshot().items():
            self._giving_back.setdefault(function, set()).update(members)
        await self._flush()
        if self._flusher is not None:
            await aiokit.stop_tasks(
                [self._flusher], grace_seconds=self.slots.policy.call_seconds or 1
            )
        await self.slots.close()

    async def admit(self, function: str, reserved: int) -> bool:
        """Take a slot of ``function`` (``namespace/name``) if fewer than ``reserved`` run."""
        mode = self.health.mode
        if mode is not Mode.SHARED and self._running(function) >= self._share(reserved):
            return False
        member = self.leases.new_member()
        if mode is Mode.DEGRADED:
            self.leases.add(function, member)
            return True
        # Counted as running while Redis is asked, and held only once it said yes: a slot given
        # back meanwhile must be another invocation's, never this one's.
        self._asking[function] = self._asking.get(function, 0) + 1
        try:
            taken = await self.slots.acquire(function, member, reserved, self.lease_ms)
        except BrokerUnavailable as exc:
            self._outage(exc)
            # The share admits it, as for any call in the outage (this call not counted).
            taken = self._running(function) - 1 < self._share(reserved)
        except BaseException:
            self._give_back(function, member)  # a cancelled call may still have added it
            raise
        finally:
            self._asking[function] -= 1
            if not self._asking[function]:
                del self._asking[function]
        if taken:
            self.leases.add(function, member)
        return taken

    def _running(self, function: str) -> int:
        return self.leases.count(function) + self._asking.get(function, 0)

    def release(self, function: str) -> None:
        """Give back one slot of ``function``; Redis is told in the background."""
        member = self.leases.pop(function)
        if member is not None and self.health.mode is not Mode.DEGRADED:
            self._give_back(function, member)

    def _share(self, reserved: int) -> int:
        return fallback_share(reserved, self.census.replicas)

    def _outage(self, exc: BaseException) -> None:
        if self.health.failed(time.monotonic()):
            log.warning(
                "reserved concurrency: the shared count in Redis is unreachable; each gateway "
                "admits only its share (reserved // replicas) until it answers again",
                extra={"event": "reserved-limiter-degraded", "error": str(exc),
                       "replicas": self.census.replicas},
            )  # fmt: skip
            self._on_mode(Mode.DEGRADED)

    def _give_back(self, function: str, member: str) -> None:
        self._giving_back.setdefault(function, set()).add(member)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        # A slot Redis could not be told of expires with its lease (it is no longer renewed).
        while self._giving_back:
            batch, self._giving_back = self._giving_back, {}
            for function, members in batch.items():
                with contextlib.suppress(BrokerError):
                    await self.slots.release(function, members)

    async def _tick_forever(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.tick_seconds)

    async def tick(self) -> None:
        """Announce this replica, count the others and renew (or register again) every slot
        held; an unanswered tick starts an outage, an answered one may end it."""
        try:
            if self.health.mode is Mode.DEGRADED:
                await self.slots.reconnect()
            replicas = await self.slots.heartbeat(self.leases.replica, self.lease_ms)
            held = self.leases.snapshot()
            for function, members in held.items():
                await self.slots.renew(function, members, self.lease_ms)
        except BrokerUnavailable as exc:
            self._outage(exc)
            return
        now = time.monotonic()
        self.census.counted(replicas, now)
        # A slot given back while its renewal was on the way may have been added again.
        for function, members in held.items():
            gone = set(members) - self.leases.held.get(function, set())
            if gone:
                with contextlib.suppress(BrokerError):
                    await self.slots.release(function, gone)
        previous = self.health.mode
        if self.health.answered(now):
            log.warning(
                "reserved concurrency: the shared count in Redis answers again",
                extra={"event": "reserved-limiter-recovered"},
            )
        if self.health.mode is not previous:
            self._on_mode(self.health.mode)


def shared_limiter(redis_url: str | None, metrics: GatewayMetrics) -> SharedLimiter | None:
    """The limiter over the platform Redis, named after this host and process; None without one
    (each process then counts alone, exact for one process)."""
    if not redis_url:
        return None

    def on_mode(mode: Mode) -> None:
        metrics.reserved_limiter_degraded.set(0 if mode is Mode.SHARED else 1)

    replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return SharedLimiter(SharedSlots(redis_url), replica, on_mode=on_mode)
