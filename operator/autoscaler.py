"""The autoscaler: the shared scaling rule (``kfaas.scaling``) applied to runtime Deployments.

Every gateway replica reports its per-function concurrency in a Lease (ADR 007); the autoscaler
sums the live ones, samples the sum once a second per function, asks ``desired_instances`` and
server-side applies ``spec.replicas`` alone as its own field manager (``kfaas-autoscaler``), so
the reconciler, which never sets replicas, and the autoscaler never fight over it. A Lease change
wakes it at once: a function at zero with a held request gets its first instance without waiting
for the next tick. It acts only while this replica is the active one (``active()``), and keeps
its caches warm while standby so a takeover decides from full information.

Published versions (FunctionVersion objects, ADR 024) are scaled the same way, each on its own:
the gateways report a version's demand under `namespace/name:N` (``Function.key``), the key the
autoscaler keeps its window under, and its Deployment is the version's own.

Provisioned instances (``concurrency.provisioned``) run in a Deployment of their own that the
reconciler keeps at exactly that many (ADR 030). The rule decides the function's instances in all,
provisioned ones included, and the on-demand Deployment gets the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from kfaas import aiokit, runtimes
from kfaas.api_objects import from_api_object
from kfaas.demand import DEMAND_LABEL, DEMAND_LABEL_VALUE, total_demand
from kfaas.kube_clients import Informer, KubeClient, KubeError, running
from kfaas.manifests import Function, ManifestError
from kfaas.names import parse_function_key
from kfaas.scaling import ScalingPolicy, ScalingState, desired_instances, record
from kfaas.version_manifests import checked_code, parse_version

from . import names
from .metrics import OperatorMetrics
from .resources.function import make_replicas, on_demand_instances

log = logging.getLogger("kfaas.operator.autoscaler")

Body = dict[str, Any]


class Autoscaler:
    def __init__(
        self,
        client: KubeClient,
        *,
        platform_namespace: str,
        watch_namespace: str | None = None,
        interval: float = 1.0,
        stable_window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        metrics: OperatorMetrics | None = None,
        allow_service_account_token: bool = False,
        images: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.allow_service_account_token = allow_service_account_token
        # The image of each runtime (OperatorConfig.images): a function whose runtime has none
        # is refused (ADR 016) and never scaled up. None: every runtime is taken as runnable.
        self.images = images
        self.interval = interval
        self.stable_window_seconds = stable_window_seconds
        self.clock = clock
        self.metrics = metrics or OperatorMetrics()
        self.wake = asyncio.Event()
        self.states: dict[str, ScalingState] = {}
        self.functions = Informer(
            client, "kfaas.dev/v1alpha1", "functions", self._changed, namespace=watch_namespace
        )
        self.versions = Informer(
            client,
            "kfaas.dev/v1alpha1",
            "functionversions",
            self._changed,
            namespace=watch_namespace,
        )
        self.deployments = Informer(
            client,
            "apps/v1",
            "deployments",
            self._changed,
            namespace=watch_namespace,
            label_selector=f"{names.COMPONENT_LABEL}={names.RUNTIME_COMPONENT}",
        )
        self.leases = Informer(
            client,
            "coordination.k8s.io/v1",
            "leases",
            self._changed,
            namespace=platform_namespace,
            label_selector=f"{DEMAND_LABEL}={DEMAND_LABEL_VALUE}",
        )

    def _changed(self, key: str, obj: Body | None) -> None:
        self.wake.set()

    async def run(self, active: Callable[[], bool]) -> None:
        """Decide every ``interval`` (or at once when woken) while ``active()``; never returns."""
        async with running(self.functions, self.versions, self.deployments, self.leases):
            await asyncio.gather(
                self.functions.synced.wait(),
                self.versions.synced.wait(),
                self.deployments.synced.wait(),
                self.leases.synced.wait(),
            )
            while True:
                await aiokit.wait_event(self.wake, self.interval)
                self.wake.clear()
                if not active():
                    # Standby: forget the windows, a takeover starts from the live figures.
                    self.states.clear()
                    continue
                await self.tick()

    async def tick(self) -> None:
        now = self.clock()
        demand = total_demand(self.leases.objects.values(), datetime.datetime.now(datetime.UTC))
        seen = set()
        for function in self._runnable():
            key = function.key
            seen.add(key)
            try:
                await self._scale(function, demand.get(key, 0), now)
            except KubeError as exc:
                log.warning("cannot scale %s: %s", key, exc)
        for key in set(self.states) - seen:
            del self.states[key]
            self.metrics.forget(*parse_function_key(key))

    def _runnable(self) -> list[Function]:
        """Every Function and published version as it runs; objects that do not parse are the
        reconciler's to report, and are not scaled."""
        runnable = []
        for body in list(self.functions.objects.values()):
            try:
                runnable.append(from_api_object(body, Function))
            except ManifestError:
                continue
        for body in list(self.versions.objects.values()):
            try:
                version = parse_version(body)
                checked_code(version)  # CodeMismatch (ADR 031): the reconciler built nothing
            except ManifestError:
                continue
            runnable.append(version.function().as_version(version.spec.version))
        return runnable

    async def _scale(self, function: Function, concurrency: int, now: float) -> None:
        key = function.key
        template = function.spec.pod_template
        if template.automount_service_account_token and not self.allow_service_account_token:
            return  # refused (PodTemplateNotAllowed): its instances stay stopped
        spec = function.spec
        if self.images is not None and (
            runtimes.function_image(spec.runtime, spec.code.image, self.images) is None
        ):
            return  # refused (RuntimeNotAvailable): its instances stay stopped
        namespace, name, version = (
            function.metadata.namespace,
            function.metadata.name,
            function.version,
        )
        workload = f"{namespace}/{names.function_workload(name, version)}"
        deployment = self.deployments.objects.get(workload)
        if deployment is None:
            return  # the reconciler has not created it yet
        policy = dataclasses.replace(
            ScalingPolicy.from_spec(function.spec), stable_window_seconds=self.stable_window_seconds
        )
        state = self.states.get(key)
        if state is None:
            # Running instances get a full idle period before going to zero.
            current = int(deployment.get("spec", {}).get("replicas", 0))
            state = ScalingState.for_policy(policy, now if current > 0 else None)
            self.states[key] = state
        record(state, now, float(concurrency))
        current = int(deployment.get("spec", {}).get("replicas", 0))
        provisioned = spec.concurrency.provisioned
        wanted = desired_instances(policy, state, now, current + provisioned)
        desired = on_demand_instances(function, wanted)
        self.metrics.demand.labels(namespace, name, version).set(concurrency)
        self.metrics.desired.labels(namespace, name, version).set(wanted)
        if desired != current:
            log.info(
                "scaling %s from %d to %d instances (concurrency %d)",
                key,
                current,
                desired,
                concurrency,
            )
            scaled = await self.client.apply(
                make_replicas(namespace, name, desired, version),
                "deployments",
                field_manager=names.AUTOSCALER_FIELD_MANAGER,
            )
            # The watch brings the same soon; until then, decide from what was written.
            self.deployments.objects[workload] = scaled
