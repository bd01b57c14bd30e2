"""Reconcile a Function or an EventSourceMapping as an ordered list of steps (STYLE 3).

Each step builds its desired object with a pure builder, compares the builder's hash with the
live object's annotation and applies (server-side, as ``kfaas-operator``) only on a difference,
so a restarted operator re-reads everything and writes nothing that is already right. Every step
ends in an ``Outcome``; failures are kept as conditions with the API server's own words and
returned so the handler can post them as Kubernetes Events.
"""

from __future__ import annotations

import contextvars
import datetime
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kfaas.kube_clients import KubeClient, KubeError
from kfaas.manifests import Function, ManifestError

from . import names
from .conditions import (
    Outcome,
    instances_outcome,
    merge_conditions,
    poller_outcome,
    ready,
    rolled_out,
)
from .config import OperatorConfig
from .resources import function as fn_resources
from .resources import mapping as mapping_resources
from .resources.common import desired_hash, live_hash

Body = dict[str, Any]

# kind → (apiVersion, plural) of what the operator creates.
PLURALS = {
    "ConfigMap": "configmaps",
    "ServiceAccount": "serviceaccounts",
    "Secret": "secrets",
    "Service": "services",
    "Deployment": "deployments",
    "NetworkPolicy": "networkpolicies",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "Role": "roles",
    "RoleBinding": "rolebindings",
}


@dataclass
class Result:
    """What a reconcile pass found: step outcomes, status fields, failures to report as Events."""

    outcomes: list[Outcome]
    generation: int | None
    extra: Body = field(default_factory=dict)
    # The objects this pass wrote ("Deployment/x-fn"): none when everything was already right.
    written: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "False"]


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# What the current reconcile pass wrote; each Kopf handler runs in its own task and context.
_written: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("written", default=None)


def _note(kind: str, name: str) -> None:
    written = _written.get()
    if written is not None:
        written.append(f"{kind}/{name}")


async def ensure(client: KubeClient, desired: Body) -> Body:
    """The live object after making it match ``desired``; no write when the hash is the same."""
    meta = desired["metadata"]
    plural = PLURALS[desired["kind"]]
    live = await client.find(desired["apiVersion"], plural, meta["namespace"], meta["name"])
    if live is not None and live_hash(live) == desired_hash(desired):
        return live
    _note(desired["kind"], meta["name"])
    return await client.apply(desired, plural)


async def ensure_absent(client: KubeClient, api_version: str, kind: str, meta: Body) -> None:
    if await client.delete(api_version, PLURALS[kind], meta["namespace"], meta["name"]):
        _note(kind, meta["name"])


async def _step(
    outcomes: list[Outcome],
    kind: str,
    action: Callable[[], Awaitable[Outcome]],
) -> bool:
    """Run one step; an API failure becomes a False condition naming the object and the cause."""
    try:
        outcome = await action()
    except KubeError as exc:
        hint = " (the operator lacks a permission: check its RBAC)" if exc.status == 403 else ""
        outcome = Outcome(kind, "False", exc.reason or "ApplyFailed", f"{exc.message}{hint}")
    outcomes.append(outcome)
    return outcome.status != "False"


# -- Function ----------------------------------------------------------------------------------


async def reconcile_function(client: KubeClient, body: Body, config: OperatorConfig) -> Result:
    written: list[str] = []
    token = _written.set(written)
    try:
        result = await _reconcile_function(client, body, config)
    finally:
        _written.reset(token)
    result.written = written
    return result


