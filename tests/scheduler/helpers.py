"""What the scheduler's tests share: Schedules in a folder store, Deliveries that count, engines.

``Recorder`` is a ``Delivery`` that keeps what it was given (and can fail or hang on demand);
``DeadLetterBox`` a ``DeadLetters`` that keeps the records. ``Jittery`` wraps a store so each
operation yields to the loop a random few milliseconds first: two engines in one process then
interleave their reads and writes as two replicas would, and the claims' preconditions are what
keeps a tick from being delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kfaas.brokers.errors import DestinationError
from kfaas.manifests import StreamDestination
from kfaas.object_store import SCHEDULES, Body, ObjectStore
from kfaas.scheduler.delivery import DeliveryError
from kfaas.scheduler.engine import ScheduleEngine
from kfaas.scheduler.metrics import ScheduleMetrics
from kfaas.scheduler.settings import SchedulerSettings

FAST = SchedulerSettings(poll_seconds=0.2, claim_seconds=1.5, retry_base_seconds=0.02)


def schedule_body(name: str, expression: str, namespace: str = "team-a", **spec: Any) -> Body:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scheduleExpression": expression,
            "target": {"functionName": "tick"},
            **spec,
        },
    }


async def create(objects: ObjectStore, body: Body) -> Body:
    return await objects.create(SCHEDULES, body, field_manager="test")


@dataclass
class Delivered:
    namespace: str
    function: str
    qualifier: str | None
    event: dict[str, Any]
    replica: str


@dataclass
class Recorder:
    """A Delivery that records each accepted event; ``failures`` are raised first, in order."""

    replica: str = "r"
    delivered: list[Delivered] = field(default_factory=list)
    failures: list[DeliveryError] = field(default_factory=list)
    attempts: int = 0
    # Set: every attempt waits for it first (a delivery that hangs until released).
    hold: asyncio.Event | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def invoke_async(
        self, namespace: str, function: str, qualifier: str | None, payload: bytes
    ) -> None:
        self.attempts += 1
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.failures:
            raise self.failures.pop(0)
        event = json.loads(payload)
        self.delivered.append(Delivered(namespace, function, qualifier, event, self.replica))

    def times(self) -> list[str]:
        return [item.event["time"] for item in self.delivered]


@dataclass
class DeadLetterBox:
    """DeadLetters that keep each record; the first ``failing`` writes fail."""

    records: list[dict[str, Any]] = field(default_factory=list)
    failing: int = 0

    async def send(
        self, destination: StreamDestination, record: dict[str, Any], *, namespace: str
    ) -> None:
        if self.failing:
            self.failing -= 1
            raise DestinationError("the test's dead-letter queue is down")
        self.records.append(record)


class Jittery:
    """``ObjectStore`` that yields a random few milliseconds before each operation."""

    def __init__(self, inner: ObjectStore, seed: int) -> None:
        self.inner = inner
        self.random = random.Random(seed)

    async def _yield(self) -> None:
        await asyncio.sleep(self.random.uniform(0, 0.01))

    async def get(self, plural: str, namespace: str, name: str) -> Body:
        await self._yield()
        return await self.inner.get(plural, namespace, name)

    async def list(
        self, plural: str, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[Body]:
        await self._yield()
        return await self.inner.list(plural, namespace, labels=labels)

    async def create(self, plural: str, body: Body, *, field_manager: str) -> Body:
        return await self.inner.create(plural, body, field_manager=field_manager)

    async def replace(self, plural: str, body: Body, *, field_manager: str) -> Body:
        return await self.inner.replace(plural, body, field_manager=field_manager)

    async def write_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Body:
        await self._yield()
        return await self.inner.write_status(
            plural, namespace, name, status, resource_version=resource_version
        )

    async def delete(
        self, plural: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> None:
        await self.inner.delete(plural, namespace, name, resource_version=resource_version)


def engine(
    objects: ObjectStore,
    delivery: Recorder,
    dead_letters: DeadLetterBox | None = None,
    *,
    replica: str = "replica-a",
    settings: SchedulerSettings = FAST,
    clock: Callable[[], datetime.datetime] | None = None,
) -> ScheduleEngine:
    delivery.replica = replica
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return ScheduleEngine(
        objects,
        delivery,
        dead_letters or DeadLetterBox(),
        replica=replica,
        region="eu-west-1",
        settings=settings,
        metrics=ScheduleMetrics(),
        draw=lambda: 0.5,
        **extra,
    )


@contextlib.asynccontextmanager
async def running(*engines: ScheduleEngine) -> AsyncIterator[list[asyncio.Task[None]]]:
    """The engines' loops as tasks, cancelled (their workers with them) at the end."""
    tasks = [asyncio.create_task(e.run(), name=e.replica) for e in engines]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def sample(engine: ScheduleEngine, metric: str, **labels: str) -> float:
    names = {"namespace": "team-a", "schedule": "s", "function": "tick", **labels}
    return engine.metrics.registry.get_sample_value(metric, names) or 0.0


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
