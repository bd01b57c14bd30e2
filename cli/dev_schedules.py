"""``kfaas dev`` runs Schedules too: read from its files, fired by the scheduler's engine (ADR 026).

Schedule manifests sit beside Functions and EventSourceMappings in the files ``kfaas dev`` is
given; ``load_schedules`` reads them (``kfaas.manifests.load_manifests`` leaves the kind to it: the
Schedule model imports the manifests module, not the reverse) and ``cli/dev_files.py`` applies
them into the store like the other kinds. ``DevSchedules`` runs the same ``ScheduleEngine`` as
``kfaas scheduler`` over the store, one replica: each tick goes through kfaas dev's own Invoke API
as an ``Event`` (the cluster's delivery, so routing, reserved concurrency and authentication are
those of any caller), a given-up tick through the gateway's destination writers, and the
``kfaas_schedule_*`` metrics appear on kfaas dev's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from prometheus_client import CollectorRegistry

from kfaas import aiokit
from kfaas.brokers.destinations import ClientDestinations
from kfaas.gateway_tokens import Authorization
from kfaas.manifests import API_VERSION, ManifestError, load_documents
from kfaas.object_store import SCHEDULES, ObjectStore
from kfaas.schedule_manifests import Schedule, parse_schedule
from kfaas.scheduler.dead_letters import BrokerDeadLetters
from kfaas.scheduler.engine import ScheduleEngine
from kfaas.scheduler.http_delivery import HttpDelivery
from kfaas.scheduler.metrics import ScheduleMetrics
from kfaas.scheduler.settings import SchedulerSettings

log = logging.getLogger("kfaas.dev")

# kfaas dev is the only replica: its claims carry this name, and one left by a kfaas dev that was
# stopped mid-delivery is taken over at once by the next (a counted redelivery).
REPLICA: Final = "kfaas-dev"
RESTART: Final = aiokit.Backoff(first=1.0, most=30.0)


def is_schedule(document: object) -> bool:
    return (
        isinstance(document, Mapping)
        and document.get("apiVersion") == API_VERSION
        and document.get("kind") == "Schedule"
    )


def load_schedules(paths: Iterable[str | Path]) -> list[Schedule]:
    """Every Schedule in the files and folders kfaas dev reads manifests from.

    Missing paths and unreadable files are ``load_manifests``' to report; here they are skipped.
    All problems of all Schedules are raised as one ManifestError.
    """

    def parse(document: Mapping[str, Any], source: str) -> tuple[tuple[str, str], Schedule]:
        schedule = parse_schedule(document, source)
        return (schedule.metadata.namespace, schedule.metadata.name), schedule

    return list(load_documents(paths, is_schedule, parse, "Schedule").values())


async def schedule_lines(objects: ObjectStore) -> list[str]:
    """What kfaas dev's start-up summary says of each stored Schedule."""
    lines = []
    for body in await objects.list(SCHEDULES):
        try:
            schedule = parse_schedule(body)
        except ManifestError:
            continue  # the engine logs it
        target = schedule.spec.target
        function = target.function_name + (f":{target.qualifier}" if target.qualifier else "")
        state = "firing" if schedule.spec.state == "ENABLED" else "disabled"
        expression = schedule.spec.schedule_expression
        lines.append(f"schedule {schedule.key}: {state} {expression} -> {function}")
    return lines


class DevSchedules:
    """The engine of ``kfaas dev`` (see the module docstring): ``start``, ``stop``."""

    def __init__(
        self,
        objects: ObjectStore,
        *,
        gateway_url: str,
        authorization: Authorization | None,
        destinations: ClientDestinations,
        registry: CollectorRegistry,
        region: str,
        settings: SchedulerSettings,
    ) -> None:
        self.delivery = HttpDelivery(gateway_url, authorization=authorization)
        self.engine = ScheduleEngine(
            objects,
            self.delivery,
            BrokerDeadLetters(destinations),
            replica=REPLICA,
            region=region,
            settings=settings,
            metrics=ScheduleMetrics(registry),
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # A loop that stops must not stop silently: logged and started again.
        self._task = aiokit.guarded_task(
            "kfaas-dev-schedules", self.engine.run, log=log, restart=RESTART, on_return="restart"
        )

    async def stop(self) -> None:
        if self._task is not None:
            await aiokit.stop_tasks([self._task], grace_seconds=0)
            self._task = None
        await self.delivery.close()
