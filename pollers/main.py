"""`kfaas poller`: run the pollers of one EventSourceMapping, configured by the environment.

The mapping comes as YAML or JSON in `KFAAS_MAPPING`, or from a file (`--mapping FILE`); the
gateway that every batch is sent through from `KFAAS_GATEWAY_URL`. Metrics are served on
`KFAAS_POLLER_METRICS_HOST:KFAAS_POLLER_METRICS_PORT` (127.0.0.1:9090 by default; port 0 turns
them off). With Kubernetes credentials (in a pod, or KUBECONFIG) it reports lag and the last
batch's outcome in the mapping's status every KFAAS_POLLER_STATUS_SECONDS (10). SIGTERM and
SIGINT stop it; a mapping that cannot run exits with status 2.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from kfaas import aiokit, telemetry
from kfaas.brokers.platform_kafka import platform_security
from kfaas.config import Settings
from kfaas.gateway_tokens import gateway_authorization
from kfaas.manifests import EventSourceMapping, ManifestError, parse_manifest

from .errors import MappingError
from .metrics import PollerMetrics, metrics_app
from .runner import MappingRunner, describe
from .secrets import secrets_for
from .settings import DEFAULT_METRICS_PORT, PollerSettings, poller_settings
from .status import SETTLE_SECONDS, report_status
from .status_clients import connect

log = logging.getLogger("kfaas.pollers")


class PollerConfigError(ValueError):
    """The poller's configuration is missing or wrong; the message says which setting."""


def load_mapping(poller: PollerSettings, mapping_file: str | None = None) -> EventSourceMapping:
    if mapping_file:
        try:
            text, source = Path(mapping_file).read_text(encoding="utf-8"), mapping_file
        except OSError as exc:
            raise PollerConfigError(f"--mapping {mapping_file}: cannot be read: {exc}") from None
    elif poller.mapping:
        text, source = poller.mapping, "KFAAS_MAPPING"
    else:
        raise PollerConfigError("no mapping: set KFAAS_MAPPING or pass --mapping FILE")
    try:
        # JSON is YAML, so one parser reads both.
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PollerConfigError(f"{source}: not valid YAML or JSON: {exc}") from None
    try:
        manifest = parse_manifest(document if isinstance(document, dict) else {}, source)
    except ManifestError as exc:
        raise PollerConfigError(str(exc)) from None
    if not isinstance(manifest, EventSourceMapping):
        raise PollerConfigError(f"{source}: kind must be EventSourceMapping, got {manifest.kind}")
    return manifest


async def serve(
    mapping: EventSourceMapping,
    *,
    gateway_url: str,
    settings: Settings,
    poller: PollerSettings,
    host: str,
    port: int,
) -> int:
    metrics = PollerMetrics()
    # A secured Kafka source's Secrets, read at each connect (mounted in a pod; ADR 027).
    secrets = secrets_for(poller.secrets_dir)
    runner = MappingRunner(
        mapping,
        gateway_url=gateway_url,
        settings=settings,
        poller=poller,
        metrics=metrics,
        gateway_authorization=gateway_authorization(poller.gateway_token_file),
        read_secret=secrets.read if secrets is not None else None,
        platform_kafka_security=platform_security(settings.kafka_security),
    )
    site_runner: web.AppRunner | None = None
    if port:
        site_runner = web.AppRunner(metrics_app(metrics.registry), access_log=None)
        await site_runner.setup()
        await web.TCPSite(site_runner, host, port).start()
        print(f"kfaas poller: metrics on http://{host}:{port}/metrics", flush=True)
    print(f"kfaas poller: {describe(mapping)} via {gateway_url}", flush=True)
    task = asyncio.create_task(runner.run(), name=f"mapping-{mapping.key}")
    reporter = start_status_reports(mapping, runner.metrics, poller)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    status = 0
    try:
        await task
    except asyncio.CancelledError:
        print("kfaas poller: stopping", file=sys.stderr, flush=True)
    except MappingError as exc:
        print(f"kfaas poller: {exc}", file=sys.stderr, flush=True)
        status = 2
    finally:
        if reporter is not None:
            await aiokit.stop_tasks([reporter], grace_seconds=0)
        if site_runner is not None:
            await site_runner.cleanup()
    return status


def start_status_reports(
    mapping: EventSourceMapping, metrics: PollerMetrics, poller: PollerSettings
) -> asyncio.Task[None] | None:
    """Report lag and outcomes in the mapping's status when Kubernetes credentials are at hand."""
    store = connect(
        mapping.metadata.namespace,
        mapping.metadata.name,
        in_a_pod=poller.in_a_pod,
        kubeconfig=poller.kubeconfig,
    )
    if store is None:
        return None
    interval = poller.status_seconds
    print(f"kfaas poller: reporting status to EventSourceMapping {mapping.key}", flush=True)
    return asyncio.create_task(
        report_status(store, metrics, interval=interval, settle=min(SETTLE_SECONDS, interval)),
        name=f"status-{mapping.key}",
    )


def main(mapping_file: str | None = None, environ: Mapping[str, str] | None = None) -> int:
    """`kfaas poller`: settings are read here, once, from ``environ`` (default: the process')."""
    try:
        settings, poller = poller_settings(environ)
        mapping = load_mapping(poller, mapping_file)
        gateway_url = poller.gateway_url
        if not gateway_url:
            raise PollerConfigError("KFAAS_GATEWAY_URL is not set (the gateway to invoke through)")
        host = poller.metrics_host
        port = DEFAULT_METRICS_PORT if poller.metrics_port is None else poller.metrics_port
    except (PollerConfigError, ValueError) as exc:
        print(f"kfaas poller: {exc}", file=sys.stderr)
        return 2
    telemetry.configure("poller", settings)
    try:
        # uvloop when installed: the aiohttp client and Redis' stream reader are the hot path.
        return aiokit.run(
            serve(
                mapping,
                gateway_url=gateway_url,
                settings=settings,
                poller=poller,
                host=host,
                port=port,
            )
        )
    except MappingError as exc:
        print(f"kfaas poller: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"kfaas poller: cannot serve metrics on {host}:{port}: {exc}", file=sys.stderr)
        return 1
