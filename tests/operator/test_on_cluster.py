"""The operator against the real control plane, running as the chart's ServiceAccount.

kwok makes pods Ready without running them, which is all the operator can see of a pod anyway:
Deployments, ReplicaSets, EndpointSlices and garbage collection are the real controllers'.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chart.platform import RELEASE, Platform, install, operator_process
from services.cluster import Cluster
from waiting import eventually

from kfaas import runtimetoken
from kfaas.api_objects import from_api_object
from kfaas.backends import Endpoint
from kfaas.code import code_digest
from kfaas.demand import demand_lease
from kfaas.gateway.kube_clients import KubernetesBackend
from kfaas.gateway.registry import FunctionRegistry
from kfaas.kube_clients import Credentials, KubeClient
from kfaas.manifests import Function
from kfaas.operator.config import OperatorConfig
from kfaas.operator.reconcile import reconcile_function
from kfaas.operator.status import Result
from kfaas.pollers.status import PollerReport
from kfaas.pollers.status import mapping_status as poller_status

# The chart's Secret holds a random one; the operator process here is given this one.
RUNTIME_TOKEN_KEY = "on-cluster-test-key"


@pytest.fixture(scope="module")
def platform(
    helm: Path, kwok_service: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    installed = install(helm, kwok_service, tmp_path_factory.mktemp("operator"))
    installed.operator_metrics_port = _free_port()
    with operator_process(
        installed,
        KFAAS_OPERATOR_METRICS_PORT=str(installed.operator_metrics_port),
        KFAAS_RUNTIME_TOKEN_KEY=RUNTIME_TOKEN_KEY,
        **_platform_kafka(tmp_path_factory.mktemp("platform-kafka")),
    ):
        yield installed
    kwok_service.kubectl("delete", "namespace", installed.namespace, "--wait=false")


def _platform_kafka(folder: Path) -> dict[str, str]:
    """The platform Kafka's settings as the chart gives them to the operator (ADR 032): files
    it reads at start, and the names of the Secrets behind them for poller pods."""
    (folder / "ca").mkdir()
    (folder / "ca" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n")
    (folder / "auth").mkdir()
    (folder / "auth" / "password").write_text("s3cret")
    return {
        "KFAAS_KAFKA_BOOTSTRAP_SERVERS": "kafka.platform:9093",
        "KFAAS_KAFKA_TLS": "true",
        "KFAAS_KAFKA_CA_FILE": str(folder / "ca" / "ca.crt"),
        "KFAAS_KAFKA_CA_SECRET": "platform-kafka-ca",
        "KFAAS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KFAAS_KAFKA_USERNAME": "kfaas",
        "KFAAS_KAFKA_PASSWORD_FILE": str(folder / "auth" / "password"),
        "KFAAS_KAFKA_AUTH_SECRET": "platform-kafka-user",
        "KFAAS_REDIS_URL_SECRET": "platform-redis",
    }


@pytest.fixture
def namespace(platform: Platform) -> Iterator[str]:
    name = f"fns-{uuid.uuid4().hex[:6]}"
    platform.kubectl("create", "namespace", name)
    yield name
    platform.kubectl("delete", "namespace", name, "--wait=false")


def function_doc(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}},
        }
        | spec,
    }


def get(platform: Platform, namespace: str, *what: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        platform.kubectl("-n", namespace, "get", *what, "-o", "json")
    )
    return result


def wait(
    platform: Platform, namespace: str, condition: str, target: str, timeout: int = 60
) -> None:
    platform.kubectl(
        "-n", namespace, "wait", f"--for={condition}", f"--timeout={timeout}s", target
    )  # fmt: skip


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for item in body.get("status", {}).get("conditions", []):
        if item["type"] == kind:
            return dict(item)
    raise AssertionError(f"no {kind} condition in {body.get('status')}")


def test_function_gets_its_children_and_turns_ready(platform: Platform, namespace: str) -> None:
    platform.apply(function_doc("thumb", namespace, scaling={"minInstances": 2}))
    wait(platform, namespace, "condition=Ready", "function/thumb")
    wait(platform, namespace, "jsonpath={.status.readyInstances}=2", "function/thumb")
    function = get(platform, namespace, "function/thumb")
    uid = function["metadata"]["uid"]
    assert function["status"]["observedGeneration"] == 1
    for step in ("CodeReady", "ResourcesReady", "InstancesReady"):
        assert condition(function, step)["status"] == "True"
    digest = code_digest(_model(function))
    assert function["status"]["codeSha256"] == digest
    for kind in ("deployment", "service", "serviceaccount", "networkpolicy", "poddisruptionbudget"):
        child = get(platform, namespace, kind, "thumb-fn")
        assert child["metadata"]["ownerReferences"][0]["uid"] == uid, kind
    code = get(platform, namespace, "configmap", f"thumb-code-{digest[:10]}")
    assert code["immutable"] is True
    deployment = get(platform, namespace, "deployment", "thumb-fn")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["replicas"] == 2
    # The printer columns show what users need.
    table = platform.kubectl("-n", namespace, "get", "function", "thumb")
    assert table.split("\n")[0].split() == ["NAME", "RUNTIME", "READY", "INSTANCES", "AGE"]
    assert table.split("\n")[1].split()[:4] == ["thumb", "python3.11", "True", "2"]


def _model(body: dict[str, Any]) -> Function:
    return from_api_object(body, Function)


def test_code_update_rolls_out(platform: Platform, namespace: str) -> None:
    platform.apply(function_doc("roll", namespace, scaling={"minInstances": 1}))
    wait(platform, namespace, "condition=Ready", "function/roll")
    first = get(platform, namespace, "function/roll")["status"]["codeSha256"]
    new_code = {"app.py": "def handler(event, context):\n    return 2\n"}
    platform.apply(
        function_doc("roll", namespace, code={"inline": new_code}, scaling={"minInstances": 1})
    )
    updated = get(platform, namespace, "function/roll")
    digest = code_digest(_model(updated))
    assert digest != first
    wait(platform, namespace, f"jsonpath={{.status.codeSha256}}={digest}", "function/roll")
    wait(platform, namespace, "condition=Ready", "function/roll")
    deployment = get(platform, namespace, "deployment", "roll-fn")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kfaas.dev/code-sha256"] == digest
    assert deployment["metadata"]["generation"] == 2
    assert deployment["spec"]["replicas"] == 1  # the update did not reset the autoscaler's count
    # Only the current code's ConfigMap is left once no pod runs the old one.
    wait(platform, namespace, "delete", f"configmap/roll-code-{first[:10]}")


INVALID = [
    ("memoryMB", {"memoryMB": 64}, "greater than or equal to 128"),
    ("timeoutSeconds", {"timeoutSeconds": 901}, "less than or equal to 900"),
    ("runtime", {"runtime": "python2.7"}, "Unsupported value"),
    ("code", {"code": {"inline": {"a.py": "x"}, "image": "x:1"}}, "exactly one of inline"),
    ("code", {"code": {}}, "exactly one of inline"),
    ("code", {"code": {"path": "./src"}}, "kfaas dev"),
    ("spec", {"concurrency": {"provisioned": 5}, "scaling": {"maxInstances": 2}}, "provisioned"),
    ("scaling", {"scaling": {"minInstances": 3, "maxInstances": 2}}, "must not be above max"),
    ("targetUtilization", {"scaling": {"targetUtilization": 0}}, "greater than 0"),
    ("environment", {"environment": {"1BAD": "x"}}, "every key must match"),
    ("maximumRetryAttempts", {"async": {"maximumRetryAttempts": 3}}, "less than or equal to 2"),
    ("onFailure", {"async": {"onFailure": {}}}, "exactly one of kafka, redis, function"),
    ("auth", {"http": {"enabled": True, "auth": "BASIC"}}, "Unsupported value"),
    ("envFrom", {"envFrom": [{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}]},
     "exactly one of secretRef, configMapRef"),
    ("handler", {"handler": ""}, "at least 1 chars"),
    ("mode", {"tracing": {"mode": "Sometimes"}}, "Unsupported value"),
    # podTemplate is an allowlist (issue 8): the hardening cannot be undone from a Function.
    ("spec.podTemplate.hostNetwork", {"podTemplate": {"hostNetwork": True}}, "unknown field"),
    ("spec.podTemplate.hostPID", {"podTemplate": {"hostPID": True}}, "unknown field"),
    ("spec.podTemplate.securityContext", {"podTemplate": {"securityContext": {"runAsUser": 0}}},
     "unknown field"),
    ("spec.podTemplate.containers",
     {"podTemplate": {"containers": [{"name": "x", "securityContext": {"privileged": True}}]}},
     "unknown field"),
    ("spec.podTemplate.volumes",
     {"podTemplate": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}, "unknown field"),
    ("spec.podTemplate.metadata",
     {"podTemplate": {"metadata": {"labels": {"kfaas.dev/function": "other"}}}}, "are reserved"),
    ("spec.podTemplate.metadata", {"podTemplate": {"metadata": {"annotations": {
        "container.apparmor.security.beta.kubernetes.io/runtime": "unconfined"}}}},
     "are reserved"),
    ("spec.podTemplate.resources", {"podTemplate": {"resources": {"limits": {"memory": "8Gi"}}}},
     "memory is set by memoryMB"),
    ("spec.podTemplate.resources.requests.cpu",
     {"podTemplate": {"resources": {"requests": {"cpu": "lots"}}}}, "should match"),
    ("spec.podTemplate.serviceAccountName", {"podTemplate": {"serviceAccountName": "Admin!"}},
     "should match"),
    ("spec.podTemplate.tolerations[0].operator",
     {"podTemplate": {"tolerations": [{"operator": "Sometimes"}]}}, "Unsupported value"),
    ("spec.podTemplate.hostIPC", {"podTemplate": {"hostIPC": True}}, "unknown field"),
    ("spec.podTemplate.initContainers",
     {"podTemplate": {"initContainers": [{"name": "x", "image": "busybox"}]}}, "unknown field"),
    ("spec.podTemplate.serviceAccount", {"podTemplate": {"serviceAccount": "admin"}},
     "unknown field"),
    ("spec.podTemplate.metadata",
     {"podTemplate": {"metadata": {"labels": {"poller.kfaas.dev/component": "poller"}}}},
     "are reserved"),
    ("spec.podTemplate.metadata", {"podTemplate": {"metadata": {"annotations": {
        "seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}}}, "are reserved"),
    ("spec.podTemplate.metadata", {"podTemplate": {"metadata": {"annotations": {
        "io.kubernetes.cri-o.userns-mode": "host"}}}}, "are reserved"),
    ("spec.podTemplate.resources", {"podTemplate": {"resources": {"requests": {"memory": "1"}}}},
     "memory is set by memoryMB"),
    ("spec.podTemplate.resources.claims",
     {"podTemplate": {"resources": {"claims": [{"name": "gpu"}]}}}, "unknown field"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "spec", "rule"), INVALID, ids=[f"{c[0]}-{i}" for i, c in enumerate(INVALID)]
)
def test_invalid_functions_are_refused_with_field_and_rule(
    platform: Platform, namespace: str, field: str, spec: dict[str, Any], rule: str
) -> None:
    done = platform.apply(function_doc("bad", namespace, **spec), check=False)
    assert done.returncode != 0
    assert field in done.stderr and rule in done.stderr, done.stderr


def test_allowed_pod_template_reaches_a_hardened_deployment_with_its_token(
    platform: Platform, namespace: str
) -> None:
    pod_template = {
        "metadata": {"labels": {"team": "media"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "fn", "operator": "Exists", "effect": "NoSchedule"}],
        "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}},
    }
    platform.apply(function_doc("placed", namespace, podTemplate=pod_template))
    wait(platform, namespace, "condition=Ready", "function/placed")
    pod = get(platform, namespace, "deployment", "placed-fn")["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False
    (container,) = pod["spec"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "192Mi"}
    assert pod["metadata"]["labels"]["team"] == "media"
    # The runtime token (ADR 011): a Secret the pods read, derived from the platform key.
    (token_env,) = [e for e in container["env"] if e["name"] == runtimetoken.TOKEN_ENV]
    assert token_env["valueFrom"]["secretKeyRef"]["name"] == "placed-fn-token"
    secret = get(platform, namespace, "secret", "placed-fn-token")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert token == runtimetoken.derive(RUNTIME_TOKEN_KEY, namespace, "placed")
    # The default egress policy is one the API server accepts.
    policy = get(platform, namespace, "networkpolicy", "placed-fn")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["egress"][2]["to"][0]["ipBlock"]["except"] == ["169.254.0.0/16"]


def test_a_token_the_platform_does_not_allow_is_refused_and_nothing_is_written(
    platform: Platform, namespace: str
) -> None:
    template = {"serviceAccountName": "default", "automountServiceAccountToken": True}
    platform.apply(function_doc("asks", namespace, podTemplate=template))
    wait(platform, namespace, "condition=Ready=False", "function/asks")
    ready = condition(get(platform, namespace, "function/asks"), "Ready")
    assert ready["reason"] == "PodTemplateNotAllowed"
    assert "spec.podTemplate.automountServiceAccountToken" in ready["message"]
    for kind in ("deployment", "secret"):
        done = platform.cluster.kubectl("-n", namespace, "get", kind, "asks-fn", check=False)
        assert done.returncode != 0 and "NotFound" in done.stderr, kind


def test_a_stored_forbidden_pod_template_is_refused_by_the_operator(
    platform: Platform, namespace: str
) -> None:
    """A Function stored before the schema refused hostPID: the operator refuses it too."""
    platform.apply(function_doc("old", namespace))
    stored = get(platform, namespace, "function/old")
    stored["spec"]["podTemplate"] = {"hostPID": True, "volumes": [{"name": "root"}]}
    kubeconfig = platform.token_kubeconfig("kfaas-operator")
    result = asyncio.run(_reconcile(kubeconfig, stored))
    (outcome,) = result.outcomes
    assert outcome.reason == "PodTemplateNotAllowed"
    assert "spec.podTemplate.hostPID: is not allowed" in outcome.message
    assert result.written == []


async def _reconcile(kubeconfig: Path, body: dict[str, Any]) -> Result:
    credentials = Credentials.load(str(kubeconfig))
    async with KubeClient(credentials, field_manager="kfaas-operator") as client:
        return await reconcile_function(client, body, OperatorConfig(runtime_token_key="k"))


def test_invalid_mappings_are_refused(platform: Platform, namespace: str) -> None:
    base = {"functionName": "f", "kafka": {"bootstrapServers": "k:9092", "topic": "t"}}
    for spec, rule in [
        ({**base, "redis": {"url": "redis://r", "stream": "s"}}, "exactly one of kafka, redis"),
        ({**base, "batchSize": 0}, "greater than or equal to 1"),
        ({**base, "kafka": {"topic": "t"}}, "bootstrapServers: Required value"),
        ({**base, "functionResponseTypes": ["Everything"]}, "Unsupported value"),
    ]:
        doc = {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "EventSourceMapping",
            "metadata": {"name": "bad", "namespace": namespace},
            "spec": spec,
        }
        done = platform.apply(doc, check=False)
        assert done.returncode != 0 and rule in done.stderr, done.stderr


def test_deleting_a_function_removes_its_children(platform: Platform, namespace: str) -> None:
    platform.apply(function_doc("gone", namespace, scaling={"minInstances": 1}))
    wait(platform, namespace, "condition=Ready", "function/gone")
    platform.kubectl("-n", namespace, "delete", "function", "gone")
    for target in ("deployment/gone-fn", "service/gone-fn", "serviceaccount/gone-fn",
                   "networkpolicy/gone-fn"):  # fmt: skip
        wait(platform, namespace, "delete", target)
    assert "gone-code" not in platform.kubectl("-n", namespace, "get", "configmaps")


def test_missing_code_config_map_is_reported(platform: Platform, namespace: str) -> None:
    platform.apply(function_doc("nocode", namespace, code={"configMap": "nocode-src"}))
    wait(platform, namespace, "condition=Ready=False", "function/nocode")
    ready = condition(get(platform, namespace, "function/nocode"), "Ready")
    assert ready["reason"] == "CodeConfigMapNotFound"
    assert "ConfigMap nocode-src does not exist" in ready["message"]
    events = platform.kubectl(
        "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=nocode",
        "-o", "json",
    )  # fmt: skip
    reasons = {event["reason"] for event in json.loads(events)["items"]}
    assert "CodeConfigMapNotFound" in reasons
    # Creating it is enough: the handler retries.
    platform.kubectl(
        "-n", namespace, "create", "configmap", "nocode-src", "--from-literal=app.py=x"
    )
    wait(platform, namespace, "condition=Ready", "function/nocode", timeout=90)


def test_editing_the_code_config_map_rolls_the_pods(platform: Platform, namespace: str) -> None:
    """code.configMap: the ConfigMap's files, not its name, make the digest; an edit rolls out."""
    source = {"app.py": "def handler(event, context):\n    return 1\n"}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "edited-src", "namespace": namespace},
        "data": source,
    }
    platform.apply(config_map)
    platform.apply(
        function_doc("edited", namespace, code={"configMap": "edited-src"},
                     scaling={"minInstances": 1})
    )  # fmt: skip
    wait(platform, namespace, "condition=Ready", "function/edited")
    first = code_digest(_model(function_doc("x", namespace, code={"inline": source})))
    wait(platform, namespace, f"jsonpath={{.status.codeSha256}}={first}", "function/edited")
    before = get(platform, namespace, "deployment", "edited-fn")
    assert before["spec"]["template"]["metadata"]["annotations"]["kfaas.dev/code-sha256"] == first

    edited = {"app.py": "def handler(event, context):\n    return 2\n"}
    platform.apply({**config_map, "data": edited})
    second = code_digest(_model(function_doc("x", namespace, code={"inline": edited})))
    assert second != first
    # No change to the Function: the ConfigMap watch alone brings the new template and status.
    wait(platform, namespace, f"jsonpath={{.status.codeSha256}}={second}", "function/edited")
    wait(platform, namespace, "condition=Ready", "function/edited")
    after = get(platform, namespace, "deployment", "edited-fn")
    assert after["spec"]["template"]["metadata"]["annotations"]["kfaas.dev/code-sha256"] == second
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert after["spec"]["replicas"] == 1
    function = get(platform, namespace, "function/edited")
    assert function["metadata"]["generation"] == 1

    # Deleting the ConfigMap is reported at once, with what to do about it.
    platform.kubectl("-n", namespace, "delete", "configmap", "edited-src")
    wait(platform, namespace, "condition=Ready=False", "function/edited")
    ready = condition(get(platform, namespace, "function/edited"), "Ready")
    assert ready["reason"] == "CodeConfigMapNotFound"
    assert f"ConfigMap edited-src does not exist in namespace {namespace}" in ready["message"]


