"""The one gateway composition (gateway/serving.py): `kfaas dev` and the cluster gateway use it."""

from __future__ import annotations

import aiohttp

from kfaas.backends import EndpointsListener
from kfaas.config import Settings
from kfaas.gateway.auth import Auth
from kfaas.gateway.listeners import Listener
from kfaas.gateway.registry import FunctionRegistry
from kfaas.gateway.serving import compose_gateway


class NoInstances:
    """A backend that never starts anything: enough to serve the gateway's own endpoints."""

    def subscribe(self, listener: EndpointsListener) -> None:
        pass

    def demand(self, function_key: str, concurrency: int) -> None:
        pass


async def test_a_composed_gateway_serves_its_listeners_reports_readiness_and_closes() -> None:
    ready = False
    settings = Settings(max_connections=5)
    gateway = compose_gateway(
        FunctionRegistry(default_namespace="default", region="us-east-1"),
        NoInstances(),
        settings,
        async_queue="memory",
        authentication=Auth("none"),
        ready=lambda: ready,
    )
    # The runner carries the settings' keep-alive bound, as both gateways need.
    assert gateway.settings is settings
    sites = await gateway.serve(
        [Listener("invoke", "127.0.0.1", 0), Listener("trigger", "127.0.0.1", 0)]
    )
    try:
        assert [site.listener.role for site in sites] == ["invoke", "trigger"]
        async with aiohttp.ClientSession() as session:
            url = sites[0].name
            async with session.get(f"{url}/healthz") as reply:
                assert reply.status == 200
            async with session.get(f"{url}/readyz") as reply:
                assert reply.status == 503
            ready = True
            async with session.get(f"{url}/readyz") as reply:
                assert reply.status == 200
    finally:
        await gateway.close()
