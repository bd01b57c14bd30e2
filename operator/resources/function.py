"""The objects behind one Function: code ConfigMap, ServiceAccount, Deployment, Service,
NetworkPolicy and PodDisruptionBudget. Plain functions of (Function, uid, config) → dict.

The Deployment runs ``kfaas runtime`` with ADR 002's environment (``kfaas.runtimeenv``), so a pod
sees what a local instance sees. It never sets ``replicas``: the autoscaler owns that field. A
function with ``concurrency.provisioned`` also gets a second Deployment and Service of exactly that
many provisioned instances (``provisioned=True``, ADR 030), which Lambda tells apart by
``AWS_LAMBDA_INITIALIZATION_TYPE``; pods of one Deployment cannot differ in their environment.
"""

from __future__ import annotations

import base64
import math

from kfaas import code_capabilities, runtimes, runtimetoken
from kfaas.code import code_digest, config_map_files, files_digest
from kfaas.manifests import Function, ManifestError, parse_manifest
from kfaas.names import LATEST
from kfaas.podtemplate import PodTemplate
from kfaas.runtimeenv import runtime_environment

from .. import names
from ..config import OperatorConfig
from . import zip_code
from .common import (
    CONTAINER_SECURITY,
    POD_SECURITY,
    Body,
    metadata,
    owner_reference,
    with_hash,
)
from .egress import make_egress_rules

# Lambda gives a function one vCPU at 1769 MB and CPU in proportion to memory.
MB_PER_VCPU = 1769
# Lambda's own grace for a shutting-down runtime, on top of an invocation's timeout.
SHUTDOWN_GRACE_SECONDS = 5
# /healthz answers 503 until every worker has finished init; allow a slow init this long.
STARTUP_SECONDS = 120


def _owner(function: Function, uid: str) -> Body:
    """The Function, or for a published version (ADR 024) its FunctionVersion `<name>.<N>`:
    deleting the version (or the function, which owns its versions) removes its children."""
    name, version = function.metadata.name, function.version
    if version != LATEST:
        return owner_reference("FunctionVersion", f"{name}.{version}", uid)
    return owner_reference("Function", name, uid)


def _meta(function: Function, uid: str, name: str) -> Body:
    return metadata(
        name,
        function.metadata.namespace,
        names.function_labels(function.metadata.name, function.version),
        _owner(function, uid),
    )


def workload_name(function: Function) -> str:
    """The Deployment (and Service, …) of the function or of the published version it is."""
    return names.function_workload(function.metadata.name, function.version)


def _selector(function: Function) -> dict[str, str]:
    return names.function_selector(function.metadata.name, function.version)


def make_code_config_map(function: Function, uid: str) -> Body | None:
    """Inline code as an immutable ConfigMap named by its digest; None for other code sources.

    A new digest means a new ConfigMap and a rolling update: old pods keep the files they started
    with until they are replaced (the reconciler prunes old ConfigMaps afterwards).
    """
    inline = function.spec.code.inline
    if inline is None:
        return None
    digest = code_digest(function)
    meta = _meta(
        function, uid, names.function_code(function.metadata.name, digest, function.version)
    )
    meta["annotations"] = {names.CODE_SHA256_ANNOTATION: digest}
    return with_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "immutable": True,
            "data": dict(sorted(inline.items())),
        }
    )


def code_sha256(function: Function, config_map: Body | None = None) -> str:
    """The digest of the code the pods run, which the pod template carries.

    For ``code.configMap`` it is the digest of that ConfigMap's files (``config_map``, as read
    from the API), so editing the ConfigMap rolls the pods like an inline code change does.
    """
    if function.spec.code.config_map is None:
        return code_digest(function)
    if config_map is None:
        raise ValueError(f"the digest of ConfigMap {function.spec.code.config_map} needs its data")
    return files_digest(config_map_files(config_map))


def code_config_map_name(function: Function) -> str | None:
    """The ConfigMap the pods mount: the inline code's, or the one ``code.configMap`` names."""
    code = function.spec.code
    if code.inline is not None:
        return names.function_code(function.metadata.name, code_digest(function), function.version)
    return code.config_map


def make_service_account(function: Function, uid: str) -> Body:
    """The pods' identity; no API token is mounted (handlers need no Kubernetes access)."""
    return with_hash(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(function, uid, workload_name(function)),
            "automountServiceAccountToken": False,
        }
    )


