"""A published version on the real API server (ADR 024 slice 7): the operator, as the chart's
ServiceAccount, builds its children, writes its status and scales it on its own demand.

kwok makes pods Ready without running them; Deployments, EndpointSlices and garbage collection
are the real controllers', so what the gateway would route to is what is checked here.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chart.platform import Platform, install, operator_process
from services.cluster import Cluster
from version_digests import code_sha256
from waiting import eventually

from kfaas.api_objects import from_api_object
from kfaas.backends import Endpoint
from kfaas.code import code_digest
from kfaas.demand import demand_lease
from kfaas.gateway.kube_clients import KubernetesBackend
from kfaas.gateway.registry import FunctionRegistry
from kfaas.kube_clients import Credentials, KubeClient
from kfaas.lambda_shapes import function_state
from kfaas.manifests import Function

CODE = {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}}
SPEC: dict[str, Any] = {
    "runtime": "python3.11",
    "handler": "app.handler",
    "code": CODE,
    "scaling": {"scaleToZeroAfterSeconds": 2, "targetUtilization": 1.0, "maxInstances": 5},
}


@pytest.fixture(scope="module")
def platform(
    helm: Path, kwok_service: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    installed = install(helm, kwok_service, tmp_path_factory.mktemp("versions"))
    with operator_process(installed, KFAAS_RUNTIME_TOKEN_KEY="versions-test-key"):
        yield installed
    kwok_service.kubectl("delete", "namespace", installed.namespace, "--wait=false")


@pytest.fixture
def namespace(platform: Platform) -> Iterator[str]:
    name = f"ver-{uuid.uuid4().hex[:6]}"
    platform.kubectl("create", "namespace", name)
    yield name
    platform.kubectl("delete", "namespace", name, "--wait=false")


def get(platform: Platform, namespace: str, *what: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        platform.kubectl("-n", namespace, "get", *what, "-o", "json")
    )
    return found


def wait(platform: Platform, namespace: str, condition: str, target: str) -> None:
    platform.kubectl("-n", namespace, "wait", f"--for={condition}", "--timeout=60s", target)


def version_doc(namespace: str, function: dict[str, Any], number: int) -> dict[str, Any]:
    """A FunctionVersion as PublishVersion writes it: owned by its Function, labelled."""
    meta = function["metadata"]
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "FunctionVersion",
        "metadata": {
            "name": f"{meta['name']}.{number}",
            "namespace": namespace,
            "labels": {"kfaas.dev/function": meta["name"], "kfaas.dev/version": str(number)},
            "ownerReferences": [
                {
                    "apiVersion": "kfaas.dev/v1alpha1",
                    "kind": "Function",
                    "name": meta["name"],
                    "uid": meta["uid"],
                }
            ],
        },
        "spec": {
            "functionName": meta["name"],
            "version": number,
            "codeSha256": code_sha256(SPEC),
            "configSha256": "0" * 64,
            "template": SPEC,
        },
    }


def _report(platform: Platform, figures: dict[str, int]) -> None:
    lease = demand_lease(platform.namespace, "gw-v", figures, datetime.datetime.now(datetime.UTC))
    platform.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(lease))


def _ready_addresses(platform: Platform, namespace: str, service: str) -> list[str]:
    slices = get(
        platform, namespace, "endpointslices", "-l", f"kubernetes.io/service-name={service}"
    )
    return [
        address
        for item in slices["items"]
        for entry in item.get("endpoints") or []
        if (entry.get("conditions") or {}).get("ready")
        for address in entry.get("addresses") or []
    ]


def test_a_version_runs_on_children_of_its_own_and_scales_on_its_own(
    platform: Platform, namespace: str
) -> None:
    platform.apply(
        {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "canary", "namespace": namespace},
            "spec": SPEC,
        }
    )
    wait(platform, namespace, "condition=Ready", "function/canary")
    function = get(platform, namespace, "function/canary")
    platform.apply(version_doc(namespace, function, 1))
    wait(platform, namespace, "condition=Ready", "functionversion/canary.1")
    version = get(platform, namespace, "functionversion/canary.1")
    uid = version["metadata"]["uid"]

    # Its status is a Function's: boto3's published_version_active waiter reads Active.
    status = version["status"]
    digest = code_digest(from_api_object(function, Function))
    assert status["observedGeneration"] == 1
    assert (
        eventually(
            lambda: get(platform, namespace, "functionversion/canary.1")["status"].get(
                "codeSha256"
            ),
            within=30,
            what="the version's codeSha256",
        )
        == digest
    )
    version = get(platform, namespace, "functionversion/canary.1")
    assert function_state(version["status"], 1)["State"] == "Active"
    assert version["status"]["url"].endswith(f"/functions/{namespace}%2Fcanary:1/invocations")

    # Its children: named per version, labelled with it, owned by the version.
    children = [
        ("deployment", "canary-1-fnv"),
        ("service", "canary-1-fnv"),
        ("serviceaccount", "canary-1-fnv"),
        ("networkpolicy", "canary-1-fnv"),
        ("secret", "canary-1-fnv-token"),
        ("configmap", f"canary-1-vcode-{digest[:10]}"),
    ]
    for kind, name in children:
        child = get(platform, namespace, kind, name)
        assert child["metadata"]["ownerReferences"][0]["uid"] == uid, kind
        assert child["metadata"]["labels"]["kfaas.dev/version"] == "1", kind
    assert get(platform, namespace, "deployment", "canary-1-fnv")["spec"]["replicas"] == 0

    # Demand for canary:1 scales version 1 alone; $LATEST's Service never takes its pods in.
    _report(platform, {f"{namespace}/canary:1": 2})
    wait(platform, namespace, "jsonpath={.spec.replicas}=2", "deployment/canary-1-fnv")
    wait(platform, namespace, "jsonpath={.status.readyInstances}=2", "functionversion/canary.1")
    assert get(platform, namespace, "deployment", "canary-fn")["spec"]["replicas"] == 0
    eventually(
        lambda: len(_ready_addresses(platform, namespace, "canary-1-fnv")) == 2,
        within=30,
        what="version 1's two ready addresses in its EndpointSlices",
    )
    assert _ready_addresses(platform, namespace, "canary-fn") == []
    slices = get(
        platform, namespace, "endpointslices", "-l", "kubernetes.io/service-name=canary-1-fnv"
    )
    labels = slices["items"][0]["metadata"]["labels"]
    assert (labels["kfaas.dev/function"], labels["kfaas.dev/version"]) == ("canary", "1")

    # No more demand: it goes back to zero on its own.
    _report(platform, {})
    wait(platform, namespace, "jsonpath={.spec.replicas}=0", "deployment/canary-1-fnv")

    # Deleting the version removes its children (garbage collection through the owner).
    platform.kubectl("-n", namespace, "delete", "functionversion/canary.1")
    eventually(
        lambda: (
            "NotFound"
            in platform.kubectl("-n", namespace, "get", "deployment", "canary-1-fnv", check=False)
        ),
        within=60,
        what="version 1's Deployment garbage-collected",
    )
    assert get(platform, namespace, "deployment", "canary-fn")["metadata"]["name"] == "canary-fn"


def test_the_cluster_gateway_scales_a_version_from_zero_and_routes_to_its_pods(
    platform: Platform, namespace: str
) -> None:
    """The gateway's backend, as the chart's gateway ServiceAccount: a held invocation of
    `name:1` is reported under that key, the operator starts version 1's instance, and its
    address reaches the listener under `namespace/name:1` alone."""
    platform.apply(
        {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "cold", "namespace": namespace},
            "spec": SPEC,
        }
    )
    wait(platform, namespace, "condition=Ready", "function/cold")
    platform.apply(version_doc(namespace, get(platform, namespace, "function/cold"), 1))
    wait(platform, namespace, "condition=Ready", "functionversion/cold.1")
    kubeconfig = platform.token_kubeconfig("kfaas-gateway")
    asyncio.run(_scale_version_from_zero(platform, kubeconfig, namespace))
    assert get(platform, namespace, "deployment", "cold-fn")["spec"]["replicas"] == 0


async def _scale_version_from_zero(platform: Platform, kubeconfig: Path, namespace: str) -> None:
    key = f"{namespace}/cold:1"
    fed: dict[str, list[Endpoint]] = {}
    arrived = asyncio.Event()

    def listener(function_key: str, endpoints: list[Endpoint]) -> None:
        fed[function_key] = endpoints
        if function_key == key and endpoints:
            arrived.set()

    credentials = Credentials.load(str(kubeconfig))
    async with KubeClient(credentials, field_manager="kfaas-gateway") as client:
        registry = FunctionRegistry()
        backend = KubernetesBackend(
            client, registry, platform_namespace=platform.namespace, replica="versions-gateway"
        )
        backend.subscribe(listener)
        await backend.start()
        try:
            assert registry.get(key).version == "1"
            backend.demand(key, 1)
            async with asyncio.timeout(60):
                await arrived.wait()
            (endpoint,) = fed[key]
            assert endpoint.url.endswith(":8080")
            assert not fed.get(f"{namespace}/cold")  # $LATEST has no instance
        finally:
            await backend.stop()


def test_a_version_applied_with_another_code_s_digest_is_code_mismatch_and_runs_nothing(
    platform: Platform, namespace: str
) -> None:
    """ADR 031: the API server takes any codeSha256 (CEL cannot hash); the operator refuses
    one that is not the template's code's, names both digests and builds nothing."""
    platform.apply(
        {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "lying", "namespace": namespace},
            "spec": SPEC,
        }
    )
    function = get(platform, namespace, "function/lying")
    document = version_doc(namespace, function, 1)
    document["spec"]["codeSha256"] = "c2hh"
    platform.apply(document)
    wait(platform, namespace, "condition=Ready=False", "functionversion/lying.1")
    status = get(platform, namespace, "functionversion/lying.1")["status"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["reason"] == "CodeMismatch"
    assert "'c2hh'" in ready["message"] and repr(code_sha256(SPEC)) in ready["message"]
    state = function_state(status, 1)
    assert (state["State"], state.get("StateReasonCode")) == ("Failed", "InvalidConfiguration")
    missing = platform.kubectl("-n", namespace, "get", "deployment", "lying-1-fnv", check=False)
    assert "NotFound" in missing
