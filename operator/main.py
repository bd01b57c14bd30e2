"""``kfaas operator``: Kopf's reactor, the autoscaler and the peering watch in one process.

Replicas find each other through Kopf peering: each starts with a distinct priority (random unless
``KFAAS_OPERATOR_PRIORITY`` is set), Kopf pauses all but the highest, and the autoscaler follows
the same decision (``peering.is_active``). The peering object must exist: without it Kopf would
pause every replica for good, so the operator refuses to start (``PeeringMissing``, exit 2) and
says what to create, unless it runs ``--standalone`` (no peering: it alone reconciles and scales).
The three loops are guarded (``kfaas.aiokit``): if the autoscaler or the peering watch dies, the
process exits non-zero and Kubernetes restarts it; nothing stalls silently.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any, cast

import kopf
from aiohttp import web

from kfaas import aiokit
from kfaas.kube_clients import Credentials, KubeClient, KubeError

from . import handlers, names
from .autoscaler import Autoscaler
from .config import OperatorConfig, OperatorOptions
from .metrics import OperatorMetrics
from .peering import is_active, missing_peering, peering_resource

__all__ = ["OperatorOptions", "PeeringMissing", "PeeringWatch", "run_operator"]

log = logging.getLogger("kfaas.operator")

Body = dict[str, Any]


class PeeringMissing(Exception):
    """The peering object the replicas meet in does not exist; the message says what to do."""


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
        self._missing = False

    async def run(self) -> None:
        api_version, plural = peering_resource(self.options.namespace)
        while True:
            try:
                peering = await self.client.find(
                    api_version, plural, self.options.namespace, self.options.peering_name
                )
                peers = (peering or {}).get("status") or {}
                now = datetime.datetime.now(datetime.UTC)
                active = is_active(peers, self.options.identity, self.options.priority, now)
                self._note_missing(peering is None)
            except KubeError as exc:
                log.warning("cannot read the peering object: %s", exc)
                active = False
            if active != self._reported:
                log.info("autoscaler %s", "active" if active else "on standby")
                self._reported = active
            self.active = active
            self.metrics.active.set(1 if active else 0)
            await asyncio.sleep(self.interval)

    def _note_missing(self, missing: bool) -> None:
        """Deleted while we run, the peering object pauses every replica: say so, once."""
        if missing and not self._missing:
            namespace = self.options.namespace
            log.warning("%s", missing_peering(self.options.peering_name, namespace))
        self._missing = missing


# How long a starting operator waits for the API server to answer (Kopf's own start-up requests
# give up after about a minute too); a refusal (403) ends the wait at once.
PEERING_READ_SECONDS = 60.0


class _NoAnswer(Exception):
    """The API server did not answer (or failed, 5xx): worth asking again."""


async def require_peering(client: KubeClient, options: OperatorOptions) -> None:
    """Raise ``PeeringMissing`` unless the peering object exists (or we run standalone)."""
    if options.standalone:
        return
    api_version, plural = peering_resource(options.namespace)

    async def read() -> Body | None:
        try:
            return await client.find(api_version, plural, options.namespace, options.peering_name)
        except KubeError as exc:
            if 0 < exc.status < 500:
                raise
            raise _NoAnswer(str(exc)) from exc

    def retrying(error: BaseException, delay: float) -> None:
        log.warning("cannot read the peering object yet (again in %.1f s): %s", delay, error)

    try:
        found = await aiokit.retry_until_deadline(
            read,
            retry_on=(_NoAnswer,),
            within_seconds=PEERING_READ_SECONDS,
            max_delay=5.0,
            on_retry=retrying,
        )
    except aiokit.DeadlinePassed as exc:
        # The CLI reports the API server's last word, as for any other request that failed.
        last = exc.__cause__.__cause__ if exc.__cause__ is not None else None
        if isinstance(last, KubeError):
            raise last from None
        raise
    if found is None:
        raise PeeringMissing(missing_peering(options.peering_name, options.namespace))


async def run_operator(config: OperatorConfig, options: OperatorOptions) -> int:
    """Run until Kopf stops (0) or a loop dies (1); raises PeeringMissing before starting."""
    # Kopf logs every handled Deployment event at INFO: keep its successes out of the log.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    credentials = Credentials.load(options.kubeconfig)
    async with KubeClient(credentials, field_manager=names.FIELD_MANAGER) as client:
        await require_peering(client, options)
        metrics = OperatorMetrics()
        registry = kopf.OperatorRegistry()
        handlers.register(registry, client, config, metrics)
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
        reactor = aiokit.guarded_task(
            "kopf-reactor",
            lambda: kopf.operator(
                registry=registry,
                clusterwide=options.namespace is None,
                namespaces=namespaces,
                identity=cast("Any", options.identity),
                priority=options.priority,
                # Standalone: no peering name, else Kopf makes peering mandatory and pauses.
                peering_name=None if options.standalone else options.peering_name,
                standalone=options.standalone,
                liveness_endpoint=options.health_address,
            ),
            log=log,
        )
        loops = [reactor]
        peering = None if options.standalone else PeeringWatch(client, options, metrics)
        if peering is None:
            log.warning(
                "running standalone (--standalone): no peering, so this process reconciles and "
                "scales alone; a second operator on the same cluster would fight it"
            )
            metrics.active.set(1)
        else:
            loops.append(
                aiokit.guarded_task("peering-watch", peering.run, log=log, on_return="fatal")
            )

        def active() -> bool:
            return peering is None or peering.active

        loops.append(
            aiokit.guarded_task(
                "autoscaler", lambda: autoscaler.run(active), log=log, on_return="fatal"
            )
        )
        log.info(
            "operator %s (priority %d) watching %s",
            options.identity,
            options.priority,
            options.namespace or "all namespaces",
        )
        done, pending = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
        await aiokit.stop_tasks(pending, grace_seconds=0)
        if runner is not None:
            await runner.cleanup()
        for task in done:
            if task is not reactor or task.exception() is not None:
                error = task.exception()
                log.error("%s stopped unexpectedly: %r", task.get_name(), error)
                return 1
        return 0