def test_mapping_gets_its_poller_deployment(platform: Platform, namespace: str) -> None:
    platform.apply(function_doc("consumer", namespace))
    mapping: dict[str, Any] = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "uploads", "namespace": namespace},
        "spec": {
            "functionName": "consumer",
            "kafka": {"bootstrapServers": "k1:9092", "topic": "uploads",
                      "auth": {"mechanism": "SASL_SCRAM_512_AUTH",
                               "secretRef": {"name": "kafka-auth"}}},
            "parallelism": 2,
        },
    }  # fmt: skip
    platform.apply(mapping)
    wait(platform, namespace, "condition=Ready", "eventsourcemapping/uploads")
    body = get(platform, namespace, "eventsourcemapping/uploads")
    assert body["status"]["source"] == "kafka:uploads"
    assert body["status"]["state"] == "Enabled"
    deployment = get(platform, namespace, "deployment", "uploads-poller")
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert json.loads(env["KFAAS_MAPPING"])["spec"]["kafka"]["topic"] == "uploads"
    assert env["KFAAS_GATEWAY_URL"].startswith("http://kfaas-gateway.")
    # The Secret is mounted (optional: it does not exist here) and read at each connect.
    assert "envFrom" not in container
    assert {"name": "secret-0", "mountPath": "/var/run/kfaas/secrets/kafka-auth",
            "readOnly": True} in container["volumeMounts"]  # fmt: skip
    cannot_read = platform.kubectl("-n", namespace, "auth", "can-i", "get", "secrets/kafka-auth",
                                   f"--as=system:serviceaccount:{namespace}:uploads-poller",
                                   check=False)  # fmt: skip
    assert cannot_read.strip() == "no"
    # The pollers may write this mapping's status, and nothing else.
    account = f"system:serviceaccount:{namespace}:uploads-poller"
    can = platform.kubectl("-n", namespace, "auth", "can-i", "patch",
                           "eventsourcemappings.kfaas.dev/uploads", "--subresource=status",
                           f"--as={account}", check=False)  # fmt: skip
    assert can.strip() == "yes"
    cannot = platform.kubectl("-n", namespace, "auth", "can-i", "patch",
                              "eventsourcemappings.kfaas.dev/other", "--subresource=status",
                              f"--as={account}", check=False)  # fmt: skip
    assert cannot.strip() == "no"
    table = platform.kubectl("-n", namespace, "get", "eventsourcemapping", "uploads")
    assert table.split("\n")[0].split() == ["NAME", "FUNCTION", "SOURCE", "STATE", "LAG", "AGE"]
    # Disabling stops the pollers; deleting removes them.
    mapping["spec"]["enabled"] = False
    platform.apply(mapping)
    wait(platform, namespace, "jsonpath={.status.state}=Disabled", "eventsourcemapping/uploads")
    assert get(platform, namespace, "deployment", "uploads-poller")["spec"]["replicas"] == 0
    platform.kubectl("-n", namespace, "delete", "eventsourcemapping", "uploads")
    wait(platform, namespace, "delete", "deployment/uploads-poller")


