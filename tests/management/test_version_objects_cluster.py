"""The FunctionVersion and FunctionAlias CRDs on a real API server: the CEL rules refuse what the
models refuse (the name rule, a published version's immutable spec, Lambda's routing rules), and
a Function's deletion takes its versions and aliases with it (ownerReferences)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from services.cluster import Cluster
from version_digests import code_sha256
from waiting import eventually

from kfaas.lambda_versions import config_sha256
from kfaas.manifests import ManifestError
from kfaas.version_manifests import parse_alias, parse_version

CRDS = Path(__file__).resolve().parents[2] / "crds"
TEMPLATE = {
    "runtime": "python3.12",
    "handler": "app.handler",
    "code": {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}},
}


@pytest.fixture(scope="module")
def cluster(kwok_service: Cluster) -> Cluster:
    kwok_service.install_crds(CRDS)
    return kwok_service


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"versions-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def version_doc(namespace: str, name: str = "fn.1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "FunctionVersion",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "functionName": "fn",
            "version": 1,
            "codeSha256": code_sha256(TEMPLATE),
            "configSha256": config_sha256(TEMPLATE),
            "template": TEMPLATE,
        }
        | spec,
    }


def alias_doc(namespace: str, object_name: str = "fn.live", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "FunctionAlias",
        "metadata": {"name": object_name, "namespace": namespace},
        "spec": {"functionName": "fn", "name": "live", "functionVersion": "1"} | spec,
    }


def apply(cluster: Cluster, doc: dict[str, Any]) -> str:
    """Create (or replace) the object; returns kubectl's error text, empty when accepted."""
    done = cluster.kubectl("apply", "-f", "-", input=json.dumps(doc), check=False)
    return "" if done.returncode == 0 else done.stderr


def refused_alike(cluster: Cluster, doc: dict[str, Any], words: str) -> None:
    """The API server refuses ``doc`` naming ``words``, and so does the model."""
    error = apply(cluster, doc)
    assert words in error, error
    parse = parse_version if doc["kind"] == "FunctionVersion" else parse_alias
    with pytest.raises(ManifestError):
        parse(doc)


def get(cluster: Cluster, namespace: str, what: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(
        cluster.kubectl("-n", namespace, "get", what, "-o", "json").stdout
    )
    return body


def test_a_version_is_named_after_its_function_and_number(cluster: Cluster, namespace: str) -> None:
    accepted = version_doc(namespace)
    parse_version(accepted)
    assert apply(cluster, accepted) == ""
    refused_alike(cluster, version_doc(namespace, "fn.2"), "metadata.name must be")
    refused_alike(cluster, version_doc(namespace, "other.1"), "metadata.name must be")
    table = cluster.kubectl("-n", namespace, "get", "functionversions").stdout
    assert table.split()[:5] == ["NAME", "FUNCTION", "VERSION", "READY", "INSTANCES"]
    assert table.splitlines()[1].split()[:3] == ["fn.1", "fn", "1"]


def test_a_published_version_is_immutable(cluster: Cluster, namespace: str) -> None:
    assert apply(cluster, version_doc(namespace)) == ""
    changed = version_doc(namespace, description="changed")
    assert "a published version is immutable" in apply(cluster, changed)
    edited = version_doc(namespace)
    edited["spec"]["template"] = TEMPLATE | {"memoryMB": 256}
    assert "a published version is immutable" in apply(cluster, edited)
    # Its metadata is not frozen: labels, annotations (and its status) may still change.
    cluster.kubectl("-n", namespace, "label", "functionversion/fn.1", "team=a")
    assert get(cluster, namespace, "functionversion/fn.1")["spec"]["description"] == ""


def test_a_version_code_is_pinned(cluster: Cluster, namespace: str) -> None:
    doc = version_doc(namespace)
    doc["spec"]["template"] = TEMPLATE | {"code": {"configMap": "fn-code"}}
    refused_alike(cluster, doc, "a version's code must be pinned")


def test_an_alias_follows_lambda_routing_rules(cluster: Cluster, namespace: str) -> None:
    canary = alias_doc(namespace, routingConfig={"additionalVersionWeights": {"2": 0.1}})
    parse_alias(canary)
    assert apply(cluster, canary) == ""
    table = cluster.kubectl("-n", namespace, "get", "functionaliases").stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "FUNCTION", "VERSION", "WEIGHTS"]
    assert row.split()[:4] == ["fn.live", "fn", "1", '{"2":0.1}']
    # An alias is routing data: it may be moved.
    assert apply(cluster, alias_doc(namespace, functionVersion="2")) == ""
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"functionVersion": "$LATEST", "routingConfig": {"additionalVersionWeights": {"2": 0.5}}},
         "$LATEST is not supported for weighted aliases"),
        ({"routingConfig": {"additionalVersionWeights": {"2": 1.5}}}, "less than or equal to 1"),
        ({"routingConfig": {"additionalVersionWeights": {"2": -0.1}}},
         "greater than or equal to 0"),
        ({"routingConfig": {"additionalVersionWeights": {"2": 0.1, "3": 0.1}}}, "at most 1"),
        ({"routingConfig": {"additionalVersionWeights": {"1": 0.1}}},
         "must not be the alias's functionVersion"),
        ({"routingConfig": {"additionalVersionWeights": {"0": 0.1}}}, "every key must match"),
        ({"functionVersion": "latest"}, "spec.functionVersion"),
    ]  # fmt: skip
    for spec, words in refusals:
        refused_alike(cluster, alias_doc(namespace, **spec), words)
    refused_alike(
        cluster, alias_doc(namespace, "fn.other"), "metadata.name must be <spec.functionName>"
    )
    refused_alike(cluster, alias_doc(namespace, "fn.123", name="123"), "must not be only digits")
    refused_alike(cluster, alias_doc(namespace, "fn.Live", name="Live"), "spec.name")


def test_deleting_the_function_deletes_its_versions_and_aliases(
    cluster: Cluster, namespace: str
) -> None:
    function = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "fn", "namespace": namespace},
        "spec": TEMPLATE,
    }
    assert apply(cluster, function) == ""
    uid = get(cluster, namespace, "function/fn")["metadata"]["uid"]
    owner = {"apiVersion": "kfaas.dev/v1alpha1", "kind": "Function", "name": "fn", "uid": uid}
    for doc in (version_doc(namespace), alias_doc(namespace)):
        doc["metadata"]["ownerReferences"] = [owner]
        assert apply(cluster, doc) == ""
    cluster.kubectl("-n", namespace, "delete", "function/fn")

    def gone() -> bool:
        listed = get(cluster, namespace, "functionversions,functionaliases")
        return not listed["items"]

    eventually(gone, within=60, what="the versions and aliases collected with their function")
