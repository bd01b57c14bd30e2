"""Reconcile a Function or an EventSourceMapping: its named phases, in order (STYLE 3 and 20).

Each phase builds its desired objects with the pure builders (``operator/resources/``) and hands
them to the pass's ``Applier``, which compares the builder's hash with the live object's and
applies (server-side, as ``kfaas-operator``) only on a difference, so a restarted operator
re-reads everything and writes nothing that is already right. Each phase reports the condition
it owns (``operator/phases.py`` turns API failures into it); the ``Result`` keeps them with the
API server's own words, so the handler can post failures as Kubernetes Events. The status body
is computed by ``operator/status.py`` and written by ``operator/status_writes.py``.

A Function's phases: the stored podTemplate is allowed, the spec parses, its runtime has an
image, its code is stored (or found), its child objects are applied (with `concurrency.provisioned`,
a second Deployment and Service of the provisioned instances, ADR 030), and once the rollouts are
complete the code of earlier versions is pruned. A published version's (ADR 024) are the same
phases over the Function it froze (``FunctionVersion.function()``), its children named and
owned per version; its code never changes, so nothing is pruned. A mapping's: the spec parses,
its Function exists, its poller objects are applied.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfaas.api_objects import from_api_object
from kfaas.kube_clients import KubeClient, KubeError
from kfaas.manifests import EventSourceMapping, Function, ManifestError
from kfaas.names import LATEST
from kfaas.version_manifests import CodeMismatch, checked_code, parse_version

from . import names
from .applier import Applier
from .conditions import Outcome, rolled_out
from .config import OperatorConfig
from .phases import Body, Pass, Phase, run_phases
from .resources import function as fn_resources
from .resources import mapping as mapping_resources
from .status import Result

# -- Function ----------------------------------------------------------------------------------


@dataclass
class FunctionPass(Pass):
    parsed: Function | None = None
    # The ConfigMap a `code.configMap` function names: its files are hashed into the template.
    code_config_map: Body | None = None
    deployment: Body | None = None

    @property
    def function(self) -> Function:
        if self.parsed is None:
            raise RuntimeError("a phase ran before the Function's spec was parsed")
        return self.parsed

    @property
    def function_spec(self) -> Body:
        """The stored spec of the function to run, as the API server holds it (unparsed)."""
        return dict(self.body.get("spec") or {})

    @property
    def asks_provisioned(self) -> bool:
        """Whether the stored spec asks for provisioned instances (read before it is parsed)."""
        return bool((self.function_spec.get("concurrency") or {}).get("provisioned"))

    @property
    def runs(self) -> Workload:
        """Whose runtime Deployment this pass builds, read from the stored object."""
        meta = self.body.get("metadata") or {}
        return Workload(meta.get("namespace", ""), meta.get("name", ""), LATEST)


@dataclass(frozen=True)
class Workload:
    """A function's runtime Deployment, or one of its published versions'."""

    namespace: str
    function: str
    version: str

    @property
    def name(self) -> str:
        return names.function_workload(self.function, self.version)


@dataclass
class VersionPass(FunctionPass):
    """A FunctionVersion's pass: the Function phases over the Function it froze."""

    @property
    def function_spec(self) -> Body:
        return dict((self.body.get("spec") or {}).get("template") or {})

    @property
    def runs(self) -> Workload:
        meta, spec = self.body.get("metadata") or {}, self.body.get("spec") or {}
        namespace = meta.get("namespace", "")
        return Workload(namespace, str(spec.get("functionName", "")), str(spec.get("version", "")))


async def refuse_pod_template(applier: Applier, state: FunctionPass) -> Outcome | None:
    """Before anything is built: a stored podTemplate the platform refuses never becomes a pod."""
    refusal = fn_resources.pod_template_refusal({"spec": state.function_spec}, state.config)
    if refusal is None:
        return None
    refusal += await stop_refused(applier, state.runs, state.asks_provisioned)
    return Outcome("SpecValid", "False", "PodTemplateNotAllowed", refusal)


