"""The runners of a set of mappings, kept in step with what `kfaas dev` loads.

`kfaas poller` runs one mapping (``runner.MappingRunner``); `kfaas dev` runs all of its mappings in
its own process through a `PollerGroup`, which starts a runner per mapping, stops and restarts one
when its spec changes (never for a status write), keeps why a mapping could not start, and, given
a status store per mapping, reports each one's lag, outcomes and `Polling` condition as a poller
pod does (``status.report_status``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from aiohttp import web

from kfaas import aiokit
from kfaas.brokers.kafka_security import KafkaSecurity, SecretReader
from kfaas.config import Settings
from kfaas.gateway_tokens import Authorization
from kfaas.manifests import EventSourceMapping

from .errors import MappingError
from .metrics import PollerMetrics, metrics_app
from .runner import MappingRunner, describe
from .settings import PollerSettings
from .status import SETTLE_SECONDS, StatusStore, report_status

log = logging.getLogger("kfaas.pollers")


class PollerGroup:
    """The runners of a set of mappings, restarted when a mapping changes (for `kfaas dev`).

    Metrics are served only when KFAAS_POLLER_METRICS_PORT names a port (``poller``): `kfaas dev`
    runs many things on one machine and should not take port 9090 unasked.
    """

    def __init__(
        self,
        *,
        gateway_url: str,
        settings: Settings,
        poller: PollerSettings | None = None,
        metrics: PollerMetrics | None = None,
        metrics_port: int | None = None,
        gateway_authorization: Authorization | None = None,
        secrets: Callable[[str], SecretReader] | None = None,
        platform_kafka_security: KafkaSecurity | None = None,
        status_stores: Callable[[EventSourceMapping], StatusStore] | None = None,
    ) -> None:
        self.gateway_url = gateway_url
        # Where each mapping's pollers report lag, outcomes and `Polling` (kfaas dev: its store).
        self.status_stores = status_stores
        self.gateway_authorization = gateway_authorization
        # A namespace's Secrets (kfaas dev: its SecretBook), for secured Kafka sources.
        self.secrets = secrets
        self.platform_kafka_security = platform_kafka_security
        self.settings = settings
        self.poller = poller or PollerSettings()
        self.metrics = metrics or PollerMetrics()
        if metrics_port is None:
            metrics_port = self.poller.metrics_port or 0
        self.metrics_port = metrics_port
        self._site: web.AppRunner | None = None
        # Each running mapping, its runner's task and its status reporter's (if any).
        self.running: dict[str, tuple[EventSourceMapping, list[asyncio.Task[None]]]] = {}
        # Why each mapping of the last update that could not start did not, by key.
        self.refused: dict[str, str] = {}

    async def start(self) -> None:
        if self.metrics_port:
            self._site = web.AppRunner(metrics_app(self.metrics.registry), access_log=None)
            await self._site.setup()
            await web.TCPSite(self._site, "127.0.0.1", self.metrics_port).start()

    async def update(self, mappings: Sequence[EventSourceMapping]) -> list[str]:
        """Run exactly these mappings; returns one line per mapping saying what it does."""
        wanted = {mapping.key: mapping for mapping in mappings}
        self.refused = {}
        for key in list(self.running):
            current, _ = self.running[key]
            # Only the spec matters: the status changes with every report the pollers write.
            if key not in wanted or wanted[key].spec != current.spec:
                await self._stop(key)
        lines = []
        for key, mapping in wanted.items():
            if key not in self.running:
                try:
                    runner = MappingRunner(
                        mapping,
                        gateway_url=self.gateway_url,
                        settings=self.settings,
                        poller=self.poller,
                        metrics=self.metrics,
                        gateway_authorization=self.gateway_authorization,
                        read_secret=(
                            self.secrets(mapping.metadata.namespace) if self.secrets else None
                        ),
                        platform_kafka_security=self.platform_kafka_security,
                    )
                except MappingError as exc:
                    log.error("mapping %s not started: %s", key, exc)
                    self.refused[key] = str(exc)
                    lines.append(f"mapping {key}: not started: {exc}")
                    continue
                # A mapping that cannot run as written stops alone; the others keep running.
                tasks = [
                    aiokit.guarded_task(
                        f"mapping {key}", runner.run, log=log, on_fatal=_mapping_stopped
                    )
                ]
                if self.status_stores is not None:
                    interval = self.poller.status_seconds
                    reports = report_status(
                        self.status_stores(mapping),
                        runner.metrics,
                        interval=interval,
                        settle=min(SETTLE_SECONDS, interval),
                    )
                    tasks.append(asyncio.create_task(reports, name=f"status-{key}"))
                self.running[key] = (mapping, tasks)
            lines.append(describe(mapping))
        return lines

    async def _stop(self, key: str) -> None:
        _, tasks = self.running.pop(key)
        await aiokit.stop_tasks(tasks, grace_seconds=0)

    async def stop(self) -> None:
        for key in list(self.running):
            await self._stop(key)
        if self._site is not None:
            await self._site.cleanup()


def _mapping_stopped(name: str, error: BaseException) -> None:
    # A MappingError says all there is to say; anything else is a bug, with its traceback.
    log.error("%s stopped: %s", name, error, exc_info=not isinstance(error, MappingError))
