"""The gateway's Kubernetes backend: functions and ready instances from the API, demand to it.

``KubernetesBackend`` implements the ``InstanceBackend`` seam for a cluster. It watches Function,
FunctionVersion and FunctionAlias objects (into the ``FunctionRegistry``) and the EndpointSlices
of the operator's runtime Services (into the Router, through the listener, exactly as local
instances are fed; a published version's Service is labelled with its version, so its slices
feed `namespace/name:N`), and reports this replica's per-function concurrency in its own Lease for
the operator's autoscaler (ADR 007): at once when a function goes from idle to busy (scale from
zero, the request is held meanwhile), otherwise at most once per ``report_interval`` and as a
keep-alive while there is demand.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kfaas import aiokit, object_store, runtimetoken
from kfaas.api_objects import from_api_object
from kfaas.backends import Endpoint, EndpointsListener
from kfaas.brokers.errors import KafkaAuthError
from kfaas.brokers.kafka_security import SecretReader
from kfaas.config import Settings
from kfaas.demand import LEASE_SECONDS, demand_lease, lease_name
from kfaas.kube_clients import Credentials, Informer, KubeClient, KubeError
from kfaas.lambda_shapes import object_facts
from kfaas.manifests import API_GROUP, Function, ManifestError
from kfaas.names import LATEST, function_key, parse_function_key
from kfaas.version_manifests import CodeMismatch, checked_code, parse_alias, parse_version

from .auth_clients import ClusterAuth
from .code_store_client import HttpCodeStore
from .kube_store import KubernetesObjectStore
from .listeners import Listener
from .registry import (
    FunctionFacts,
    FunctionRegistry,
    alias_route,
    code_facts,
    version_function,
    version_key,
)
from .serving import compose_gateway
from .trigger_keys import KeySource, KeysUnavailable, selected

log = logging.getLogger("kfaas.gateway.kubernetes")

Body = dict[str, Any]
Parsed = TypeVar("Parsed")
FUNCTION_LABEL = f"{API_GROUP}/function"
VERSION_LABEL = f"{API_GROUP}/version"
RUNTIME_SELECTOR = f"{API_GROUP}/component=runtime"


def endpoints_of(slices: list[Body], capacity: int, token: str = "") -> list[Endpoint]:
    """The ready pod addresses in a function's EndpointSlices, one Endpoint each.

    ``token`` is the function's runtime token (ADR 011), presented on every call to them.
    """
    found: dict[str, Endpoint] = {}
    for item in slices:
        ports = [p for p in item.get("ports") or [] if p.get("name") in ("http", None)]
        if not ports or ports[0].get("port") is None:
            continue
        port = ports[0]["port"]
        for entry in item.get("endpoints") or []:
            conditions = entry.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating") is True:
                continue
            for address in entry.get("addresses") or []:
                target = (entry.get("targetRef") or {}).get("name") or address
                found[target] = Endpoint(target, f"http://{address}:{port}", capacity, token)
    return [found[key] for key in sorted(found)]


def slice_key(namespace: str, labels: dict[str, str]) -> str | None:
    """The function key an EndpointSlice's addresses serve: `namespace/name`, or a published
    version's `namespace/name:N` (the operator labels a version's Service with it, ADR 024)."""
    function = labels.get(FUNCTION_LABEL)
    if not function:
        return None
    return function_key(namespace, function, labels.get(VERSION_LABEL) or LATEST)


def _parsed(body: Body, parse: Callable[[Body], Parsed]) -> Parsed | None:
    try:
        return parse(body)
    except ManifestError as exc:
        log.warning("ignoring an invalid %s: %s", body.get("kind", "object"), exc)
        return None


def function_from(body: Body) -> Function | None:
    try:
        return from_api_object(body, Function)
    except ManifestError as exc:
        log.warning("ignoring an invalid Function: %s", exc)
        return None


class KubernetesBackend:
    def __init__(
        self,
        client: KubeClient,
        registry: FunctionRegistry,
        *,
        platform_namespace: str,
        replica: str,
        watch_namespace: str | None = None,
        report_interval: float = 1.0,
        runtime_token_key: str | None = None,
    ) -> None:
        self.client = client
        self._runtime_token_key = runtime_token_key
        self.registry = registry
        self.platform_namespace = platform_namespace
        self.replica = replica
        self.report_interval = report_interval
        self._listeners: list[EndpointsListener] = []
        self._concurrency: dict[str, int] = {}
        self._reported: dict[str, int] = {}
        self._reported_at = 0.0
        self._urgent = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.functions = Informer(
            client, f"{API_GROUP}/v1alpha1", "functions", self._function_changed,
            namespace=watch_namespace,
        )  # fmt: skip
        self.slices = Informer(
            client, "discovery.k8s.io/v1", "endpointslices", self._slice_changed,
            namespace=watch_namespace, label_selector=RUNTIME_SELECTOR,
        )  # fmt: skip
        # Published versions and aliases (ADR 024): the registry resolves `name:N` and
        # `name:alias` with them; the operator runs each version on a Deployment of its own.
        self.versions = Informer(
            client, f"{API_GROUP}/v1alpha1", "functionversions", self._version_changed,
            namespace=watch_namespace,
        )  # fmt: skip
        self.aliases = Informer(
            client, f"{API_GROUP}/v1alpha1", "functionaliases", self._alias_changed,
            namespace=watch_namespace,
        )  # fmt: skip

    # -- InstanceBackend ---------------------------------------------------------------------

    def subscribe(self, listener: EndpointsListener) -> None:
        self._listeners.append(listener)

    def demand(self, function_key: str, concurrency: int) -> None:
        before = self._concurrency.get(function_key, 0)
        self._concurrency[function_key] = concurrency
        if concurrency > 0 and self._reported.get(function_key, 0) == 0 and before == 0:
            self._urgent.set()  # scale from zero: the operator must hear of it now

    # -- discovery -----------------------------------------------------------------------------

    def _function_changed(self, key: str, body: Body | None) -> None:
        function = function_from(body) if body is not None else None
        if function is None or body is None:
            self.registry.remove(key)
        else:
            # LastModified and RevisionId from the object's own facts (ADR 024).
            facts = FunctionFacts(
                object=object_facts(body), code=code_facts(function, local_files=False)
            )
            self.registry.put(function, facts)
        self._publish(key)

    def _version_changed(self, key: str, body: Body | None) -> None:
        version = _parsed(body, parse_version) if body is not None else None
        code = None
        if version is not None:
            try:
                code = checked_code(version)
            except CodeMismatch as exc:  # never served under another digest; status says why
                log.warning("not serving %s: %s", key, exc)
        if version is None or body is None or code is None:
            self.registry.remove(version_key(key))
        else:
            facts = FunctionFacts(object=object_facts(body), code=code)
            self.registry.put(version_function(version), facts)
        self._publish(version_key(key))

    def _alias_changed(self, key: str, body: Body | None) -> None:
        namespace, _, name = key.partition("/")
        function, _, alias_name = name.partition(".")  # a function name holds no dot
        alias = _parsed(body, parse_alias) if body is not None else None
        if alias is None:
            self.registry.remove_alias(namespace, function, alias_name)
        else:
            self.registry.put_alias(namespace, function, alias_name, alias_route(alias))

    def _slice_changed(self, key: str, body: Body | None) -> None:
        labels = (body or {}).get("metadata", {}).get("labels", {})
        namespace = key.split("/", 1)[0]
        function = slice_key(namespace, labels)
        if function:
            self._publish(function)
        else:
            # A deleted slice: republish every function of its namespace (cheap, rare).
            for known in {k for k in self._slice_keys() if k.startswith(f"{namespace}/")}:
                self._publish(known)

    def _slice_keys(self) -> set[str]:
        keys = set()
        for key, item in self.slices.objects.items():
            labels = item.get("metadata", {}).get("labels", {})
            function = slice_key(key.split("/", 1)[0], labels)
            if function:
                keys.add(function)
        known = [*self.registry.list(), *self.registry.versions()]
        return keys | {f.key for f in known}

    def _publish(self, key: str) -> None:
        namespace, name, _ = parse_function_key(key)
        slices = [
            item
            for item_key, item in self.slices.objects.items()
            if item_key.startswith(f"{namespace}/")
            and slice_key(namespace, item.get("metadata", {}).get("labels", {})) == key
        ]
        function = self.registry.find(key)
        capacity = function.spec.concurrency.per_instance if function else 1
        platform_key = self._runtime_token_key
        # A version's token Secret holds its function's token (derived from the name alone).
        token = runtimetoken.derive(platform_key, namespace, name) if platform_key else ""
        endpoints = endpoints_of(slices, capacity, token) if function else []
        for listener in self._listeners:
            listener(key, endpoints)

    # -- demand reporting ----------------------------------------------------------------------

    async def _report_demand(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await aiokit.wait_event(self._urgent, self.report_interval)
            self._urgent.clear()
            figures = {key: value for key, value in self._concurrency.items() if value > 0}
            stale = loop.time() - self._reported_at > LEASE_SECONDS / 3
            if figures == self._reported and not (figures and stale):
                continue
            lease = demand_lease(
                self.platform_namespace,
                self.replica,
                figures,
                datetime.datetime.now(datetime.UTC),
            )
            try:
                await self.client.apply(lease, "leases")
            except KubeError as exc:
                log.warning("cannot report demand: %s", exc)
                continue
            self._reported = figures
            self._reported_at = loop.time()

    async def start(self) -> None:
        # A watch or the reporter must never stop silently: without them the gateway is blind, so
        # one that ends (they retry on their own) ends the process.
        exit_gateway = aiokit.exit_process(log, status=1)
        for name, run in (
            ("functions", self.functions.run),
            ("endpointslices", self.slices.run),
            ("functionversions", self.versions.run),
            ("functionaliases", self.aliases.run),
            ("demand-reporter", self._report_demand),
        ):
            self._tasks.append(
                aiokit.guarded_task(
                    f"gateway-{name}", run, log=log, on_return="fatal", on_fatal=exit_gateway
                )
            )
        await asyncio.gather(
            *(
                informer.synced.wait()
                for informer in (self.functions, self.slices, self.versions, self.aliases)
            )
        )

    async def stop(self) -> None:
        await aiokit.stop_tasks(self._tasks, grace_seconds=0)
        with contextlib.suppress(KubeError):
            await self.client.delete(
                "coordination.k8s.io/v1", "leases", self.platform_namespace,
                lease_name(self.replica),
            )  # fmt: skip


@dataclass(frozen=True)
class _Read:
    """One Secret's or ConfigMap's data as read: text for trigger keys, bytes for Kafka's PEMs."""

    text: dict[str, str]
    binary: dict[str, bytes]


