"""One gateway, composed once: the app, its async queue, destinations, runner and listeners.

`kfaas dev` (local instances, manifests from files) and the cluster gateway (instances and
Functions from the API) differ in where functions and instances come from and in how callers are
authenticated; everything else is the same gateway. ``compose_gateway`` builds that common part
from the pieces that differ, so a bound, a queue option or a shutdown step is wired in one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from kfaas.backends import InstanceBackend
from kfaas.brokers.destinations import ClientDestinations
from kfaas.brokers.kafka_security import SecretReader
from kfaas.brokers.platform_kafka import platform_security
from kfaas.code_store import CodeStore
from kfaas.config import Settings
from kfaas.object_store import ObjectStore

from . import auth
from .app import create_app
from .listeners import GuardedSite, Listener, make_runner, start_listeners
from .queues import make_queue
from .registry import FunctionRegistry
from .trigger_keys import KeySources

log = logging.getLogger("kfaas.gateway")


@dataclass
class Gateway:
    """A composed gateway: ``serve`` opens its listeners, ``close`` releases all it holds."""

    app: web.Application
    runner: web.AppRunner
    destinations: ClientDestinations
    settings: Settings

    async def serve(self, listeners: Sequence[Listener]) -> list[GuardedSite]:
        await self.runner.setup()
        return await start_listeners(self.runner, listeners, self.settings)

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.destinations.close()


def compose_gateway(
    registry: FunctionRegistry,
    backend: InstanceBackend,
    settings: Settings,
    *,
    async_queue: str,
    authentication: auth.Auth,
    ready: Callable[[], bool] = lambda: True,
    trigger_key_sources: KeySources | None = None,
    functions_known: asyncio.Event | None = None,
    objects: ObjectStore | None = None,
    code_store: CodeStore | None = None,
    location_key: str | None = None,
    replicated: bool = False,
    secrets: Callable[[str], SecretReader] | None = None,
) -> Gateway:
    """The gateway over ``registry`` and ``backend``, its queue a URL (memory, redis://, kafka://).

    Destinations that name no server of their own go to the platform's Redis or Kafka (settings).
    ``replicated``: other replicas of this gateway may serve the same functions (a cluster).
    The platform's Kafka (a kafka:// queue, destinations without bootstrapServers) is reached
    with the settings' Kafka security; ``secrets`` reads the Secrets a Kafka destination of its
    own cluster names, by the function's namespace (the API's, or kfaas dev's Secret documents).
    """
    if replicated and not settings.redis_url:
        # ADR 028: the shared count lives in the platform Redis; without it each replica counts
        # alone, so N replicas may run up to N times reserved of a function.
        log.warning(
            "reserved concurrency is counted per gateway replica: no KFAAS_REDIS_URL, so each "
            "replica admits up to concurrency.reserved on its own",
            extra={"event": "reserved-limiter-per-replica"},
        )
    kafka_security = platform_security(settings.kafka_security)
    destinations = ClientDestinations(
        redis_url=settings.redis_url,
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
        kafka_security=kafka_security,
        secrets=secrets,
    )
    app = create_app(
        registry,
        backend,
        settings,
        async_queue=make_queue(
            async_queue,
            redelivery_seconds=settings.async_redelivery_seconds,
            max_events=settings.async_queue_max_events,
            max_bytes=settings.async_queue_max_bytes,
            kafka_security=kafka_security,
        ),
        destinations=destinations,
        ready=ready,
        trigger_key_sources=trigger_key_sources,
        authentication=authentication,
        functions_known=functions_known,
        objects=objects,
        code_store=code_store,
        location_key=location_key,
    )
    return Gateway(app, make_runner(app, settings), destinations, settings)