async def _reconcile_function(client: KubeClient, body: Body, config: OperatorConfig) -> Result:
    generation = body.get("metadata", {}).get("generation")
    # Before anything is built: a stored podTemplate the platform refuses never becomes a pod.
    refusal = fn_resources.pod_template_refusal(body, config)
    if refusal is not None:
        refusal += await _stop_refused(client, body)
        refused = Outcome("SpecValid", "False", "PodTemplateNotAllowed", refusal)
        return Result([refused], generation)
    try:
        function = fn_resources.parse_function(body)
    except ManifestError as exc:
        invalid = Outcome("SpecValid", "False", "InvalidSpec", "; ".join(exc.problems))
        return Result([invalid], generation)
    uid = body["metadata"]["uid"]
    outcomes: list[Outcome] = [Outcome("SpecValid", "True", "SpecValid")]
    # A runtime with no image is never run on another one's interpreter (ADR 016).
    missing = fn_resources.runtime_refusal(function, config)
    if missing is not None:
        missing += await _stop_refused(client, body)
        outcomes.append(Outcome("RuntimeAvailable", "False", "RuntimeNotAvailable", missing))
        return Result(outcomes, generation, {"url": fn_resources.function_url(function, config)})
    image = fn_resources.function_image(function, config)
    outcomes.append(
        Outcome("RuntimeAvailable", "True", "ImageConfigured", f"{function.spec.runtime}: {image}")
    )

    # The ConfigMap a `code.configMap` function names: its files are hashed into the template.
    code_config_map: Body | None = None

    async def code() -> Outcome:
        nonlocal code_config_map
        config_map = fn_resources.make_code_config_map(function, uid)
        if config_map is not None:
            await ensure(client, config_map)
            return Outcome("CodeReady", "True", "InlineCode", "inline code stored in a ConfigMap")
        if function.spec.code.config_map is not None:
            name = function.spec.code.config_map
            code_config_map = await client.find(
                "v1", "configmaps", function.metadata.namespace, name
            )
            if code_config_map is None:
                return _missing_code(function)
            return Outcome("CodeReady", "True", "ConfigMapCode", f"code from ConfigMap {name}")
        return Outcome(
            "CodeReady", "True", "ImageCode", f"code in image {function.spec.code.image}"
        )

    deployment: Body | None = None

    async def resources() -> Outcome:
        nonlocal deployment
        await ensure(client, fn_resources.make_service_account(function, uid))
        await ensure(client, fn_resources.make_service(function, uid))
        await ensure(client, fn_resources.make_network_policy(function, uid, config))
        budget = fn_resources.make_pod_disruption_budget(function, uid)
        if budget is not None:
            await ensure(client, budget)
        else:
            meta = {
                "namespace": function.metadata.namespace,
                "name": names.function_workload(function.metadata.name),
            }
            await ensure_absent(client, "policy/v1", "PodDisruptionBudget", meta)
        deployment = await _ensure_deployment(client, function, uid, config, code_config_map)
        return Outcome("ResourcesReady", "True", "Applied", "all child objects are up to date")

    if await _step(outcomes, "CodeReady", code):
        await _step(outcomes, "ResourcesReady", resources)
    else:
        outcomes.append(Outcome("ResourcesReady", "Unknown", "WaitingForCode", "code not ready"))
    if deployment is not None and rolled_out(deployment):
        await prune_code(client, function)
    return Result(outcomes, generation, {"url": fn_resources.function_url(function, config)})


async def _stop_refused(client: KubeClient, body: Body) -> str:
    """Scale to zero the pods an earlier version built from a podTemplate (or for a runtime)
    now refused.

    Only ``replicas`` is written, as the autoscaler (which skips refused Functions): the refused
    template itself is never applied. Returns what to add to the condition's message.
    """
    meta = body.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    workload = names.function_workload(name)
    try:
        live = await client.find("apps/v1", "deployments", namespace, workload)
        if live is None or not live.get("spec", {}).get("replicas"):
            return ""
        _note("Deployment", workload)
        await client.apply(
            fn_resources.make_replicas(namespace, name, 0),
            "deployments",
            field_manager=names.AUTOSCALER_FIELD_MANAGER,
        )
    except KubeError as exc:
        return f"; its running instances could not be stopped: {exc.message}"
    return f"; its running instances (Deployment {workload}) were stopped"


def _missing_code(function: Function) -> Outcome:
    name, namespace = function.spec.code.config_map, function.metadata.namespace
    return Outcome(
        "CodeReady",
        "False",
        "CodeConfigMapNotFound",
        f"ConfigMap {name} does not exist in namespace {namespace};"
        " create it (one key per file) or fix spec.code.configMap",
    )


