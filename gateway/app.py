"""Builds the gateway's aiohttp application from its parts; middlewares are chained only here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kfaas.backends import Endpoint, InstanceBackend
from kfaas.code_store import CodeStore
from kfaas.config import Settings
from kfaas.names import parse_function_key
from kfaas.object_store import ObjectStore
from kfaas.trace_context import RootSampler
from kfaas.upstream import UpstreamPool

from . import api, auth, limits, listeners, middleware, refusals, reserved, triggers
from .asyncq import AsyncQueue, MemoryQueue
from .dispatcher import DestinationSender, Dispatcher
from .invoker import Invoker
from .metrics import GatewayMetrics
from .registry import FunctionRegistry
from .routing import Router
from .services import Services
from .tracing import FunctionTracing
from .trigger_auth import TriggerAuth
from .trigger_keys import KeySources, LocalKeyFiles

SERVICES = web.AppKey("services", Services)


def create_app(
    registry: FunctionRegistry,
    backend: InstanceBackend,
    settings: Settings,
    *,
    async_queue: AsyncQueue | None = None,
    destinations: DestinationSender | None = None,
    max_wait_seconds: float = 60.0,
    ready: Callable[[], bool] = lambda: True,
    trigger_key_sources: KeySources | None = None,
    authentication: auth.Auth | None = None,
    functions_known: asyncio.Event | None = None,
    objects: ObjectStore | None = None,
    code_store: CodeStore | None = None,
    location_key: str | None = None,
) -> web.Application:
    """The gateway app; its client session and dispatcher live as long as the app runs.

    ``trigger_key_sources`` reads the Secrets and ConfigMaps HTTP triggers name for their keys;
    without it (`kfaas dev`) keys come from the files the manifests name. ``functions_known``,
    when given, holds async events back until it is set: the registry is complete.
    ``objects`` and ``code_store`` serve the management API (ADR 024, 025).
    """
    refusals.install()  # malformed requests: one warning line each, rate-limited
    metrics = GatewayMetrics()
    # With a platform Redis, reserved concurrency is one count for all replicas (ADR 028).
    limiter = reserved.shared_limiter(settings.redis_url, metrics)
    router = Router(backend.demand, max_wait_seconds=max_wait_seconds, limiter=limiter)

    def endpoints_changed(key: str, endpoints: list[Endpoint]) -> None:
        router.set_endpoints(key, endpoints)
        metrics.ready_instances.labels(*parse_function_key(key)).set(len(endpoints))

    backend.subscribe(endpoints_changed)
    queue = async_queue or MemoryQueue(
        max_events=settings.async_queue_max_events, max_bytes=settings.async_queue_max_bytes
    )
    app = web.Application(
        middlewares=[
            middleware.request_ids,
            listeners.listener_roles,
            limits.body_holds(settings, metrics),
            middleware.api_errors,
            middleware.tracing,
            auth.authentication,
        ],
        # Bounds only request.read()/post(), which no handler calls: every body goes through
        # middleware.read_body, whose limit is per route (auth.body_limit_of: code uploads take
        # 70,167,211 bytes, the rest the Invoke API's limits).
        client_max_size=8 * 1024 * 1024,
    )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        upstream = UpstreamPool()
        try:
            sampler = RootSampler(
                settings.tracing_sample_rate, settings.tracing_reservoir_per_second
            )
            invoker = Invoker(registry, router, metrics, upstream, FunctionTracing(sampler))
            dispatcher = Dispatcher(
                queue,
                invoker,
                retry_base_seconds=settings.async_retry_base_seconds,
                destinations=destinations,
                functions_known=functions_known,
            )
            trigger_auth = TriggerAuth(trigger_key_sources or LocalKeyFiles())
            app[SERVICES] = Services(
                registry,
                router,
                invoker,
                metrics,
                queue,
                dispatcher,
                trigger_auth,
                objects=objects,
                code_store=code_store,
                **({"location_key": location_key} if location_key else {}),
                platform_redis_url=settings.redis_url,
            )
            await queue.start()
            if limiter is not None:
                limiter.start()
            dispatcher.start()
            yield
            await dispatcher.stop()
            await queue.close()
            await trigger_auth.close()
        finally:
            upstream.close()
            if limiter is not None:
                await limiter.stop()

    app[auth.AUTH] = authentication or auth.Auth("none")
    app.cleanup_ctx.append(lifecycle)
    app[listeners.METRICS] = metrics

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(request: web.Request) -> web.Response:
        return web.Response(text="ok") if ready() else web.Response(status=503, text="starting")

    async def metrics_page(request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def services() -> Services:
        return app[SERVICES]

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_routes(api.routes(services))
    app.router.add_routes(triggers.routes(services))
    return app
