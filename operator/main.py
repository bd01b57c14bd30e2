"""``kfaas operator``: Kopf's reactor, the autoscaler and the peering watch in one process.

Replicas find each other through Kopf peering: each starts with a distinct priority (random unless
``KFAAS_OPERATOR_PRIORITY`` is set), Kopf pauses all but the highest, and the autoscaler follows
the same decision (``peering.is_active``). The three loops are guarded: if the autoscaler or the
peering watch dies, the process exits non-zero and Kubernetes restarts it; nothing stalls silently.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import random
import socket
from dataclasses import dataclass
from typing import Any, cast

import kopf
from aiohttp import web

from kfaas.kube_clients import Credentials, KubeClient, KubeError

from . import handlers, names
from .autoscaler import Autoscaler
from .config import OperatorConfig
from .metrics import OperatorMetrics
from .peering import CLUSTER_PEERING, NAMESPACED_PEERING, is_active

log = logging.getLogger("kfaas.operator")


@dataclass(frozen=True)
class OperatorOptions:
    namespace: str | None = None  # None: every namespace
    peering_name: str = "kfaas"
    identity: str = ""
    priority: int = 0
    kubeconfig: str | None = None
    # Kopf's liveness endpoint, e.g. http://0.0.0.0:8081/healthz (the chart's probe).
    health_address: str | None = None
    # Where /metrics is served (all interfaces); None: not served.
    metrics_port: int | None = None

    @classmethod
    def from_env(cls, namespace: str | None, kubeconfig: str | None = None) -> OperatorOptions:
        identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        raw = os.environ.get("KFAAS_OPERATOR_PRIORITY")
        priority = int(raw) if raw else random.randint(1, 2**31 - 1)
        return cls(
            namespace=namespace,
            peering_name=os.environ.get("KFAAS_PEERING_NAME", "kfaas"),
            identity=identity,
            priority=priority,
            kubeconfig=kubeconfig,
            health_address=os.environ.get("KFAAS_OPERATOR_HEALTH_ADDRESS") or None,
            metrics_port=_port(os.environ.get("KFAAS_OPERATOR_METRICS_PORT")),
        )


def _port(raw: str | None) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"KFAAS_OPERATOR_METRICS_PORT={raw!r} must be a port number")
    return int(raw)


class PeeringWatch:
    """Re-reads the peering object every ``interval`` and says whether we are the active one."""

    def __init__(
        self,
        client: KubeClient,
        options: OperatorOptions,
        metrics: OperatorMetrics,
        interval: float = 1.0,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.options = options
        self.interval = interval
        self.active = False
        self._reported: bool | None = None

    async def run(self) -> None:
        api_version, plural = NAMESPACED_PEERING if self.options.namespace else CLUSTER_PEERING
        while True:
            try:
                peering = await self.client.find(
                    api_version, plural, self.options.namespace, self.options.peering_name
                )
                peers = (peering or {}).get("status") or {}
                now = datetime.datetime.now(datetime.UTC)
                active = is_active(peers, self.options.identity, self.options.priority, now)
            except KubeError as exc:
                log.warning("cannot read the peering object: %s", exc)
                active = False
            if active != self._reported:
                log.info("autoscaler %s", "active" if active else "on standby")
                self._reported = active
            self.active = active
            self.metrics.active.set(1 if active else 0)
            await asyncio.sleep(self.interval)


async def run_operator(config: OperatorConfig, options: OperatorOptions) -> int:
    # Kopf logs every handled Deployment event at INFO: keep its successes out of the log.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    credentials = Credentials.load(options.kubeconfig)
    async with KubeClient(credentials, field_manager=names.FIELD_MANAGER) as client:
        metrics = OperatorMetrics()
        registry = kopf.OperatorRegistry()
        handlers.register(registry, client, config, metrics)
        peering = PeeringWatch(client, options, metrics)
        autoscaler = Autoscaler(
            client,
            platform_namespace=config.platform_namespace,
            watch_namespace=options.namespace,
            stable_window_seconds=config.stable_window_seconds,
            metrics=metrics,
            allow_service_account_token=config.allow_service_account_token,
            images=config.images(),
        )
        runner = None
        if options.metrics_port is not None:
            runner = web.AppRunner(metrics.app(), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "0.0.0.0", options.metrics_port).start()
        namespaces = [options.namespace] if options.namespace else []
        reactor = asyncio.create_task(
            kopf.operator(
                registry=registry,
                clusterwide=options.namespace is None,
                namespaces=namespaces,
                identity=cast("Any", options.identity),
                priority=options.priority,
                peering_name=options.peering_name,
                standalone=False,
                liveness_endpoint=options.health_address,
            ),
            name="kopf-reactor",
        )
        loops = [
            reactor,
            asyncio.create_task(peering.run(), name="peering-watch"),
            asyncio.create_task(autoscaler.run(lambda: peering.active), name="autoscaler"),
        ]
        log.info(
            "operator %s (priority %d) watching %s",
            options.identity,
            options.priority,
            options.namespace or "all namespaces",
        )
        done, pending = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()
        for task in done:
            if task is not reactor or task.exception() is not None:
                error = task.exception()
                log.error("%s stopped unexpectedly: %r", task.get_name(), error)
                return 1
        return 0