def test_mapping_to_a_missing_function_is_reported(platform: Platform, namespace: str) -> None:
    mapping = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "orphan", "namespace": namespace},
        "spec": {"functionName": "nobody", "redis": {"url": "redis://r:6379/0", "stream": "s"}},
    }
    platform.apply(mapping)
    wait(platform, namespace, "condition=Ready=False", "eventsourcemapping/orphan")
    body = get(platform, namespace, "eventsourcemapping/orphan")
    assert condition(body, "Ready")["reason"] == "FunctionNotFound"
    assert body["status"]["state"] == "Failed"


def _poller_reports(platform: Platform, namespace: str, name: str, problem: str | None) -> None:
    """Write the mapping's status as its poller does: its own builder, its own ServiceAccount."""
    live = get(platform, namespace, f"eventsourcemapping/{name}")
    report = PollerReport(
        lag=0, last_batch_at=None, last_outcome=None,
        source_problem=problem, source_reason="AuthenticationFailed",
    )  # fmt: skip
    status = poller_status(report, live["status"], now=datetime.datetime.now(datetime.UTC))
    patch = {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"]}, "status": status}
    platform.kubectl("-n", namespace, "patch", f"eventsourcemapping/{name}", "--type=merge",
                     "--subresource=status", "-p", json.dumps(patch),
                     f"--as=system:serviceaccount:{namespace}:{name}-poller")  # fmt: skip


def test_a_poller_that_cannot_read_its_source_makes_the_mapping_not_ready(
    platform: Platform, namespace: str
) -> None:
    """The pollers' Polling=False is folded into Ready and State; Polling=True folds back."""
    platform.apply(function_doc("consumer", namespace))
    platform.apply({
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "orders", "namespace": namespace},
        "spec": {"functionName": "consumer",
                 "redis": {"url": "redis://r:6379/0", "stream": "orders"}},
    })  # fmt: skip
    wait(platform, namespace, "condition=Ready", "eventsourcemapping/orders")
    refused = "Secret 'kafka-user' not found"
    _poller_reports(platform, namespace, "orders", refused)
    wait(platform, namespace, "condition=Ready=False", "eventsourcemapping/orders")
    body = get(platform, namespace, "eventsourcemapping/orders")
    ready = condition(body, "Ready")
    assert (ready["reason"], ready["message"]) == ("AuthenticationFailed", refused)
    assert body["status"]["state"] == "Failed"
    polling = condition(body, "Polling")
    assert "observedGeneration" not in polling  # the operator leaves the pollers' words alone
    _poller_reports(platform, namespace, "orders", None)
    wait(platform, namespace, "condition=Ready", "eventsourcemapping/orders")
    body = get(platform, namespace, "eventsourcemapping/orders")
    assert body["status"]["state"] == "Enabled"
    assert condition(body, "Polling")["status"] == "True"


