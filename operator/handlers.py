"""The Kopf handlers: thin glue between Kopf's events and the reconcile steps.

Functions, published FunctionVersions (ADR 024) and EventSourceMappings are reconciled on create,
update and resume (an operator restart re-checks everything and, thanks to the hash annotations,
writes nothing that is already right). Changes of the Deployments the operator made refresh the
owner's status (instances, rollout, Ready), and so does a poller's report that changes what a
mapping's Ready and state should say. A change of a ConfigMap that Functions name as
``code.configMap`` (found through an index of those references, so no API call is made for other
ConfigMaps) re-reconciles them: the new files mean a new code digest, a rolling update and, once it
is done, a new ``status.codeSha256``. No handler needs a finalizer: children go with their owner
through ownerReferences. Handlers are registered on a registry given by the caller, so importing
this module does nothing.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any

import kopf

from kfaas.api_objects import from_api_object
from kfaas.kube_clients import KubeClient, KubeError
from kfaas.manifests import API_GROUP, Function, ManifestError

from . import names
from .applier import Applier
from .conditions import rolled_out
from .config import OperatorConfig
from .metrics import OperatorMetrics
from .reconcile import prune_code, reconcile_function, reconcile_mapping, reconcile_version
from .status import Result, polling_not_folded
from .status_writes import write_status

log = logging.getLogger("kfaas.operator")

VERSION = "v1alpha1"
RETRY_SECONDS = 15


def configure(settings: kopf.OperatorSettings) -> None:
    """Kopf's bookkeeping in annotations of our own group; Events only for what went wrong."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.peering.lifetime = 30


async def _report(
    client: KubeClient,
    kind: str,
    body: Any,
    result: Result,
    metrics: OperatorMetrics,
    *,
    retry: bool = True,
) -> None:
    """Write the status, post each failed step as a Warning Event, retry while any failed."""
    metrics.reconciles.labels(kind, "failed" if result.failures else "ok").inc()
    meta = body["metadata"]
    await write_status(client, kind, meta["namespace"], meta["name"], result)
    wrote = ", ".join(result.written) or "nothing (all up to date)"
    log.info("reconciled %s %s/%s: wrote %s", kind, meta["namespace"], meta["name"], wrote)
    for failure in result.failures:
        kopf.warn(body, reason=failure.reason, message=failure.message)
    if result.failures and retry:
        first = result.failures[0]
        raise kopf.TemporaryError(f"{first.reason}: {first.message}", delay=RETRY_SECONDS)