class KubernetesKeySources:
    """HTTP trigger keys from the Secrets and ConfigMaps Functions name (``trigger_keys``), and
    the Secrets a Kafka destination's ``tls``/``auth`` names (``secret_reader``, ADR 027).

    The gateway gets them one by one and never lists them, so it reads only objects a Function
    names. Each read is cached for ``ttl_seconds``, misses too: a rotated key takes effect within
    that time, and a flood of requests costs one apiserver read per object per interval.
    """

    def __init__(self, client: KubeClient, *, ttl_seconds: float = 10.0) -> None:
        self.client = client
        self.ttl = ttl_seconds
        self._cache: dict[tuple[str, str, str], tuple[float, _Read | KubeError]] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    async def values(self, namespace: str, source: KeySource) -> list[str]:
        if source.secret_ref is not None:
            return selected(await self._data("secrets", namespace, source.secret_ref.name),
                            source.secret_ref, "Secret")  # fmt: skip
        config_map = getattr(source, "config_map_ref", None)
        if config_map is not None:
            data = await self._data("configmaps", namespace, config_map.name)
            return selected(data, config_map, "ConfigMap")
        raise KeysUnavailable("`file` is for kfaas dev only; in a cluster name a Secret")

    def secret_reader(self, namespace: str) -> SecretReader:
        """Reads a Secret of ``namespace`` by name: its data, None if it does not exist."""

        async def read(name: str) -> Mapping[str, bytes] | None:
            found = await self._cached("secrets", namespace, name)
            if not isinstance(found, KubeError):
                return found.binary
            if found.not_found:
                return None
            reader = "the gateway (the scheduler, for a Schedule's dead letters)"
            what = f"Secret {namespace}/{name}"
            raise KafkaAuthError(_unreadable(what, namespace, found, reader))

        return read

    async def _data(self, plural: str, namespace: str, name: str) -> dict[str, str]:
        found = await self._cached(plural, namespace, name)
        if isinstance(found, KubeError):
            what = f"{'Secret' if plural == 'secrets' else 'ConfigMap'} {namespace}/{name}"
            raise KeysUnavailable(_unreadable(what, namespace, found))
        return found.text

    async def _cached(self, plural: str, namespace: str, name: str) -> _Read | KubeError:
        key = (plural, namespace, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            now = asyncio.get_running_loop().time()
            if cached is None or now - cached[0] >= self.ttl:
                cached = (now, await self._read(plural, namespace, name))
                self._cache[key] = cached
        return cached[1]

    async def _read(self, plural: str, namespace: str, name: str) -> _Read | KubeError:
        what = f"{'Secret' if plural == 'secrets' else 'ConfigMap'} {namespace}/{name}"
        try:
            body = await self.client.get("v1", plural, namespace, name)
        except KubeError as exc:
            return exc
        read = _Read({}, {})
        for entry, value in (body.get("data") or {}).items():
            try:
                data = base64.b64decode(value) if plural == "secrets" else value.encode()
            except ValueError:
                log.warning("%s: key %s is not base64; skipped", what, entry)
                continue
            read.binary[entry] = data
            try:
                read.text[entry] = data.decode()
            except UnicodeDecodeError:
                log.warning("%s: key %s is not UTF-8 text; skipped", what, entry)
        return read


def _unreadable(what: str, namespace: str, error: KubeError, reader: str = "the gateway") -> str:
    if error.status == 403:
        return (
            f"{what}: kfaas may not read it; bind the chart's <release>-gateway-trigger-keys "
            f"ClusterRole in {namespace} to {reader}"
        )
    return f"{what}: {error.reason}"


async def run_kubernetes_gateway(
    *,
    host: str,
    port: int,
    settings: Settings,
    platform_namespace: str,
    watch_namespace: str | None = None,
    kubeconfig: str | None = None,
    async_queue: str = "memory",
    listeners: Sequence[Listener] = (),
    replica: str,
    code_store: HttpCodeStore | None = None,
    location_key: str | None = None,
) -> int:
    """Serve the gateway with functions and instances from the cluster until interrupted.

    ``async_queue`` is a queue URL (``memory``, ``redis://…``, ``kafka://…``) as for `kfaas dev`;
    ``listeners`` split the Invoke API and HTTP triggers (default: both on host:port); ``replica``
    names this gateway in its demand Lease (the pod's name); ``code_store`` is the cluster's code
    store (``KFAAS_CODE_STORE_URL``), None when it is not configured; ``location_key`` signs
    Code.Location URLs (the code store's key, so every replica opens every replica's URLs).
    """
    credentials = Credentials.load(kubeconfig)
    async with KubeClient(credentials, field_manager=object_store.GATEWAY_MANAGER) as client:
        registry = FunctionRegistry(
            default_namespace=settings.default_namespace, region=settings.region
        )
        backend = KubernetesBackend(
            client, registry, platform_namespace=platform_namespace, replica=replica,
            watch_namespace=watch_namespace,
            runtime_token_key=settings.runtime_token_key,
        )  # fmt: skip
        cluster_auth = ClusterAuth(client, settings, platform_namespace)
        ready = False
        functions_known = asyncio.Event()
        secret_sources = KubernetesKeySources(client)
        gateway = compose_gateway(
            registry,
            backend,
            settings,
            async_queue=async_queue,
            authentication=cluster_auth.auth,
            ready=lambda: ready,
            trigger_key_sources=secret_sources,
            functions_known=functions_known,
            # The management API writes the cluster's objects as this gateway (ADR 024).
            objects=KubernetesObjectStore(client, watch_namespace=watch_namespace),
            code_store=code_store,
            location_key=location_key,
            replicated=True,
            secrets=secret_sources.secret_reader,
        )
        sites = await gateway.serve(list(listeners) or [Listener("all", host, port)])
        try:
            cluster_auth.start()
            await backend.start()
            functions_known.set()
            await cluster_auth.synced()
            ready = True
            for site in sites:
                log.info("gateway %s serving %s on %s", replica, site.listener.role, site.name)
            await asyncio.Event().wait()
        finally:
            await cluster_auth.stop()
            await backend.stop()
            await gateway.close()
            if code_store is not None:
                await code_store.close()
    return 0
