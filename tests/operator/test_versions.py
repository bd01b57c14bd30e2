"""A published version runs on children of its own (ADR 024 slice 7), as pure pieces.

Names per version that no function's can take, labels that let the gateway and the autoscaler
tell a version's objects from `$LATEST`'s, pods that `$LATEST`'s (immutable) selector never
takes in, owners that make the version's deletion remove them; the reconcile pass over a fake
cluster, its status written on the FunctionVersion, and the autoscaler scaling each version on
its own demand. The same on the API server is in tests/operator/test_versions_cluster.py.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
from typing import Any

import pytest
from version_digests import code_sha256

from kfaas.demand import demand_lease
from kfaas.lambda_shapes import function_state
from kfaas.manifests import Function
from kfaas.operator import names
from kfaas.operator.autoscaler import Autoscaler
from kfaas.operator.config import OperatorConfig
from kfaas.operator.reconcile import reconcile_function, reconcile_version
from kfaas.operator.resources import function as fn
from kfaas.operator.status import function_status
from kfaas.operator.status_writes import write_status
from kfaas.version_manifests import parse_version

DIGEST = "ab" * 32
CONFIG = OperatorConfig(
    image="registry.example/kfaas:1.0",
    platform_namespace="platform",
    runtime_token_key="runtime-key",
    code_store_url="http://kfaas-code-store.platform.svc:8090",
    code_store_key="store-key",
)
INLINE = {"inline": {"app.py": "def handler(e, c):\n    return 2\n"}}


def version_body(number: int = 2, code: dict[str, Any] | None = None) -> dict[str, Any]:
    template = {"runtime": "python3.11", "handler": "app.handler", "code": code or INLINE}
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "FunctionVersion",
        "metadata": {
            "name": f"thumb.{number}",
            "namespace": "media",
            "uid": f"v-{number}",
            "generation": 1,
            "resourceVersion": "7",
            "labels": {"kfaas.dev/function": "thumb", "kfaas.dev/version": str(number)},
        },
        "spec": {
            "functionName": "thumb",
            "version": number,
            "codeSha256": code_sha256(template),
            "configSha256": "0" * 64,
            "template": template,
        },
    }


def runs(number: int = 2, code: dict[str, Any] | None = None) -> Function:
    version = parse_version(version_body(number, code))
    return version.function().as_version(version.spec.version)


# -- names ---------------------------------------------------------------------------------------


def test_a_version_s_children_are_named_apart_from_every_function_s() -> None:
    assert names.function_workload("thumb") == "thumb-fn"
    assert names.function_workload("thumb", "2") == "thumb-2-fnv"
    # A function named like a version's stem keeps its own names.
    assert names.function_workload("thumb-2") == "thumb-2-fn"
    assert names.function_token("thumb", "2") == "thumb-2-fnv-token"
    assert names.function_token("thumb-2") == "thumb-2-fn-token"
    assert names.function_code("thumb", DIGEST, "2") == f"thumb-2-vcode-{DIGEST[:10]}"
    assert names.function_code("thumb-2", DIGEST) == f"thumb-2-code-{DIGEST[:10]}"
    # Version 12 of `thumb` and version 2 of `thumb-1` differ: the digits after the last dash.
    assert names.function_workload("thumb", "12") != names.function_workload("thumb-1", "2")


@pytest.mark.parametrize("version", ["1", "4294967295"])
def test_the_longest_names_fit_kubernetes_limits(version: str) -> None:
    longest = "f" * 63
    made = [
        names.function_workload(longest, version),
        names.function_token(longest, version),
        names.function_code(longest, DIGEST, version),
    ]
    assert all(len(name) <= names.MAX_NAME for name in made), made
    assert made[0].endswith("-fnv") and made[1].endswith("-fnv-token")
    # Cut names stay apart per version (a hash of the whole name).
    assert names.function_workload(longest, "1") != names.function_workload(longest, "2")


def test_latest_s_selector_never_selects_a_version_s_pods() -> None:
    latest = names.function_selector("thumb")
    pods = names.pod_labels("thumb", "2")
    assert not latest.items() <= pods.items()
    assert names.function_selector("thumb", "2").items() <= pods.items()
    assert pods[names.VERSION_LABEL] == "2" and pods[names.FUNCTION_LABEL] == "thumb"
    # Objects (Deployment, Service and so their EndpointSlices) keep the runtime component,
    # which the autoscaler's and the gateway's informers select.
    labels = names.function_labels("thumb", "2")
    assert labels[names.COMPONENT_LABEL] == names.RUNTIME_COMPONENT
    assert labels[names.VERSION_LABEL] == "2"
    assert names.VERSION_LABEL not in names.function_labels("thumb")
    assert names.pod_labels("thumb") == names.function_labels("thumb")


# -- builders -----------------------------------------------------------------------------------


def test_a_version_s_objects_are_owned_labelled_and_named_per_version() -> None:
    function = runs()
    assert function.version == "2" and function.key == "media/thumb:2"
    built = [
        fn.make_service_account(function, "v-2"),
        fn.make_service(function, "v-2"),
        fn.make_network_policy(function, "v-2", CONFIG),
        fn.make_deployment(function, "v-2", CONFIG),
    ]
    for body in built:
        meta = body["metadata"]
        assert meta["name"] == "thumb-2-fnv", body["kind"]
        assert meta["labels"][names.VERSION_LABEL] == "2"
        assert meta["labels"][names.FUNCTION_LABEL] == "thumb"
        (owner,) = meta["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("FunctionVersion", "thumb.2", "v-2")
    service, policy, deployment = built[1], built[2], built[3]
    selector = names.function_selector("thumb", "2")
    assert service["spec"]["selector"] == selector
    # The version's pods, on-demand and provisioned (ADR 030).
    assert policy["spec"]["podSelector"] == names.all_pods_selector("thumb", "2")
    assert deployment["spec"]["selector"]["matchLabels"] == selector
    template = deployment["spec"]["template"]
    assert selector.items() <= template["metadata"]["labels"].items()
    assert template["spec"]["serviceAccountName"] == "thumb-2-fnv"
    env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
    # The runtime says which version runs; its name stays the function's.
    assert env["AWS_LAMBDA_FUNCTION_VERSION"]["value"] == "2"
    assert env["AWS_LAMBDA_FUNCTION_NAME"]["value"] == "thumb"
    token = env["KFAAS_RUNTIME_TOKEN"]["valueFrom"]["secretKeyRef"]["name"]
    assert token == "thumb-2-fnv-token"
    code = fn.make_code_config_map(function, "v-2")
    assert code is not None and code["metadata"]["name"].startswith("thumb-2-vcode-")
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes["code"]["configMap"]["name"] == code["metadata"]["name"]
    secret = fn.make_token_secret(function, "v-2", CONFIG)
    assert secret is not None and secret["metadata"]["name"] == "thumb-2-fnv-token"
    assert fn.make_replicas("media", "thumb", 3, "2")["metadata"]["name"] == "thumb-2-fnv"
    assert fn.function_url(function, CONFIG).endswith("/functions/media%2Fthumb:2/invocations")


def test_a_zip_version_s_init_container_reads_the_version_s_secret() -> None:
    function = runs(code={"zip": {"sha256": DIGEST, "size": 10}})
    pod = fn.make_deployment(function, "v-2", CONFIG)["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    env = {e["name"]: e for e in fetch["env"]}
    assert env["KFAAS_CODE_CAPABILITY"]["valueFrom"]["secretKeyRef"]["name"] == "thumb-2-fnv-token"
    assert env["KFAAS_CODE_SHA256"]["value"] == DIGEST


# -- reconcile ----------------------------------------------------------------------------------


class _Cluster:
    """Just enough of KubeClient: a dict of objects by (plural, namespace, name)."""

    def __init__(self, *owners: dict[str, Any]) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.listed: list[str | None] = []
        for owner in owners:
            meta = owner["metadata"]
            plural = "functionversions" if owner["kind"] == "FunctionVersion" else "functions"
            self.objects[(plural, meta["namespace"], meta["name"])] = copy.deepcopy(owner)

    async def find(self, api_version: str, plural: str, namespace: str, name: str) -> Any:
        return copy.deepcopy(self.objects.get((plural, namespace, name)))

    async def apply(
        self, body: dict[str, Any], plural: str, *, field_manager: str | None = None
    ) -> dict[str, Any]:
        meta = body["metadata"]
        key = (plural, meta["namespace"], meta["name"])
        live = self.objects.get(key, {})
        merged = {**live, **body, "metadata": {**live.get("metadata", {}), **meta}}
        if "spec" in live and "spec" in body:
            merged["spec"] = {**live["spec"], **body["spec"]}
        self.objects[key] = merged
        return copy.deepcopy(merged)

    async def list(
        self, api_version: str, plural: str, namespace: str, *, label_selector: str | None = None
    ) -> dict[str, Any]:
        self.listed.append(label_selector)
        return {"items": []}

    async def delete(self, api_version: str, plural: str, namespace: str, name: str) -> bool:
        return self.objects.pop((plural, namespace, name), None) is not None

    async def patch(
        self,
        api_version: str,
        plural: str,
        namespace: str,
        name: str,
        body: dict[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        assert subresource == "status"
        self.objects[(plural, namespace, name)]["status"] = body["status"]
        return self.objects[(plural, namespace, name)]


def test_a_version_is_reconciled_into_its_children_and_its_status_is_written() -> None:
    body = version_body()
    cluster = _Cluster(body)
    result = asyncio.run(reconcile_version(cluster, copy.deepcopy(body), CONFIG))  # type: ignore[arg-type]
    assert [o.status for o in result.outcomes] == ["True"] * len(result.outcomes)
    kinds = sorted(written.split("/")[0] for written in result.written)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "Secret",
        "Service",
        "ServiceAccount",
    ]
    deployment = cluster.objects[("deployments", "media", "thumb-2-fnv")]
    assert deployment["spec"]["replicas"] == 0  # until it has demand
    assert result.extra["url"].endswith("/functions/media%2Fthumb:2/invocations")
    # The status goes on the FunctionVersion, from its own Deployment.
    deployment["status"] = {"observedGeneration": 1, "replicas": 0}
    deployment["metadata"]["generation"] = 1
    asyncio.run(write_status(cluster, "FunctionVersion", "media", "thumb.2", result))  # type: ignore[arg-type]
    status = cluster.objects[("functionversions", "media", "thumb.2")]["status"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "True" and status["observedGeneration"] == 1
    assert (
        status["codeSha256"]
        == deployment["spec"]["template"]["metadata"]["annotations"][names.CODE_SHA256_ANNOTATION]
    )
    assert status["instances"] == 0


def test_a_version_that_does_not_parse_is_invalid_and_builds_nothing() -> None:
    body = version_body()
    body["metadata"]["name"] = "thumb.3"  # not <functionName>.<version>
    cluster = _Cluster(body)
    result = asyncio.run(reconcile_version(cluster, body, CONFIG))  # type: ignore[arg-type]
    (invalid,) = result.outcomes
    assert (invalid.type, invalid.status, invalid.reason) == ("SpecValid", "False", "InvalidSpec")
    assert result.written == []


def test_a_version_whose_digest_is_not_its_code_s_is_code_mismatch_and_builds_nothing() -> None:
    """ADR 031: applied by hand with another codeSha256 than its template's code's."""
    body = version_body()
    body["spec"]["codeSha256"] = "c2hh"
    cluster = _Cluster(body)
    result = asyncio.run(reconcile_version(cluster, body, CONFIG))  # type: ignore[arg-type]
    (mismatch,) = result.outcomes
    assert (mismatch.type, mismatch.status, mismatch.reason) == (
        "SpecValid",
        "False",
        "CodeMismatch",
    )
    actual = code_sha256(body["spec"]["template"])
    assert "'c2hh'" in mismatch.message and repr(actual) in mismatch.message
    assert result.written == []
    # Ready says so, and GetFunctionConfiguration reads it as a Failed version.
    asyncio.run(write_status(cluster, "FunctionVersion", "media", "thumb.2", result))  # type: ignore[arg-type]
    status = cluster.objects[("functionversions", "media", "thumb.2")]["status"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "CodeMismatch")
    state = function_state(status, 1)
    assert (state["State"], state.get("StateReasonCode")) == ("Failed", "InvalidConfiguration")
    assert repr(actual) in state.get("StateReason", "")


def test_a_version_whose_runtime_has_no_image_builds_nothing_and_stops_its_pods() -> None:
    body = version_body()
    body["spec"]["template"]["runtime"] = "python3.12"  # no image by default (ADR 016)
    cluster = _Cluster(body)
    cluster.objects[("deployments", "media", "thumb-2-fnv")] = {
        "metadata": {"name": "thumb-2-fnv", "namespace": "media"},
        "spec": {"replicas": 2},
    }
    result = asyncio.run(reconcile_version(cluster, body, CONFIG))  # type: ignore[arg-type]
    missing = result.outcomes[-1]
    assert (missing.type, missing.reason) == ("RuntimeAvailable", "RuntimeNotAvailable")
    assert missing.message.endswith("(Deployment thumb-2-fnv) were stopped")
    assert cluster.objects[("deployments", "media", "thumb-2-fnv")]["spec"]["replicas"] == 0
    assert result.written == ["Deployment/thumb-2-fnv"]


def test_latest_s_code_pruning_leaves_versions_code_alone() -> None:
    function = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "thumb", "namespace": "media", "uid": "f-1", "generation": 1},
        "spec": {"runtime": "python3.11", "handler": "app.handler", "code": INLINE},
    }
    cluster = _Cluster(function)
    asyncio.run(reconcile_function(cluster, function, CONFIG))  # type: ignore[arg-type]
    # A Deployment at zero replicas has rolled out at once: the pass prunes.
    assert cluster.listed == [f"{names.FUNCTION_LABEL}=thumb,!{names.VERSION_LABEL}"]


def test_a_version_s_status_names_its_own_pods() -> None:
    starting = {
        "metadata": {"generation": 1},
        "spec": {"replicas": 1, "template": {"metadata": {}}},
        "status": {"observedGeneration": 1, "replicas": 1},
    }
    status = function_status(version_body(), None, starting, now="2026-11-30T08:00:00Z")
    instances = {c["type"]: c for c in status["conditions"]}["InstancesReady"]
    assert "kfaas.dev/function=thumb,kfaas.dev/version=2" in instances["message"]


# -- autoscaler ---------------------------------------------------------------------------------


class _Scaled:
    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []

    async def apply(
        self, body: dict[str, Any], plural: str, *, field_manager: str | None = None
    ) -> dict[str, Any]:
        assert field_manager == names.AUTOSCALER_FIELD_MANAGER
        self.applied.append(body)
        return body


def test_each_version_scales_on_its_own_demand() -> None:
    cluster = _Scaled()
    autoscaler = Autoscaler(cluster, platform_namespace="platform")  # type: ignore[arg-type]
    latest = copy.deepcopy(version_body())
    latest.update(kind="Function", spec=latest["spec"]["template"])
    latest["metadata"] = {"name": "thumb", "namespace": "media", "uid": "f-1"}
    autoscaler.functions.objects["media/thumb"] = latest
    for number in (1, 2):
        autoscaler.versions.objects[f"media/thumb.{number}"] = version_body(number)
    for workload in ("thumb-fn", "thumb-1-fnv", "thumb-2-fnv"):
        autoscaler.deployments.objects[f"media/{workload}"] = {"spec": {"replicas": 0}}
    now = datetime.datetime.now(datetime.UTC)
    lease = demand_lease("platform", "gw-a", {"media/thumb:2": 3}, now)
    autoscaler.leases.objects["platform/kfaas-demand-gw-a"] = lease
    asyncio.run(autoscaler.tick())
    # Version 2's demand scales version 2 alone (3 in flight over the target utilization).
    (scaled,) = cluster.applied
    assert scaled["metadata"]["name"] == "thumb-2-fnv" and scaled["spec"]["replicas"] >= 3
    assert set(autoscaler.states) == {"media/thumb", "media/thumb:1", "media/thumb:2"}
    # A version gone is forgotten, its gauges too.
    del autoscaler.versions.objects["media/thumb.2"]
    asyncio.run(autoscaler.tick())
    assert set(autoscaler.states) == {"media/thumb", "media/thumb:1"}
    # One whose digest is not its code's (ADR 031) is the reconciler's to report: never scaled.
    mismatched = version_body(3)
    mismatched["spec"]["codeSha256"] = "c2hh"
    autoscaler.versions.objects["media/thumb.3"] = mismatched
    autoscaler.deployments.objects["media/thumb-3-fnv"] = {"spec": {"replicas": 0}}
    cluster.applied.clear()
    autoscaler.leases.objects["platform/kfaas-demand-gw-a"] = demand_lease(
        "platform", "gw-a", {"media/thumb:3": 3}, now
    )
    asyncio.run(autoscaler.tick())
    assert "media/thumb:3" not in autoscaler.states
    assert [body["metadata"]["name"] for body in cluster.applied] == []