def register(
    registry: kopf.OperatorRegistry,
    client: KubeClient,
    config: OperatorConfig,
    metrics: OperatorMetrics,
) -> None:
    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as our own client: in-cluster, else $KUBECONFIG.
        return kopf.login_via_client(**kwargs)

    @kopf.on.resume(API_GROUP, VERSION, "functions", registry=registry)
    @kopf.on.create(API_GROUP, VERSION, "functions", registry=registry)
    @kopf.on.update(API_GROUP, VERSION, "functions", registry=registry)
    async def function_changed(body: kopf.Body, **_: Any) -> None:
        result = await reconcile_function(client, _plain(body), config)
        await _report(client, "Function", body, result, metrics)

    # A published version runs on instances of its own, as its function does (ADR 024).
    @kopf.on.resume(API_GROUP, VERSION, "functionversions", registry=registry)
    @kopf.on.create(API_GROUP, VERSION, "functionversions", registry=registry)
    @kopf.on.update(API_GROUP, VERSION, "functionversions", registry=registry)
    async def version_changed(body: kopf.Body, **_: Any) -> None:
        result = await reconcile_version(client, _plain(body), config)
        await _report(client, "FunctionVersion", body, result, metrics)

    @kopf.on.resume(API_GROUP, VERSION, "eventsourcemappings", registry=registry)
    @kopf.on.create(API_GROUP, VERSION, "eventsourcemappings", registry=registry)
    @kopf.on.update(API_GROUP, VERSION, "eventsourcemappings", registry=registry)
    async def mapping_changed(body: kopf.Body, **_: Any) -> None:
        result = await reconcile_mapping(client, _plain(body), config)
        await _report(client, "EventSourceMapping", body, result, metrics)

    # A poller's report (its Polling condition) changes only the mapping's status, which Kopf's
    # update handlers ignore: each watch event checks, from the object alone, whether Ready and
    # state still agree with it, and refreshes them when not.
    @kopf.on.event(API_GROUP, VERSION, "eventsourcemappings", registry=registry)
    async def mapping_reported(body: kopf.Body, **_: Any) -> None:
        mapping = _plain(body)
        namespace = body.metadata.namespace
        if namespace is None or not polling_not_folded(mapping):
            return
        try:
            await write_status(client, "EventSourceMapping", namespace, body.metadata.name, None)
        except KubeError as exc:
            # The pollers report again within seconds, and every report is an event.
            log.warning(
                "cannot fold the pollers' report into %s/%s: %s", namespace, body.metadata.name, exc
            )

    # An explicit id: Kopf passes an index to handlers as a keyword named by the index's id.
    @kopf.index(API_GROUP, VERSION, "functions", id="code_config_maps", registry=registry)
    def code_config_maps(
        namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> dict[tuple[str | None, str], str] | None:
        """(namespace, ConfigMap) → the Functions whose ``code.configMap`` names it."""
        config_map = (spec.get("code") or {}).get("configMap")
        return {(namespace, str(config_map)): name} if config_map else None

    @kopf.on.event("v1", "configmaps", registry=registry)
    async def config_map_changed(namespace: str | None, name: str, **kwargs: Any) -> None:
        index: kopf.Index[tuple[str | None, str], str] = kwargs["code_config_maps"]
        for function_name in sorted(index.get((namespace, name), [])):
            await _reconcile_code_user(client, namespace, function_name, config, metrics)

    @kopf.on.event(
        "apps",
        "v1",
        "deployments",
        labels={"app.kubernetes.io/managed-by": names.MANAGED_BY},
        registry=registry,
    )
    async def deployment_changed(body: kopf.Body, **_: Any) -> None:
        owner = _owner(_plain(body))
        namespace = body.metadata.namespace
        if owner is None or namespace is None:
            return
        kind, name = owner
        try:
            deployment = await write_status(client, kind, namespace, name, None)
            if kind == "Function" and deployment is not None and rolled_out(deployment):
                found = await client.find(f"{API_GROUP}/{VERSION}", "functions", namespace, name)
                if found is not None:
                    with contextlib.suppress(ManifestError):
                        await prune_code(Applier(client), from_api_object(found, Function))
        except KubeError as exc:
            # The next Deployment event or the owner's own handler brings the status up to date.
            log.warning("cannot refresh the status of %s %s/%s: %s", kind, namespace, name, exc)


async def _reconcile_code_user(
    client: KubeClient,
    namespace: str | None,
    name: str,
    config: OperatorConfig,
    metrics: OperatorMetrics,
) -> None:
    """Reconcile a Function because its code ConfigMap changed (appeared, was edited, went away).

    Failed steps land in its status and Events as usual but are not retried from here: an event
    handler has no retries, and the Function's own handler retries until its code is found.
    """
    if namespace is None:
        return
    try:
        found = await client.find(f"{API_GROUP}/{VERSION}", "functions", namespace, name)
        if found is None:
            return
        result = await reconcile_function(client, found, config)
        await _report(client, "Function", found, result, metrics, retry=False)
    except KubeError as exc:
        log.warning(
            "cannot reconcile Function %s/%s after its code changed: %s", namespace, name, exc
        )


def _owner(obj: dict[str, Any]) -> tuple[str, str] | None:
    for reference in obj.get("metadata", {}).get("ownerReferences", []):
        if reference.get("apiVersion", "").startswith(f"{API_GROUP}/") and reference.get(
            "controller"
        ):
            return str(reference["kind"]), str(reference["name"])
    return None


def _plain(body: Any) -> dict[str, Any]:
    """Kopf's read-only body as a plain, deep-copied dict for the builders."""
    return copy.deepcopy(dict(body))