def test_pollers_writing_to_the_platforms_brokers_get_its_settings(
    platform: Platform, namespace: str
) -> None:
    """A Redis mapping dead-lettering to the platform's Kafka, a Kafka one to its Redis: the
    operator (which may not read Secrets) mounts the platform's by name; the API server takes it."""
    platform.apply(function_doc("consumer", namespace))
    platform.apply({
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "to-kafka", "namespace": namespace},
        "spec": {"functionName": "consumer",
                 "redis": {"url": "redis://r:6379/0", "stream": "orders"},
                 "destinationConfig": {"onFailure": {"kafka": {"topic": "orders-dlq"}}}},
    })  # fmt: skip
    platform.apply({
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "to-redis", "namespace": namespace},
        "spec": {"functionName": "consumer",
                 "kafka": {"bootstrapServers": "k1:9092", "topic": "orders"},
                 "destinationConfig": {"onFailure": {"redis": {"stream": "orders-dlq"}}}},
    })  # fmt: skip
    wait(platform, namespace, "condition=Ready", "eventsourcemapping/to-kafka")
    wait(platform, namespace, "condition=Ready", "eventsourcemapping/to-redis")
    pod = get(platform, namespace, "deployment", "to-kafka-poller")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}
    assert env["KFAAS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka.platform:9093"
    assert env["KFAAS_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["KFAAS_KAFKA_USERNAME"] == {
        "secretKeyRef": {"name": "platform-kafka-user", "key": "username"}
    }
    assert "KFAAS_KAFKA_PASSWORD" not in env
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {"platform-kafka-ca", "platform-kafka-user"}
    folders = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(env["KFAAS_KAFKA_PASSWORD_FILE"]).parent) in folders
    redis = get(platform, namespace, "deployment", "to-redis-poller")["spec"]["template"]["spec"]
    redis_env = {item["name"]: item for item in redis["containers"][0]["env"]}
    assert redis_env["KFAAS_REDIS_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "platform-redis", "key": "url"}
    }
    assert not [name for name in redis_env if name.startswith("KFAAS_KAFKA")]


