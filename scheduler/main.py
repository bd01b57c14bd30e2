"""`kfaas scheduler`: the cluster role that fires Schedules (ADR 026), configured by environment.

Each replica runs a ``ScheduleEngine`` over the Schedules of every namespace (or of
`KFAAS_WATCH_NAMESPACE`) with the process' Kubernetes credentials (in a pod, its ServiceAccount;
else `KUBECONFIG`), and delivers each tick through the gateway at `KFAAS_GATEWAY_URL` as an `Event`
invocation (``http_delivery``). Replicas share the work by claims in each Schedule's status, so
a replica is named: `POD_NAME`, else the host name and process id. Metrics (``kfaas_schedule_*``)
and `/healthz` are served on `KFAAS_SCHEDULER_METRICS_HOST:KFAAS_SCHEDULER_METRICS_PORT`
(127.0.0.1:9090 by default; port 0 turns them off). SIGTERM and SIGINT stop it; a setting that
is wrong is one line and exit 2, before anything starts (ADR 020).

The Kubernetes ``ObjectStore`` is the gateway's (``gateway/kube_store.py``); the scheduler, a
component beside the gateway, does not import it: the command line hands it in (``ObjectsFor``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kfaas import aiokit, telemetry
from kfaas.brokers.kafka_security import SecretReader
from kfaas.brokers.platform_kafka import check_platform_security, platform_security
from kfaas.config import Settings, host_environment, http_url, in_a_pod, port
from kfaas.gateway_tokens import gateway_authorization
from kfaas.kube_clients import Credentials, KubeClient, KubeError
from kfaas.object_store import ObjectStore

from .dead_letters import BrokerDeadLetters
from .engine import ScheduleEngine
from .http_delivery import HttpDelivery
from .metrics import ScheduleMetrics
from .settings import SchedulerSettings

log = logging.getLogger("kfaas.scheduler")
DEFAULT_METRICS_PORT = 9090
# Who wrote the status, as managedFields records it.
FIELD_MANAGER = "kfaas-scheduler"
# An engine that fails unexpectedly starts again after a pause; a long healthy run resets it.
ENGINE_RESTART = aiokit.Backoff(first=1.0, most=30.0, healthy_after=60.0)
# The Kubernetes ObjectStore over a client, for one namespace (or None: all).
ObjectsFor = Callable[[KubeClient, str | None], ObjectStore]
# Reads a namespace's Secrets through the client (the gateway's reader, handed in likewise): a
# dead-letter destination's own Kafka tls/auth (ADR 027).
SecretsFor = Callable[[KubeClient], Callable[[str], SecretReader]]


@dataclass(frozen=True)
class SchedulerProcess:
    """What `kfaas scheduler` needs besides the engine's own ``SchedulerSettings``."""

    gateway_url: str
    replica: str
    metrics_host: str = "127.0.0.1"
    metrics_port: int = DEFAULT_METRICS_PORT
    # A file holding the bearer token presented to the gateway ("" = the ServiceAccount's).
    gateway_token_file: str = ""
    # The one namespace whose Schedules are fired (None: every namespace).
    namespace: str | None = None
    # None in a pod (its ServiceAccount) or with $KUBECONFIG's default location.
    kubeconfig: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SchedulerProcess:
        """Read the settings; a bad or missing value raises ValueError naming the variable."""
        return cls(
            gateway_url=_gateway_url(environ),
            replica=environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
            metrics_host=environ.get("KFAAS_SCHEDULER_METRICS_HOST", "127.0.0.1"),
            metrics_port=port(environ, "KFAAS_SCHEDULER_METRICS_PORT", DEFAULT_METRICS_PORT),
            gateway_token_file=environ.get("KFAAS_GATEWAY_TOKEN_FILE", "").strip(),
            namespace=environ.get("KFAAS_WATCH_NAMESPACE") or None,
            kubeconfig=None if in_a_pod(environ) else environ.get("KUBECONFIG") or None,
        )


def _gateway_url(environ: Mapping[str, str]) -> str:
    url = http_url(environ, "KFAAS_GATEWAY_URL")
    if not url:
        raise ValueError("KFAAS_GATEWAY_URL is not set (the gateway the ticks are invoked through)")
    return url


