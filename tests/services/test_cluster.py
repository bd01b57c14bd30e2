"""The cluster fixture is a real control plane: CRD schemas, kwok workloads, garbage collection."""

from __future__ import annotations

import ipaddress
import json
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from waiting import eventually

from services.cluster import NODES, POD_RANGE, Cluster

pytestmark = pytest.mark.kwok

WIDGETS = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.services.kfaas.test"},
    "spec": {
        "group": "services.kfaas.test",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {"type": "string", "enum": ["red", "blue"]},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def namespace(kwok_service: Cluster) -> Iterator[str]:
    name = f"services-{uuid.uuid4().hex[:8]}"
    kwok_service.kubectl("create", "namespace", name)
    yield name
    kwok_service.kubectl("delete", "namespace", name, "--wait=false")


def _apply(cluster: Cluster, manifest: dict[str, Any], *, check: bool = True) -> str:
    done = cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=check)
    return done.stdout + done.stderr


def _widget(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "services.kfaas.test/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def test_custom_resource_schema_is_enforced_with_field_paths(
    kwok_service: Cluster, namespace: str
) -> None:
    _apply(kwok_service, WIDGETS)
    kwok_service.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.services.kfaas.test", "--timeout=30s"
    )

    assert "created" in _apply(kwok_service, _widget(namespace, "fine", {"size": 3}))

    too_big = _apply(kwok_service, _widget(namespace, "too-big", {"size": 42}), check=False)
    assert "spec.size: Invalid value: 42: spec.size in body should be less than or equal to 10" in (
        too_big
    )
    wrong_color = _apply(
        kwok_service, _widget(namespace, "green", {"size": 1, "color": "green"}), check=False
    )
    assert 'spec.color: Unsupported value: "green"' in wrong_color
    missing = _apply(kwok_service, _widget(namespace, "empty", {}), check=False)
    assert "spec.size: Required value" in missing

    listed = json.loads(
        kwok_service.kubectl("get", "widgets", "-n", namespace, "-o", "json").stdout
    )
    assert [item["metadata"]["name"] for item in listed["items"]] == ["fine"]


def test_deployment_pods_become_ready_on_kwok_nodes(kwok_service: Cluster, namespace: str) -> None:
    kwok_service.kubectl(
        "create", "deployment", "web", "--image=registry.invalid/web:1", "--replicas=3",
        "-n", namespace,
    )  # fmt: skip
    kwok_service.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=60s")

    pods = json.loads(
        kwok_service.kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "json").stdout
    )["items"]
    assert len(pods) == 3
    for pod in pods:
        assert pod["spec"]["nodeName"] in NODES
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True"
        assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(POD_RANGE)


def test_owned_object_is_garbage_collected_with_its_owner(
    kwok_service: Cluster, namespace: str
) -> None:
    _apply(
        kwok_service,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "owner", "namespace": namespace},
        },
    )
    owner_uid = kwok_service.kubectl(
        "get", "configmap", "owner", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    _apply(
        kwok_service,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "owned",
                "namespace": namespace,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
                ],
            },
            "stringData": {"token": "x"},
        },
    )

    kwok_service.kubectl("delete", "configmap", "owner", "-n", namespace)
    # The garbage collector in kube-controller-manager, not kubectl, removes the dependent.
    kwok_service.kubectl("wait", "--for=delete", "secret/owned", "-n", namespace, "--timeout=60s")
    gone = kwok_service.kubectl("get", "secret", "owned", "-n", namespace, check=False)
    assert 'secrets "owned" not found' in gone.stderr


def test_service_account_tokens_authenticate_and_rbac_applies(
    kwok_service: Cluster, namespace: str
) -> None:
    """Operators and gateways run as ServiceAccounts: their tokens must work, within their RBAC."""
    kwok_service.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    token = kwok_service.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
    context = ssl.create_default_context(cafile=str(kwok_service.pki.ca_cert))

    def status(path: str) -> int:
        request = urllib.request.Request(
            kwok_service.server + path, headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as refused:
            with refused:
                return refused.code

    pods = f"/api/v1/namespaces/{namespace}/pods"
    assert status(pods) == 403
    kwok_service.kubectl(
        "create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", namespace
    )
    kwok_service.kubectl(
        "create", "rolebinding", "reader", "--role=pod-reader",
        f"--serviceaccount={namespace}:reader", "-n", namespace,
    )  # fmt: skip
    # The authorizer reads RBAC objects from a watch cache: allow it a moment to see the binding.
    eventually(lambda: status(pods) == 200, within=10, what="the RoleBinding taking effect")