def _report(platform: Platform, replica: str, figures: dict[str, int]) -> None:
    lease = demand_lease(platform.namespace, replica, figures, datetime.datetime.now(datetime.UTC))
    platform.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(lease))


def test_autoscaler_follows_reported_demand_and_scales_to_zero(
    platform: Platform, namespace: str
) -> None:
    platform.apply(
        function_doc(
            "busy", namespace,
            concurrency={"perInstance": 2},
            scaling={"scaleToZeroAfterSeconds": 2, "targetUtilization": 1.0, "maxInstances": 5},
        )
    )  # fmt: skip
    wait(platform, namespace, "condition=Ready", "function/busy")
    assert get(platform, namespace, "deployment", "busy-fn")["spec"]["replicas"] == 0
    key = f"{namespace}/busy"
    # Two gateway replicas each hold 3 invocations: 6 / (2 per instance) = 3 instances.
    _report(platform, "gw-a", {key: 3})
    _report(platform, "gw-b", {key: 3})
    wait(platform, namespace, "jsonpath={.spec.replicas}=3", "deployment/busy-fn")
    wait(platform, namespace, "jsonpath={.status.readyInstances}=3", "function/busy")
    metrics = _metrics(platform)
    labels = f'{{function="busy",namespace="{namespace}",version="$LATEST"}}'
    assert f"kfaas_autoscaler_concurrency{labels} 6.0" in metrics
    assert f"kfaas_autoscaler_desired_instances{labels} 3.0" in metrics
    assert "kfaas_operator_active 1.0" in metrics
    # More than the ceiling asks for maxInstances, no more.
    _report(platform, "gw-a", {key: 40})
    wait(platform, namespace, "jsonpath={.spec.replicas}=5", "deployment/busy-fn")
    # Demand gone: down after the stable window, then to zero once idle long enough.
    _report(platform, "gw-a", {})
    _report(platform, "gw-b", {})
    wait(platform, namespace, "jsonpath={.spec.replicas}=0", "deployment/busy-fn", timeout=60)
    reason = '{.status.conditions[?(@.type=="InstancesReady")].reason}'
    wait(platform, namespace, f"jsonpath={reason}=ScaledToZero", "function/busy")
    wait(platform, namespace, "condition=Ready", "function/busy")