async def parse_function_spec(_: Applier, state: FunctionPass) -> Outcome:
    try:
        state.parsed = from_api_object(state.body, Function)
    except ManifestError as exc:
        return Outcome("SpecValid", "False", "InvalidSpec", "; ".join(exc.problems))
    state.extra["url"] = fn_resources.function_url(state.parsed, state.config)
    return Outcome("SpecValid", "True", "SpecValid")


async def parse_version_spec(_: Applier, state: FunctionPass) -> Outcome:
    """A FunctionVersion as the Function it runs: its template, keyed `namespace/name:N`."""
    try:
        version = parse_version(state.body)
        # The API server cannot hash (ADR 031): a digest that is not the code's is refused here.
        checked_code(version)
    except CodeMismatch as exc:
        return Outcome("SpecValid", "False", "CodeMismatch", "; ".join(exc.problems))
    except ManifestError as exc:
        return Outcome("SpecValid", "False", "InvalidSpec", "; ".join(exc.problems))
    state.parsed = version.function().as_version(version.spec.version)
    state.extra["url"] = fn_resources.function_url(state.parsed, state.config)
    return Outcome("SpecValid", "True", "SpecValid")


async def check_runtime(applier: Applier, state: FunctionPass) -> Outcome:
    """A runtime with no image is never run on another one's interpreter (ADR 016)."""
    function = state.function
    missing = fn_resources.runtime_refusal(function, state.config)
    if missing is not None:
        missing += await stop_refused(applier, state.runs, state.asks_provisioned)
        return Outcome("RuntimeAvailable", "False", "RuntimeNotAvailable", missing)
    image = fn_resources.function_image(function, state.config)
    message = f"{function.spec.runtime}: {image}"
    return Outcome("RuntimeAvailable", "True", "ImageConfigured", message)


# A platform installed without the code store (the chart's codeStore.enabled: false) cannot run
# an uploaded zip: refused rather than run with no code (ADR 025).
ZIP_REFUSAL = (
    "spec.code.zip needs the code store, which this platform does not run (chart value "
    "codeStore.enabled); use code.image, code.inline or code.configMap"
)


async def store_code(applier: Applier, state: FunctionPass) -> Outcome:
    function = state.function
    stored = function.spec.code.zip
    if stored is not None:
        if not state.config.code_store:
            return Outcome("CodeReady", "False", "CodeStoreNotAvailable", ZIP_REFUSAL)
        # The gateway stored it before writing the Function; each pod fetches and checks it.
        message = f"zip {stored.sha256[:12]} ({stored.size} bytes) in the code store"
        return Outcome("CodeReady", "True", "StoredZip", message)
    config_map = fn_resources.make_code_config_map(function, state.uid)
    if config_map is not None:
        await applier.ensure(config_map)
        return Outcome("CodeReady", "True", "InlineCode", "inline code stored in a ConfigMap")
    name = function.spec.code.config_map
    if name is not None:
        namespace = function.metadata.namespace
        state.code_config_map = await applier.find("v1", "configmaps", namespace, name)
        if state.code_config_map is None:
            return Outcome(
                "CodeReady",
                "False",
                "CodeConfigMapNotFound",
                f"ConfigMap {name} does not exist in namespace {namespace};"
                " create it (one key per file) or fix spec.code.configMap",
            )
        return Outcome("CodeReady", "True", "ConfigMapCode", f"code from ConfigMap {name}")
    return Outcome("CodeReady", "True", "ImageCode", f"code in image {function.spec.code.image}")