async def _ensure_deployment(
    client: KubeClient,
    function: Function,
    uid: str,
    config: OperatorConfig,
    code: Body | None,
) -> Body:
    """Apply the runtime Deployment; a new one starts at the floor, owned by the autoscaler.

    The reconciler never sets ``replicas`` on an existing Deployment. At creation it does (so a
    function with no floor starts with no pod, not Kubernetes' default one) and the autoscaler's
    field manager applies the same value at once: from then on the autoscaler alone owns it, and
    the reconciler's later applies, which leave it out, do not reset it.
    """
    desired = fn_resources.make_deployment(function, uid, config, code=code)
    meta = desired["metadata"]
    live = await client.find("apps/v1", "deployments", meta["namespace"], meta["name"])
    if live is not None and live_hash(live) == desired_hash(desired):
        return live
    # The runtime token's Secret (ADR 011) goes with each Deployment write, whose template
    # carries the token's fingerprint: the operator may write Secrets but never read one.
    token = fn_resources.make_token_secret(function, uid, config)
    if token is not None:
        _note("Secret", token["metadata"]["name"])
        await client.apply(token, "secrets")
    if live is not None:
        _note("Deployment", meta["name"])
        return await client.apply(desired, "deployments")
    _note("Deployment", meta["name"])
    floor = fn_resources.initial_replicas(function)
    await client.apply({**desired, "spec": {**desired["spec"], "replicas": floor}}, "deployments")
    return await client.apply(
        fn_resources.make_replicas(meta["namespace"], function.metadata.name, floor),
        "deployments",
        field_manager=names.AUTOSCALER_FIELD_MANAGER,
    )


def _running_code(deployment: Body | None) -> str | None:
    """The code digest the pods run: the template's, once the rollout is complete."""
    if deployment is None or not rolled_out(deployment):
        return None
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    value = annotations.get(names.CODE_SHA256_ANNOTATION)
    return str(value) if value else None


def _counts(deployment: Body | None) -> Body:
    if deployment is None:
        return {}
    return {
        "instances": int(deployment.get("spec", {}).get("replicas", 0)),
        "readyInstances": int(deployment.get("status", {}).get("readyReplicas", 0)),
    }


def _steps(owner: Body, result: Result | None, own: str) -> list[Outcome]:
    """The step outcomes: the stored ones, overridden by a fresh reconcile pass."""
    conditions = (owner.get("status") or {}).get("conditions") or []
    steps = {
        c["type"]: Outcome(c["type"], c["status"], c.get("reason", ""), c.get("message", ""))
        for c in conditions
        if c.get("type") not in ("Ready", own)
    }
    for outcome in result.outcomes if result else []:
        steps[outcome.type] = outcome
    return list(steps.values())


def _status(
    owner: Body, result: Result | None, watched: Outcome, ready_message: str, extra: Body
) -> Body:
    steps = _steps(owner, result, watched.type)
    summary = ready([*steps, watched], ready_message)
    live = owner.get("status") or {}
    generation = result.generation if result else live.get("observedGeneration")
    status: Body = {
        "conditions": merge_conditions(
            live.get("conditions") or [],
            [summary, *steps, watched],
            generation=generation,
            now=now(),
        ),
    }
    if result is not None:
        status["observedGeneration"] = result.generation
        status.update(result.extra)
    status.update({key: value for key, value in extra.items() if value is not None})
    return status


def function_status(owner: Body, result: Result | None, deployment: Body | None) -> Body:
    """A Function's status from its last reconcile pass (if any) and its runtime Deployment."""
    watched = instances_outcome(deployment, owner["metadata"]["name"])
    extra = {"codeSha256": _running_code(deployment), **_counts(deployment)}
    return _status(owner, result, watched, "the function can be invoked", extra)


def mapping_status(owner: Body, result: Result | None, deployment: Body | None) -> Body:
    """A mapping's status from its last reconcile pass (if any) and its poller Deployment."""
    enabled = bool((owner.get("spec") or {}).get("enabled", True))
    watched = poller_outcome(deployment, owner["metadata"]["name"], enabled)
    steps = _steps(owner, result, watched.type)
    extra = {"state": mapping_state([*steps, watched], enabled)}
    return _status(owner, result, watched, "pollers are running", extra)


def status_differs(live: Body, status: Body) -> bool:
    """Whether writing ``status`` would change anything but condition timestamps."""

    def comparable(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: comparable(v) for k, v in value.items() if k != "lastTransitionTime"}
        if isinstance(value, list):
            return [comparable(v) for v in value]
        return value

    return any(comparable(live.get(key)) != comparable(value) for key, value in status.items())


FUNCTIONS = ("kfaas.dev/v1alpha1", "functions")
MAPPINGS = ("kfaas.dev/v1alpha1", "eventsourcemappings")