def metrics_app(metrics: ScheduleMetrics, engine: asyncio.Task[None]) -> web.Application:
    """`/metrics`, and `/healthz`: 200 while the engine's guarded task runs."""

    async def scrape(request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        if engine.done():
            return web.Response(status=503, text="the engine stopped")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(
    objects: ObjectStore,
    *,
    settings: Settings,
    engine_settings: SchedulerSettings,
    process: SchedulerProcess,
    secrets: Callable[[str], SecretReader] | None = None,
) -> int:
    """Run the engine until SIGTERM/SIGINT; serve its metrics meanwhile."""
    metrics = ScheduleMetrics()
    delivery = HttpDelivery(
        process.gateway_url, authorization=gateway_authorization(process.gateway_token_file)
    )
    dead_letters = BrokerDeadLetters.to_platform(
        redis_url=settings.redis_url,
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
        # One write ends well inside the claim's lease, as one delivery attempt does.
        deadline_seconds=min(engine_settings.claim_seconds / 3, 30.0),
        kafka_security=platform_security(settings.kafka_security),
        secrets=secrets,
    )
    engine = ScheduleEngine(
        objects,
        delivery,
        dead_letters,
        replica=process.replica,
        region=settings.region,
        settings=engine_settings,
        metrics=metrics,
        namespace=process.namespace,
    )
    task = aiokit.guarded_task(
        "kfaas-scheduler-engine", engine.run, log=log, restart=ENGINE_RESTART, on_return="restart"
    )
    site_runner: web.AppRunner | None = None
    try:
        if process.metrics_port:
            site_runner = web.AppRunner(metrics_app(metrics, task), access_log=None)
            await site_runner.setup()
            await web.TCPSite(site_runner, process.metrics_host, process.metrics_port).start()
            where = f"http://{process.metrics_host}:{process.metrics_port}"
            print(f"kfaas scheduler: metrics on {where}/metrics", flush=True)
        scope = process.namespace or "every namespace"
        print(
            f"kfaas scheduler: replica {process.replica} firing the Schedules of {scope} "
            f"via {process.gateway_url}",
            flush=True,
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            print("kfaas scheduler: stopping", file=sys.stderr, flush=True)
    finally:
        await aiokit.stop_tasks([task], grace_seconds=0, log=log)
        if site_runner is not None:
            await site_runner.cleanup()
        await delivery.close()
        await dead_letters.close()
    return 0


async def run_scheduler(
    objects_for: ObjectsFor,
    *,
    settings: Settings,
    engine_settings: SchedulerSettings,
    process: SchedulerProcess,
    secrets_for: SecretsFor | None = None,
) -> int:
    credentials = Credentials.load(process.kubeconfig)
    async with KubeClient(credentials, field_manager=FIELD_MANAGER) as client:
        return await serve(
            objects_for(client, process.namespace),
            settings=settings,
            engine_settings=engine_settings,
            process=process,
            secrets=secrets_for(client) if secrets_for is not None else None,
        )


def main(
    objects_for: ObjectsFor,
    environ: Mapping[str, str] | None = None,
    *,
    secrets_for: SecretsFor | None = None,
) -> int:
    """`kfaas scheduler`: settings are read here, once, from ``environ`` (default: the process')."""
    environ = host_environment() if environ is None else environ
    try:
        settings = Settings.from_env(environ)
        check_platform_security(settings.kafka_security)
        engine_settings = SchedulerSettings.from_env(environ)
        process = SchedulerProcess.from_env(environ)
    except ValueError as exc:
        print(f"kfaas scheduler: {exc}", file=sys.stderr)
        return 2
    telemetry.configure("scheduler", settings)
    try:
        return aiokit.run(
            run_scheduler(
                objects_for,
                settings=settings,
                engine_settings=engine_settings,
                process=process,
                secrets_for=secrets_for,
            )
        )
    except KubeError as exc:
        print(f"kfaas scheduler: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{process.metrics_host}:{process.metrics_port}"
        print(f"kfaas scheduler: cannot serve metrics on {where}: {exc}", file=sys.stderr)
        return 1