def test_provisioned_instances_run_beside_the_on_demand_ones(
    platform: Platform, namespace: str
) -> None:
    """ADR 030: a Deployment of exactly `provisioned` instances told so by their environment,
    the on-demand Deployment scaled for the rest, both counted and both the function's endpoints."""
    scaling = {"scaleToZeroAfterSeconds": 2, "targetUtilization": 1.0, "maxInstances": 5}
    platform.apply(function_doc("warm", namespace, concurrency={"provisioned": 2}, scaling=scaling))
    wait(platform, namespace, "condition=Ready", "function/warm")
    wait(platform, namespace, "jsonpath={.status.readyInstances}=2", "function/warm")
    provisioned = get(platform, namespace, "deployment", "warm-fn-pc")
    on_demand = get(platform, namespace, "deployment", "warm-fn")
    assert (provisioned["spec"]["replicas"], on_demand["spec"]["replicas"]) == (2, 0)

    def initialization(deployment: dict[str, Any]) -> str:
        (runtime,) = deployment["spec"]["template"]["spec"]["containers"]
        return str(next(e["value"] for e in runtime["env"] if e["name"] == INITIALIZATION_TYPE))

    assert initialization(provisioned) == "provisioned-concurrency"
    assert initialization(on_demand) == "on-demand"
    # Four invocations at once: four instances in all, the two beyond the provisioned on demand.
    key = f"{namespace}/warm"
    _report(platform, "gw-a", {key: 4})
    wait(platform, namespace, "jsonpath={.spec.replicas}=2", "deployment/warm-fn")
    wait(platform, namespace, "jsonpath={.status.readyInstances}=4", "function/warm")
    ready = eventually(
        lambda: _ready_addresses(platform, namespace, "warm") == 4 or None,
        within=30,
        what="four ready addresses in the function's EndpointSlices",
    )
    assert ready
    # Demand gone: the on-demand ones go, the provisioned ones stay.
    _report(platform, "gw-a", {})
    wait(platform, namespace, "jsonpath={.spec.replicas}=0", "deployment/warm-fn", timeout=60)
    wait(platform, namespace, "jsonpath={.status.readyInstances}=2", "function/warm")
    assert get(platform, namespace, "deployment", "warm-fn-pc")["spec"]["replicas"] == 2
    # None provisioned any more: their Deployment and Service go.
    platform.apply(function_doc("warm", namespace, scaling=scaling))
    wait(platform, namespace, "delete", "deployment/warm-fn-pc")
    wait(platform, namespace, "delete", "service/warm-fn-pc")