def _resources(function: Function, config: OperatorConfig) -> Body:
    spec = function.spec
    workers = spec.concurrency.per_instance
    memory_mb = spec.memory_mb * workers + config.runtime_overhead_mb
    cpu_millis = max(50, math.ceil(1000 * spec.memory_mb * workers / MB_PER_VCPU))
    requests = {"memory": f"{memory_mb}Mi", "cpu": f"{cpu_millis}m"}
    limits = {"memory": f"{memory_mb}Mi"}
    # podTemplate.resources adds CPU and extended resources; memory is memoryMB's alone (the
    # models refuse it). A CPU limit without a request is also the request, as in Kubernetes.
    wanted = spec.pod_template.resources
    if wanted is not None:
        requests.update(wanted.requests)
        limits.update(wanted.limits)
        if "cpu" in wanted.limits and "cpu" not in wanted.requests:
            requests["cpu"] = wanted.limits["cpu"]
    return {"requests": requests, "limits": limits}


def _probe(path: str, *, period: int, failures: int) -> Body:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 1,
    }


def _environment(function: Function, config: OperatorConfig, provisioned: bool) -> list[Body]:
    env = runtime_environment(
        function, task_root=names.TASK_ROOT, region=config.region, provisioned=provisioned
    )
    env.update(
        {
            "KFAAS_RUNTIME_HOST": "0.0.0.0",
            "KFAAS_RUNTIME_PORT": str(names.RUNTIME_PORT),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.metadata.name}",
        }
    )
    env.pop(runtimetoken.TOKEN_ENV, None)  # only ever the operator's
    entries: list[Body] = [{"name": key, "value": env[key]} for key in sorted(env)]
    if config.runtime_token_key is not None:
        name = names.function_token(function.metadata.name, function.version)
        entries.append(
            {
                "name": runtimetoken.TOKEN_ENV,
                "valueFrom": {"secretKeyRef": {"name": name, "key": runtimetoken.SECRET_KEY}},
            }
        )
    # Lambda names the log stream after the execution environment: here, the pod.
    entries.append(
        {
            "name": "AWS_LAMBDA_LOG_STREAM_NAME",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        }
    )
    return entries


def make_deployment(
    function: Function,
    uid: str,
    config: OperatorConfig,
    *,
    code: Body | None = None,
    provisioned: bool = False,
) -> Body:
    """The runtime pods; ``replicas`` is left to the autoscaler.

    ``code`` is the ConfigMap a ``code.configMap`` function names, as read from the API.
    ``provisioned``: the Deployment of the provisioned instances instead, whose ``replicas`` is
    ``concurrency.provisioned`` itself, set here (nothing scales it).
    """
    spec = function.spec
    name = function.metadata.name
    version = function.version
    workload = names.provisioned_workload(name, version) if provisioned else workload_name(function)
    selector = names.provisioned_selector(name, version) if provisioned else _selector(function)
    labels = (
        names.provisioned_pod_labels(name, version)
        if provisioned
        else names.pod_labels(name, version)
    )
    digest = code_sha256(function, code)
    image = function_image(function, config)
    if image is None:  # the reconciler refuses such a function before building anything
        raise ValueError(runtimes.missing_image_message(spec.runtime))
    container: Body = {
        "name": "runtime",
        "image": image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["kfaas", "runtime"],
        "env": _environment(function, config, provisioned),
        "ports": [{"name": "http", "containerPort": names.RUNTIME_PORT, "protocol": "TCP"}],
        "resources": _resources(function, config),
        "startupProbe": _probe("/healthz", period=1, failures=STARTUP_SECONDS),
        "readinessProbe": _probe("/healthz", period=1, failures=1),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    env_from = [source.model_dump(by_alias=True, exclude_none=True) for source in spec.env_from]
    if env_from:
        container["envFrom"] = env_from
    volumes: list[Body] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": f"{config.tmp_size_mb}Mi"}},
    ]
    init_containers: list[Body] = []
    if function.spec.code.zip is not None:  # fetched from the code store (ADR 025)
        container["volumeMounts"].append(zip_code.code_mount())
        volumes.append(zip_code.code_volume())
        init_containers.append(zip_code.fetch_container(function, config, image))
    config_map = code_config_map_name(function)
    if config_map is not None:
        container["volumeMounts"].append(
            {"name": "code", "mountPath": names.TASK_ROOT, "readOnly": True}
        )
        # Executable, so `runtime: provided` can run its `bootstrap`.
        volumes.append({"name": "code", "configMap": {"name": config_map, "defaultMode": 0o555}})

    template = spec.pod_template
    pod_spec: Body = {
        "serviceAccountName": template.service_account_name or workload_name(function),
        "automountServiceAccountToken": mounts_token(template, config),
        # Service links would put other services' variables into the handler's environment.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": spec.timeout_seconds + SHUTDOWN_GRACE_SECONDS,
        "securityContext": POD_SECURITY,
        **({"initContainers": init_containers} if init_containers else {}),
        "containers": [container],
        "volumes": volumes,
    }
    pod_spec.update(_placement(template))
    own_annotations = {names.CODE_SHA256_ANNOTATION: digest}
    secret_fingerprint = token_fingerprint(function, config)
    if secret_fingerprint is not None:
        own_annotations[names.RUNTIME_TOKEN_ANNOTATION] = secret_fingerprint
    # kfaas's labels and annotations win over the Function's (which may not use kfaas.dev/ keys).
    extra = template.metadata
    template_meta: Body = {
        "labels": {
            **(extra.labels if extra else {}),
            **labels,
        },
        "annotations": {**(extra.annotations if extra else {}), **own_annotations},
    }
    deployment: Body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(function, uid, workload),
        "spec": {
            **({"replicas": spec.concurrency.provisioned} if provisioned else {}),
            "selector": {"matchLabels": selector},
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": 600,
            # Never below the serving capacity during a code update.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {"metadata": template_meta, "spec": pod_spec},
        },
    }
    return with_hash(deployment)