async def apply_function_resources(applier: Applier, state: FunctionPass) -> Outcome:
    if state.failed("CodeReady"):
        return Outcome("ResourcesReady", "Unknown", "WaitingForCode", "code not ready")
    function, uid, config = state.function, state.uid, state.config
    await applier.ensure(fn_resources.make_service_account(function, uid))
    await applier.ensure(fn_resources.make_service(function, uid))
    await applier.ensure(fn_resources.make_network_policy(function, uid, config))
    budget = fn_resources.make_pod_disruption_budget(function, uid)
    if budget is not None:
        await applier.ensure(budget)
    else:
        workload = fn_resources.workload_name(function)
        namespace = function.metadata.namespace
        await applier.ensure_absent("policy/v1", "PodDisruptionBudget", namespace, workload)
    state.deployment = await applier.ensure_workload(
        fn_resources.make_deployment(function, uid, config, code=state.code_config_map),
        scale=fn_resources.make_replicas(
            function.metadata.namespace,
            function.metadata.name,
            fn_resources.initial_replicas(function),
            function.version,
        ),
        secret=fn_resources.make_token_secret(function, uid, config),
    )
    await apply_provisioned(applier, state)
    return Outcome("ResourcesReady", "True", "Applied", "all child objects are up to date")


async def apply_provisioned(applier: Applier, state: FunctionPass) -> None:
    """The provisioned instances' Deployment and Service (ADR 030), or none when there are none.

    After the on-demand Deployment, whose write brings the token Secret both templates read.
    """
    function, uid = state.function, state.uid
    namespace = function.metadata.namespace
    name = names.provisioned_workload(function.metadata.name, function.version)
    if function.spec.concurrency.provisioned == 0:
        await _remove_provisioned(applier, namespace, name)
        return
    await applier.ensure(fn_resources.make_service(function, uid, provisioned=True))
    desired = fn_resources.make_deployment(
        function, uid, state.config, code=state.code_config_map, provisioned=True
    )
    await applier.ensure(desired)


async def prune_rolled_out_code(applier: Applier, state: FunctionPass) -> None:
    if state.deployment is not None and rolled_out(state.deployment):
        await prune_code(applier, state.function)


FUNCTION_PHASES: tuple[Phase[FunctionPass], ...] = (
    Phase("PodTemplateAllowed", "SpecValid", refuse_pod_template, gate=True),
    Phase("SpecParsed", "SpecValid", parse_function_spec, gate=True),
    Phase("RuntimeAvailable", "RuntimeAvailable", check_runtime, gate=True),
    Phase("CodeStored", "CodeReady", store_code),
    Phase("ResourcesApplied", "ResourcesReady", apply_function_resources),
    Phase("OldCodePruned", None, prune_rolled_out_code),
)


async def reconcile_function(client: KubeClient, body: Body, config: OperatorConfig) -> Result:
    return await run_phases(FUNCTION_PHASES, Applier(client), FunctionPass(body, config))


# The Function's phases, parsing a FunctionVersion; a version's code never changes: no pruning.
VERSION_PHASES: tuple[Phase[FunctionPass], ...] = (
    FUNCTION_PHASES[0],
    Phase("SpecParsed", "SpecValid", parse_version_spec, gate=True),
    *(phase for phase in FUNCTION_PHASES[2:] if phase.name != "OldCodePruned"),
)


async def reconcile_version(client: KubeClient, body: Body, config: OperatorConfig) -> Result:
    """A published version's instances (ADR 024): a Function's children, per version."""
    return await run_phases(VERSION_PHASES, Applier(client), VersionPass(body, config))


async def stop_refused(applier: Applier, runs: Workload, provisioned: bool = False) -> str:
    """Scale to zero the pods an earlier version built from a podTemplate (or for a runtime)
    now refused.

    Only ``replicas`` is written, as the autoscaler (which skips refused Functions): the refused
    template itself is never applied. Returns what to add to the condition's message.
    """
    namespace, workload = runs.namespace, runs.name
    try:
        if provisioned:  # the provisioned instances' Deployment is the reconciler's: it goes
            name = names.provisioned_workload(runs.function, runs.version)
            await _remove_provisioned(applier, namespace, name)
        live = await applier.find("apps/v1", "deployments", namespace, workload)
        if live is None or not live.get("spec", {}).get("replicas"):
            return ""
        await applier.apply(
            fn_resources.make_replicas(namespace, runs.function, 0, runs.version),
            field_manager=names.AUTOSCALER_FIELD_MANAGER,
        )
    except KubeError as exc:
        return f"; its running instances could not be stopped: {exc.message}"
    return f"; its running instances (Deployment {workload}) were stopped"