INITIALIZATION_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"


def _ready_addresses(platform: Platform, namespace: str, function: str) -> int:
    """Ready addresses in the EndpointSlices the gateway reads for the function."""
    slices = get(platform, namespace, "endpointslices", "-l", f"kfaas.dev/function={function}")
    return sum(
        len(endpoint.get("addresses") or [])
        for item in slices["items"]
        for endpoint in item.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready")
    )


def test_gateway_backend_discovers_functions_and_endpoints_and_scales_from_zero(
    platform: Platform, namespace: str
) -> None:
    platform.apply(function_doc("cold", namespace, concurrency={"perInstance": 3}))
    wait(platform, namespace, "condition=Ready", "function/cold")
    kubeconfig = platform.token_kubeconfig("kfaas-gateway")
    asyncio.run(_scale_from_zero(platform, kubeconfig, f"{namespace}/cold"))


async def _scale_from_zero(platform: Platform, kubeconfig: Path, key: str) -> None:
    seen: asyncio.Queue[list[Endpoint]] = asyncio.Queue()

    def listener(function_key: str, endpoints: list[Endpoint]) -> None:
        if function_key == key:
            seen.put_nowait(endpoints)

    async with KubeClient(
        Credentials.load(str(kubeconfig)), field_manager="kfaas-gateway"
    ) as client:
        registry = FunctionRegistry()
        backend = KubernetesBackend(
            client, registry, platform_namespace=platform.namespace, replica="test-gateway"
        )
        backend.subscribe(listener)
        await backend.start()
        try:
            assert registry.get(key).spec.concurrency.per_instance == 3
            # A held invocation: demand 1 for a function at zero reaches the operator at once.
            backend.demand(key, 1)
            async with asyncio.timeout(60):
                while True:
                    endpoints = await seen.get()
                    if endpoints:
                        break
            (endpoint,) = endpoints
            assert endpoint.capacity == 3
            assert endpoint.url.startswith("http://10.244.") and endpoint.url.endswith(":8080")
            lease = json.loads(platform.kubectl(
                "-n", platform.namespace, "get", "lease", "kfaas-demand-test-gateway", "-o", "json"
            ))  # fmt: skip
            assert json.loads(lease["metadata"]["annotations"]["kfaas.dev/concurrency"]) == {key: 1}
        finally:
            await backend.stop()
    # The replica's Lease goes with it, so its demand stops counting at once.
    done = platform.cluster.kubectl(
        "-n", platform.namespace, "get", "lease", "kfaas-demand-test-gateway", check=False
    )
    assert done.returncode != 0 and "NotFound" in done.stderr


def test_a_second_operator_waits_while_the_first_is_active(
    platform: Platform, namespace: str
) -> None:
    """Kopf peering: the lower priority replica pauses, and its autoscaler follows."""
    with operator_process(
        platform, "autoscaler on standby", KFAAS_OPERATOR_PRIORITY="1", POD_NAME="standby"
    ) as log:
        wait(platform, "default", "jsonpath={.status.standby.priority}=1",
             f"clusterkopfpeering/{platform.peering}")  # fmt: skip
        platform.apply(function_doc("peered", namespace, scaling={"minInstances": 1}))
        wait(platform, namespace, "condition=Ready", "function/peered")
        _report(platform, "gw-peered", {f"{namespace}/peered": 2})
        wait(platform, namespace, "jsonpath={.spec.replicas}=3", "deployment/peered-fn")
        _report(platform, "gw-peered", {})
        text = log.read_text()
    assert "autoscaler active" not in text and "scaling" not in text, text


def test_a_new_active_operator_resumes_without_rewriting_anything(
    platform: Platform, namespace: str
) -> None:
    platform.apply(function_doc("steady", namespace, scaling={"minInstances": 1}))
    wait(platform, namespace, "condition=Ready", "function/steady")
    children = ["deployment/steady-fn", "service/steady-fn", "serviceaccount/steady-fn",
                "networkpolicy/steady-fn", "function/steady"]  # fmt: skip

    def versions() -> dict[str, str]:
        return {c: get(platform, namespace, c)["metadata"]["resourceVersion"] for c in children}

    before = versions()
    # A replica outranking the running one takes over and resumes every Function.
    with operator_process(
        platform,
        KFAAS_OPERATOR_PRIORITY=str(2**31),
        POD_NAME="successor",
        KFAAS_RUNTIME_TOKEN_KEY=RUNTIME_TOKEN_KEY,  # every replica reads the chart's Secret
    ) as log:
        line = f"reconciled Function {namespace}/steady: wrote "
        eventually(lambda: line in log.read_text(), within=60, what=f"{line!r} (log: {log})")
        text = log.read_text()
    assert f"{line}nothing (all up to date)" in text, text
    assert versions() == before


