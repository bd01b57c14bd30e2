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
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from kfaas import aio, telemetry
from kfaas.config import Settings
from kfaas.manifests import EventSourceMapping, ManifestError, parse_manifest

from .errors import MappingError
from .invoking import gateway_authorization
from .metrics import PollerMetrics, metrics_app
from .runner import MappingRunner, describe
from .status import REPORT_SECONDS, SETTLE_SECONDS, report_status
from .status_clients import connect

log = logging.getLogger("kfaas.pollers")
DEFAULT_METRICS_PORT = 9090


class PollerConfigError(ValueError):
    """The poller's configuration is missing or wrong; the message says which setting."""


def load_mapping(environ: Mapping[str, str], mapping_file: str | None = None) -> EventSourceMapping:
    if mapping_file:
        try:
            text, source = Path(mapping_file).read_text(encoding="utf-8"), mapping_file
        except OSError as exc:
            raise PollerConfigError(f"--mapping {mapping_file}: cannot be read: {exc}") from None
    elif environ.get("KFAAS_MAPPING"):
        text, source = environ["KFAAS_MAPPING"], "KFAAS_MAPPING"
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


def metrics_address(environ: Mapping[str, str]) -> tuple[str, int]:
    raw = environ.get("KFAAS_POLLER_METRICS_PORT", "").strip()
    try:
        port = int(raw) if raw else DEFAULT_METRICS_PORT
    except ValueError:
        raise PollerConfigError(f"KFAAS_POLLER_METRICS_PORT={raw!r} must be a port") from None
    if not 0 <= port <= 65535:
        raise PollerConfigError(f"KFAAS_POLLER_METRICS_PORT={raw!r} must be a port")
    return environ.get("KFAAS_POLLER_METRICS_HOST", "127.0.0.1"), port


async def serve(
    mapping: EventSourceMapping,
    *,
    gateway_url: str,
    settings: Settings,
    host: str,
    port: int,
    environ: Mapping[str, str] = os.environ,
) -> int:
    metrics = PollerMetrics()
    runner = MappingRunner(
        mapping,
        gateway_url=gateway_url,
        settings=settings,
        metrics=metrics,
        gateway_authorization=gateway_authorization(environ),
    )
    site_runner: web.AppRunner | None = None
    if port:
        site_runner = web.AppRunner(metrics_app(metrics.registry), access_log=None)
        await site_runner.setup()
        await web.TCPSite(site_runner, host, port).start()
        print(f"kfaas poller: metrics on http://{host}:{port}/metrics", flush=True)
    print(f"kfaas poller: {describe(mapping)} via {gateway_url}", flush=True)
    task = asyncio.create_task(runner.run(), name=f"mapping-{mapping.key}")
    reporter = start_status_reports(mapping, runner.metrics, environ)
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
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
        if site_runner is not None:
            await site_runner.cleanup()
    return status


def start_status_reports(
    mapping: EventSourceMapping, metrics: PollerMetrics, environ: Mapping[str, str]
) -> asyncio.Task[None] | None:
    """Report lag and outcomes in the mapping's status when Kubernetes credentials are at hand."""
    store = connect(environ, mapping.metadata.namespace, mapping.metadata.name)
    if store is None:
        return None
    interval = float(environ.get("KFAAS_POLLER_STATUS_SECONDS") or REPORT_SECONDS)
    print(f"kfaas poller: reporting status to EventSourceMapping {mapping.key}", flush=True)
    return asyncio.create_task(
        report_status(store, metrics, interval=interval, settle=min(SETTLE_SECONDS, interval)),
        name=f"status-{mapping.key}",
    )


def main(mapping_file: str | None = None, environ: Mapping[str, str] = os.environ) -> int:
    try:
        settings = Settings.from_env(environ)
        mapping = load_mapping(environ, mapping_file)
        gateway_url = environ.get("KFAAS_GATEWAY_URL", "").strip()
        if not gateway_url:
            raise PollerConfigError("KFAAS_GATEWAY_URL is not set (the gateway to invoke through)")
        host, port = metrics_address(environ)
    except (PollerConfigError, ValueError) as exc:
        print(f"kfaas poller: {exc}", file=sys.stderr)
        return 2
    telemetry.configure("poller", settings.log_level)
    try:
        # uvloop when installed: the aiohttp client and Redis' stream reader are the hot path.
        return aio.run(
            serve(
                mapping,
                gateway_url=gateway_url,
                settings=settings,
                host=host,
                port=port,
                environ=environ,
            )
        )
    except MappingError as exc:
        print(f"kfaas poller: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"kfaas poller: cannot serve metrics on {host}:{port}: {exc}", file=sys.stderr)
        return 1