async def _remove_provisioned(applier: Applier, namespace: str, name: str) -> None:
    """Delete the provisioned instances' Deployment and Service, if there is one (a GET, not a
    DELETE, on each pass of the many functions that never had any)."""
    if await applier.find("apps/v1", "deployments", namespace, name) is None:
        return
    await applier.ensure_absent("apps/v1", "Deployment", namespace, name)
    await applier.ensure_absent("v1", "Service", namespace, name)


async def prune_code(applier: Applier, function: Function) -> None:
    """Delete inline-code ConfigMaps of earlier versions once no pod runs them.

    Earlier code of `$LATEST` only: a published version's ConfigMap (labelled with its version)
    is its own, and goes with it.
    """
    current = fn_resources.code_config_map_name(function)
    namespace = function.metadata.namespace
    if function.spec.concurrency.provisioned:
        # The provisioned pods may still mount an earlier ConfigMap (ADR 030).
        name = names.provisioned_workload(function.metadata.name)
        live = await applier.find("apps/v1", "deployments", namespace, name)
        if live is not None and not rolled_out(live):
            return
    selector = f"{names.FUNCTION_LABEL}={function.metadata.name},!{names.VERSION_LABEL}"
    found = await applier.list("v1", "configmaps", namespace, selector)
    for item in found.get("items", []):
        name = item["metadata"]["name"]
        is_old_code = names.CODE_SHA256_ANNOTATION in item["metadata"].get("annotations", {})
        if is_old_code and name != current:
            await applier.ensure_absent("v1", "ConfigMap", namespace, name)


# -- EventSourceMapping ------------------------------------------------------------------------


@dataclass
class MappingPass(Pass):
    parsed: EventSourceMapping | None = None

    @property
    def mapping(self) -> EventSourceMapping:
        if self.parsed is None:
            raise RuntimeError("a phase ran before the mapping's spec was parsed")
        return self.parsed


async def parse_mapping_spec(_: Applier, state: MappingPass) -> Outcome:
    try:
        state.parsed = from_api_object(state.body, EventSourceMapping)
    except ManifestError as exc:
        return Outcome("SpecValid", "False", "InvalidSpec", "; ".join(exc.problems))
    state.extra["source"] = mapping_resources.source_of(state.parsed)
    return Outcome("SpecValid", "True", "SpecValid")


async def find_function(applier: Applier, state: MappingPass) -> Outcome:
    name, namespace = state.mapping.spec.function_name, state.mapping.metadata.namespace
    if await applier.find("kfaas.dev/v1alpha1", "functions", namespace, name) is None:
        return Outcome(
            "FunctionFound",
            "False",
            "FunctionNotFound",
            f"Function {name} does not exist in namespace {namespace}; "
            "records would all fail: create it or fix spec.functionName",
        )
    return Outcome("FunctionFound", "True", "FunctionFound", f"feeds Function {name}")


async def apply_mapping_resources(applier: Applier, state: MappingPass) -> Outcome:
    mapping, uid = state.mapping, state.uid
    await applier.ensure(mapping_resources.make_poller_service_account(mapping, uid))
    await applier.ensure(mapping_resources.make_poller_role(mapping, uid))
    await applier.ensure(mapping_resources.make_poller_role_binding(mapping, uid))
    await applier.ensure(mapping_resources.make_poller_deployment(mapping, uid, state.config))
    return Outcome("ResourcesReady", "True", "Applied", "poller objects are up to date")


MAPPING_PHASES: tuple[Phase[MappingPass], ...] = (
    Phase("SpecParsed", "SpecValid", parse_mapping_spec, gate=True),
    Phase("FunctionFound", "FunctionFound", find_function),
    Phase("ResourcesApplied", "ResourcesReady", apply_mapping_resources),
)


async def reconcile_mapping(client: KubeClient, body: Body, config: OperatorConfig) -> Result:
    return await run_phases(MAPPING_PHASES, Applier(client), MappingPass(body, config))