def function_image(function: Function, config: OperatorConfig) -> str | None:
    """The image of the function's pods: its code.image, else its runtime's (ADR 016)."""
    spec = function.spec
    return runtimes.function_image(spec.runtime, spec.code.image, config.images())


def runtime_refusal(function: Function, config: OperatorConfig) -> str | None:
    """Why the function's runtime cannot run here (no image for it), or None."""
    if function_image(function, config) is not None:
        return None
    return runtimes.missing_image_message(function.spec.runtime)


def _placement(template: PodTemplate) -> Body:
    """The scheduling fields of podTemplate, under their pod spec names; unset ones left out."""
    dumped = template.model_dump(
        by_alias=True,
        exclude_none=True,
        include={
            "node_selector",
            "tolerations",
            "affinity",
            "topology_spread_constraints",
            "priority_class_name",
            "runtime_class_name",
        },
    )
    return {key: value for key, value in dumped.items() if value not in ({}, [])}


def mounts_token(template: PodTemplate, config: OperatorConfig) -> bool:
    """A ServiceAccount token is mounted only when the Function asks and the platform allows."""
    return template.automount_service_account_token and config.allow_service_account_token


def pod_template_refusal(body: Body, config: OperatorConfig) -> str | None:
    """Why the operator refuses a stored Function's podTemplate, or None.

    The CRD refuses these on write; a Function stored before it did (or written with field
    validation off) still reaches the operator, which must not turn it into a pod.
    """
    raw = (body.get("spec") or {}).get("podTemplate")
    if raw is None:
        return None
    doc = {"apiVersion": "kfaas.dev/v1alpha1", "kind": "Function", "metadata": {"name": "x"}}
    doc["spec"] = {
        "runtime": "provided",
        "handler": "x",
        "code": {"image": "x"},
        "podTemplate": raw,
    }
    try:
        parsed = parse_manifest(doc, source="podTemplate")
    except ManifestError as exc:
        problems = [p.removeprefix("podTemplate: ") for p in exc.problems]
        return "; ".join(p for p in problems if p.startswith("spec.podTemplate")) or None
    assert isinstance(parsed, Function)
    if parsed.spec.pod_template.automount_service_account_token and not (
        config.allow_service_account_token
    ):
        return (
            "spec.podTemplate.automountServiceAccountToken: the platform does not allow "
            "ServiceAccount tokens in function pods (chart value "
            "functions.allowServiceAccountToken)"
        )
    return None


def runtime_token(function: Function, key: str) -> str:
    return runtimetoken.derive(key, function.metadata.namespace, function.metadata.name)


def _secret_values(function: Function, config: OperatorConfig) -> dict[str, str]:
    """The token Secret's keys: the runtime token (ADR 011) and a zip's read capability (025)."""
    values = {}
    if config.runtime_token_key is not None:
        values[runtimetoken.SECRET_KEY] = runtime_token(function, config.runtime_token_key)
    capability = zip_code.read_capability(function, config)
    if capability is not None:
        values[code_capabilities.SECRET_KEY] = capability
    return values


def token_fingerprint(function: Function, config: OperatorConfig) -> str | None:
    """What the pod template carries of the token Secret, so a new key rolls the pods.

    The runtime token's fingerprint as before; with a read capability too, one over both (a
    rotated code store key must roll the pods as a rotated runtime token key does).
    """
    values = _secret_values(function, config)
    if not values:
        return None
    if list(values) == [runtimetoken.SECRET_KEY]:
        return runtimetoken.fingerprint(values[runtimetoken.SECRET_KEY])
    return runtimetoken.fingerprint("\0".join(f"{key}={values[key]}" for key in sorted(values)))