async def write_status(
    client: KubeClient,
    kind: str,
    namespace: str,
    name: str,
    result: Result | None,
    *,
    attempts: int = 5,
) -> Body | None:
    """Write the owner's status from fresh reads; retried when someone else wrote in between.

    Both the owner's handler and the Deployment watcher write status. Each write is computed
    from the owner and the Deployment as they are now and carries the owner's resourceVersion,
    so the last write always rests on the latest state (no lost condition, no stale count).
    """
    api_version, plural = FUNCTIONS if kind == "Function" else MAPPINGS
    workload = names.function_workload(name) if kind == "Function" else names.poller(name)
    for _ in range(attempts):
        owner = await client.find(api_version, plural, namespace, name)
        if owner is None:
            return None
        deployment = await client.find("apps/v1", "deployments", namespace, workload)
        builder = function_status if kind == "Function" else mapping_status
        status = builder(owner, result, deployment)
        if not status_differs(owner.get("status") or {}, status):
            return deployment
        version = owner["metadata"]["resourceVersion"]
        try:
            await client.patch(
                api_version, plural, namespace, name,
                {"metadata": {"resourceVersion": version}, "status": status},
                subresource="status",
            )  # fmt: skip
            return deployment
        except KubeError as exc:
            if exc.status != 409:
                raise
    return None


async def prune_code(client: KubeClient, function: Function) -> None:
    """Delete inline-code ConfigMaps of earlier versions once no pod runs them."""
    current = fn_resources.code_config_map_name(function)
    found = await client.list(
        "v1",
        "configmaps",
        function.metadata.namespace,
        label_selector=f"{names.FUNCTION_LABEL}={function.metadata.name}",
    )
    for item in found.get("items", []):
        name = item["metadata"]["name"]
        is_old_code = names.CODE_SHA256_ANNOTATION in item["metadata"].get("annotations", {})
        if not is_old_code or name == current:
            continue
        if await client.delete("v1", "configmaps", function.metadata.namespace, name):
            _note("ConfigMap", name)


# -- EventSourceMapping ------------------------------------------------------------------------


async def reconcile_mapping(client: KubeClient, body: Body, config: OperatorConfig) -> Result:
    written: list[str] = []
    token = _written.set(written)
    try:
        result = await _reconcile_mapping(client, body, config)
    finally:
        _written.reset(token)
    result.written = written
    return result


async def _reconcile_mapping(client: KubeClient, body: Body, config: OperatorConfig) -> Result:
    generation = body.get("metadata", {}).get("generation")
    try:
        mapping = mapping_resources.parse_mapping(body)
    except ManifestError as exc:
        invalid = Outcome("SpecValid", "False", "InvalidSpec", "; ".join(exc.problems))
        return Result([invalid], generation)
    uid = body["metadata"]["uid"]
    outcomes: list[Outcome] = [Outcome("SpecValid", "True", "SpecValid")]

    async def function_exists() -> Outcome:
        name = mapping.spec.function_name
        found = await client.find(
            "kfaas.dev/v1alpha1", "functions", mapping.metadata.namespace, name
        )
        if found is None:
            return Outcome(
                "FunctionFound",
                "False",
                "FunctionNotFound",
                f"Function {name} does not exist in namespace {mapping.metadata.namespace}; "
                "records would all fail: create it or fix spec.functionName",
            )
        return Outcome("FunctionFound", "True", "FunctionFound", f"feeds Function {name}")

    async def resources() -> Outcome:
        await ensure(client, mapping_resources.make_poller_service_account(mapping, uid))
        await ensure(client, mapping_resources.make_poller_role(mapping, uid))
        await ensure(client, mapping_resources.make_poller_role_binding(mapping, uid))
        await ensure(client, mapping_resources.make_poller_deployment(mapping, uid, config))
        return Outcome("ResourcesReady", "True", "Applied", "poller objects are up to date")

    await _step(outcomes, "FunctionFound", function_exists)
    await _step(outcomes, "ResourcesReady", resources)
    return Result(outcomes, generation, {"source": mapping_resources.source_of(mapping)})


def mapping_state(outcomes: list[Outcome], enabled: bool) -> str:
    if any(o.status == "False" for o in outcomes):
        return "Failed"
    if not enabled:
        return "Disabled"
    if any(o.status == "Unknown" for o in outcomes):
        return "Creating"
    return "Enabled"
