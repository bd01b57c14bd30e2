"""Provisioned instances on a cluster (ADR 030): a Deployment and Service of their own, told
`AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`, beside the on-demand Deployment that the
autoscaler scales for the rest; status counts both. Builders and status as input → output."""

from __future__ import annotations

from typing import Any

from kfaas.manifests import Function, parse_manifest
from kfaas.operator import names
from kfaas.operator.conditions import Outcome
from kfaas.operator.config import OperatorConfig
from kfaas.operator.resources import function as fn
from kfaas.operator.status import combined_instances, function_status

CONFIG = OperatorConfig(image="registry.example/kfaas:1.0", platform_namespace="platform")
UID = "0f0e-uid"


def function(version: int | None = None, **spec: Any) -> Function:
    doc = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "thumbnail", "namespace": "media"},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(e, c): return 1\n"}},
            "concurrency": {"provisioned": 2},
        }
        | spec,
    }
    manifest = parse_manifest(doc)
    assert isinstance(manifest, Function)
    return manifest if version is None else manifest.as_version(version)


def env(deployment: dict[str, Any]) -> dict[str, str]:
    entries = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e["value"] for e in entries if "value" in e}


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes' label selector semantics, for matchLabels and `In` expressions."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    return all(
        labels.get(e["key"]) in e["values"]
        for e in selector.get("matchExpressions", [])
        if e["operator"] == "In"
    )


def test_the_provisioned_deployment_is_told_so_and_has_its_own_selector() -> None:
    thumbnail = function()
    on_demand = fn.make_deployment(thumbnail, UID, CONFIG)
    provisioned = fn.make_deployment(thumbnail, UID, CONFIG, provisioned=True)
    assert on_demand["metadata"]["name"] == "thumbnail-fn"
    assert provisioned["metadata"]["name"] == "thumbnail-fn-pc"
    assert env(on_demand)["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env(provisioned)["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"
    # replicas: the autoscaler's on the on-demand one, concurrency.provisioned on the other.
    assert "replicas" not in on_demand["spec"]
    assert provisioned["spec"]["replicas"] == 2
    # Neither Deployment's selector takes the other's pods in.
    pods = {
        "on-demand": on_demand["spec"]["template"]["metadata"]["labels"],
        "provisioned": provisioned["spec"]["template"]["metadata"]["labels"],
    }
    assert matches(on_demand["spec"]["selector"], pods["on-demand"])
    assert not matches(on_demand["spec"]["selector"], pods["provisioned"])
    assert matches(provisioned["spec"]["selector"], pods["provisioned"])
    assert not matches(provisioned["spec"]["selector"], pods["on-demand"])
    # Same code, same token: only the environment and the labels differ.
    assert (
        on_demand["spec"]["template"]["metadata"]["annotations"]
        == (provisioned["spec"]["template"]["metadata"]["annotations"])
    )


def test_both_services_carry_the_labels_the_gateway_discovers_endpoints_by() -> None:
    thumbnail = function()
    on_demand = fn.make_service(thumbnail, UID)
    provisioned = fn.make_service(thumbnail, UID, provisioned=True)
    assert provisioned["metadata"]["name"] == "thumbnail-fn-pc"
    # EndpointSlices copy these: the gateway keys both Services' addresses to one function.
    assert provisioned["metadata"]["labels"] == on_demand["metadata"]["labels"]
    assert provisioned["metadata"]["labels"][names.COMPONENT_LABEL] == names.RUNTIME_COMPONENT
    assert provisioned["spec"]["selector"] == names.provisioned_selector("thumbnail")


def test_network_policy_and_budget_cover_both_kinds_of_pod_and_no_version_pod() -> None:
    thumbnail = function(scaling={"minInstances": 3})
    policy = fn.make_network_policy(thumbnail, UID, CONFIG)["spec"]["podSelector"]
    budget = fn.make_pod_disruption_budget(thumbnail, UID)
    assert budget is not None
    for selector in (policy, budget["spec"]["selector"]):
        assert matches(selector, names.pod_labels("thumbnail"))
        assert matches(selector, names.provisioned_pod_labels("thumbnail"))
        assert not matches(selector, names.pod_labels("thumbnail", "2"))
        assert not matches(selector, names.provisioned_pod_labels("thumbnail", "2"))


def test_a_published_versions_provisioned_instances_are_its_own() -> None:
    version = function(2)
    deployment = fn.make_deployment(version, UID, CONFIG, provisioned=True)
    assert deployment["metadata"]["name"] == "thumbnail-2-fnv-pc"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels[names.VERSION_LABEL] == "2"
    assert not matches({"matchLabels": names.provisioned_selector("thumbnail")}, labels)
    assert not matches({"matchLabels": names.function_selector("thumbnail", "2")}, labels)
    assert env(deployment)["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"
    assert names.provisioned_workload("f-2") != names.provisioned_workload("f", "2")


def test_the_on_demand_deployment_runs_what_the_provisioned_ones_do_not() -> None:
    assert fn.initial_replicas(function()) == 0
    assert fn.initial_replicas(function(scaling={"minInstances": 5})) == 3
    assert fn.on_demand_instances(function(), 7) == 5
    assert fn.on_demand_instances(function(), 1) == 0  # the rule's floor is the provisioned 2
    assert fn.on_demand_instances(function(concurrency={}), 4) == 4


def _deployment(replicas: int, ready: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "spec": {
            "replicas": replicas,
            "template": {"metadata": {"annotations": {names.CODE_SHA256_ANNOTATION: "ab"}}},
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def test_status_counts_both_deployments() -> None:
    owner = {"kind": "Function", "metadata": {"name": "thumbnail"}, "spec": {}}
    status = function_status(owner, None, _deployment(0, 0), now="t", provisioned=_deployment(2, 2))
    assert (status["instances"], status["readyInstances"]) == (2, 2)
    ready = next(c for c in status["conditions"] if c["type"] == "InstancesReady")
    assert ready["status"] == "True" and ready["reason"] != "ScaledToZero"
    assert status["codeSha256"] == "ab"
    starting = function_status(
        owner, None, _deployment(1, 1), now="t", provisioned=_deployment(2, 0)
    )
    assert (starting["instances"], starting["readyInstances"]) == (3, 1)
    ready = next(c for c in starting["conditions"] if c["type"] == "InstancesReady")
    assert ready["status"] != "True"


def test_the_worse_of_two_outcomes_is_reported() -> None:
    zero = Outcome("InstancesReady", "True", "ScaledToZero", "none")
    up = Outcome("InstancesReady", "True", "Ready", "2 of 2")
    failing = Outcome("InstancesReady", "False", "ProgressDeadlineExceeded", "stuck")
    assert combined_instances(zero, None) is zero
    assert combined_instances(zero, up) is up
    assert combined_instances(up, failing) is failing
    assert combined_instances(failing, up) is failing