def make_token_secret(function: Function, uid: str, config: OperatorConfig) -> Body | None:
    """The function's runtime token (ADR 011), which its pods read as KFAAS_RUNTIME_TOKEN, and a
    code.zip function's read capability, which only its init container reads (ADR 025)."""
    values = _secret_values(function, config)
    if not values:
        return None
    return with_hash(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(
                function, uid, names.function_token(function.metadata.name, function.version)
            ),
            "type": "Opaque",
            "data": {
                key: base64.b64encode(value.encode()).decode()
                for key, value in sorted(values.items())
            },
        }
    )


def make_replicas(namespace: str, function: str, replicas: int, version: str = LATEST) -> Body:
    """The autoscaler's whole say in the runtime Deployment: ``spec.replicas`` and nothing else."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": names.function_workload(function, version), "namespace": namespace},
        "spec": {"replicas": replicas},
    }


def initial_replicas(function: Function) -> int:
    """Instances a new (on-demand) Deployment starts with: the ones kept whatever the load,
    less the provisioned ones, which run in a Deployment of their own."""
    return on_demand_instances(function, function.spec.scaling.min_instances)


def on_demand_instances(function: Function, instances: int) -> int:
    """Of ``instances`` a function should have, those its on-demand Deployment runs: the
    provisioned ones are always there, in theirs (ADR 030)."""
    return max(0, instances - function.spec.concurrency.provisioned)


def make_service(function: Function, uid: str, *, provisioned: bool = False) -> Body:
    """Headless: the gateway routes to pods itself, reading the Service's EndpointSlices.

    The provisioned instances' Service carries the same labels, so its EndpointSlices add their
    addresses to the function's (or version's) endpoints.
    """
    name, version = function.metadata.name, function.version
    return with_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(
                function,
                uid,
                names.provisioned_workload(name, version)
                if provisioned
                else workload_name(function),
            ),
            "spec": {
                "clusterIP": "None",
                "selector": (
                    names.provisioned_selector(name, version)
                    if provisioned
                    else _selector(function)
                ),
                "ports": [
                    {"name": "http", "port": names.RUNTIME_PORT, "targetPort": "http"},
                ],
            },
        }
    )


def make_network_policy(function: Function, uid: str, config: OperatorConfig) -> Body:
    """Only the gateway (platform namespace) and this function's pollers reach runtime pods;
    the pods reach what ``make_egress_rules`` allows."""
    name = function.metadata.name
    gateway: Body = {
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": config.platform_namespace}
        },
        "podSelector": {"matchLabels": dict(config.gateway_pod_labels)},
    }
    pollers: Body = {
        "podSelector": {
            "matchLabels": {
                names.COMPONENT_LABEL: names.POLLER_COMPONENT,
                names.FUNCTION_LABEL: name,
            }
        }
    }
    return with_hash(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(function, uid, workload_name(function)),
            "spec": {
                "podSelector": names.all_pods_selector(name, function.version),
                "policyTypes": ["Ingress", "Egress"] if config.egress.enabled else ["Ingress"],
                "ingress": [
                    {
                        "from": [gateway, pollers],
                        "ports": [{"protocol": "TCP", "port": names.RUNTIME_PORT}],
                    }
                ],
                **({"egress": make_egress_rules(config)} if config.egress.enabled else {}),
            },
        }
    )


def make_pod_disruption_budget(function: Function, uid: str) -> Body | None:
    """One instance at a time may be evicted, when more than one is always kept."""
    scaling = function.spec.scaling
    floor = max(scaling.min_instances, function.spec.concurrency.provisioned)
    if floor <= 1:
        return None
    return with_hash(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(function, uid, workload_name(function)),
            "spec": {
                "maxUnavailable": 1,
                "selector": names.all_pods_selector(function.metadata.name, function.version),
            },
        }
    )


def function_url(function: Function, config: OperatorConfig) -> str:
    """Where users invoke it: the HTTP trigger when enabled, else the Invoke API path."""
    base = config.gateway_url.rstrip("/")
    meta = function.metadata
    # A published version's: `name:N`, as the gateway resolves it (ADR 024).
    name = meta.name if function.version == LATEST else f"{meta.name}:{function.version}"
    if function.spec.http.enabled:
        return f"{base}/fn/{meta.namespace}/{name}"
    return f"{base}/2015-03-31/functions/{meta.namespace}%2F{name}/invocations"