def _metrics(platform: Platform) -> str:
    url = f"http://127.0.0.1:{platform.operator_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_gateway_process_serves_cluster_functions_with_local_throttling(
    platform: Platform, namespace: str
) -> None:
    """`kfaas gateway --backend kubernetes` as the chart's gateway ServiceAccount.

    Pod addresses on kwok are fake, so no invocation is routed to a pod here: the Invoke API's
    answers that need no instance (list, get, DryRun, reserved-concurrency throttling) are.
    """
    platform.apply(function_doc("api", namespace))
    platform.apply(function_doc("off", namespace, concurrency={"reserved": 0}))
    wait(platform, namespace, "condition=Ready", "function/api")
    port = _free_port()
    kubeconfig = platform.token_kubeconfig("kfaas-gateway")
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KFAAS_PLATFORM_NAMESPACE": platform.namespace,
        "KFAAS_DEFAULT_NAMESPACE": namespace,
        "KFAAS_ASYNC_QUEUE": "memory",
    }
    log_path = platform.workdir / f"gateway-{port}.log"
    with log_path.open("w") as log:
        gateway = subprocess.Popen(
            [str(Path(sys.executable).parent / "kfaas"), "gateway", "--backend", "kubernetes",
             "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert gateway.poll() is None, log_path.read_text()
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as answer:
                return bool(answer.status == 200)

        eventually(
            ready, within=30, what=f"the gateway ready (log: {log_path})", ignoring=(OSError,)
        )
        with urllib.request.urlopen(f"{base}/2015-03-31/functions/", timeout=5) as answer:
            names = {f["FunctionName"] for f in json.load(answer)["Functions"]}
        assert {"api", "off"} <= names
        with urllib.request.urlopen(f"{base}/2015-03-31/functions/api", timeout=5) as answer:
            assert json.load(answer)["Configuration"]["Runtime"] == "python3.11"
        dry = urllib.request.Request(
            f"{base}/2015-03-31/functions/api/invocations", data=b"{}", method="POST",
            headers={"X-Amz-Invocation-Type": "DryRun"},
        )  # fmt: skip
        with urllib.request.urlopen(dry, timeout=5) as answer:
            assert answer.status == 204
        throttled = urllib.request.Request(
            f"{base}/2015-03-31/functions/off/invocations", data=b"{}", method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(throttled, timeout=5)
        with refused.value as error:  # it holds the connection until closed
            assert error.code == 429
            assert error.headers["x-amzn-ErrorType"].startswith("TooManyRequestsException")
    finally:
        gateway.terminate()
        gateway.wait(timeout=20)


def _operator_env(platform: Platform, **environment: str) -> dict[str, str]:
    """What chart.platform.operator_process gives `kfaas operator`, for a run of our own.

    The same configuration as the module's operator, so the two build the same objects.
    """
    return {
        **os.environ,
        "KUBECONFIG": str(platform.token_kubeconfig(f"{RELEASE}-operator")),
        "KFAAS_PLATFORM_NAMESPACE": platform.namespace,
        "KFAAS_IMAGE": "kfaas:test",
        "KFAAS_SCALING_STABLE_WINDOW_SECONDS": "3",
        "KFAAS_GATEWAY_POD_LABELS": f"app.kubernetes.io/instance={RELEASE},"
        "app.kubernetes.io/component=gateway",
        "KFAAS_RUNTIME_TOKEN_KEY": RUNTIME_TOKEN_KEY,
        **environment,
    }


KFAAS = str(Path(sys.executable).parent / "kfaas")


def test_an_operator_without_its_peering_object_exits_naming_it(platform: Platform) -> None:
    """Kopf would pause it for good: the operator says what to create and exits 2 instead."""
    env = _operator_env(platform, KFAAS_PEERING_NAME="nowhere")
    done = subprocess.run(
        [KFAAS, "operator"], env=env, capture_output=True, text=True, timeout=60,
        cwd=platform.workdir,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("kfaas operator: no ClusterKopfPeering 'nowhere': "), line
    assert "charts/kfaas/templates/peering.yaml" in line and "--standalone" in line


def test_a_standalone_operator_reconciles_without_peering(
    platform: Platform, namespace: str
) -> None:
    """--standalone: no peering object needed, the handlers run at once, and the log says so.

    Cluster-wide beside the module's operator, with the same configuration: both reconcile the
    Function, the later one writing nothing. (With --namespace, Kopf first spends a minute on
    listing namespaces, which the chart's ServiceAccount may not.)
    """
    log_path = platform.workdir / f"standalone-{uuid.uuid4().hex[:6]}.log"
    env = _operator_env(platform, KFAAS_PEERING_NAME="nowhere")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [KFAAS, "operator", "--standalone"], env=env,
            stdout=log, stderr=subprocess.STDOUT, text=True, cwd=platform.workdir,
        )  # fmt: skip
    try:
        platform.apply(function_doc("alone", namespace))
        line = f"reconciled Function {namespace}/alone: wrote "

        def reconciled() -> bool:
            assert process.poll() is None, log_path.read_text()
            return line in log_path.read_text()

        eventually(reconciled, within=60, what=f"{line!r} (log: {log_path})")
        text = log_path.read_text()
        assert "running standalone (--standalone)" in text and "Traceback" not in text, text
    finally:
        process.terminate()
        process.wait(timeout=30)
