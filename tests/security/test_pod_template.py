"""`spec.podTemplate` is an allowlist; function pods get a token and a default egress policy.

Issue 8, points 8 and 9, as pure pieces: the models (what `kfaas dev` says), the CRD schema (what
the API server is given), the operator's builders and its refusal of stored objects. The same
refusals on the real API server are in tests/operator/test_on_cluster.py (INVALID).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kfaas import runtimetoken
from kfaas.manifests import Function, ManifestError, parse_manifest
from kfaas.operator import crdgen, names
from kfaas.operator.autoscaler import Autoscaler
from kfaas.operator.config import EgressConfig, OperatorConfig
from kfaas.operator.reconcile import reconcile_function
from kfaas.operator.resources import function as fn
from kfaas.podtemplate import ALLOWED_FIELDS

KEY = "platform-key"
KFAAS = str(Path(sys.executable).with_name("kfaas"))
CONFIG = OperatorConfig(platform_namespace="platform", runtime_token_key=KEY)


def doc(pod_template: Any, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "thumb", "namespace": "media", "uid": "u-1", "generation": 3},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(e, c): return 1\n"}},
            "podTemplate": pod_template,
        }
        | spec,
    }


def function(pod_template: Any, **spec: Any) -> Function:
    manifest = parse_manifest(doc(pod_template, **spec), "fn.yaml")
    assert isinstance(manifest, Function)
    return manifest


REFUSED = [
    ({"hostNetwork": True}, "spec.podTemplate.hostNetwork: is not allowed in podTemplate"),
    ({"hostPID": True}, "spec.podTemplate.hostPID: is not allowed"),
    ({"hostIPC": True}, "spec.podTemplate.hostIPC: is not allowed"),
    ({"securityContext": {"runAsUser": 0}}, "spec.podTemplate.securityContext: is not allowed"),
    ({"containers": [{"name": "runtime", "securityContext": {"privileged": True}}]},
     "spec.podTemplate.containers: is not allowed"),
    ({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
     "spec.podTemplate.volumes: is not allowed"),
    ({"initContainers": [{"name": "x", "image": "busybox"}]},
     "spec.podTemplate.initContainers: is not allowed"),
    ({"serviceAccount": "admin"}, "spec.podTemplate.serviceAccount: is not allowed"),
    ({"shareProcessNamespace": True}, "spec.podTemplate.shareProcessNamespace: is not allowed"),
    ({"automountServiceAccountToken": "yes"},
     "spec.podTemplate.automountServiceAccountToken: \"yes\" must be true or false"),
    ({"metadata": {"labels": {"kfaas.dev/function": "other"}}},
     "spec.podTemplate.metadata: labels kfaas.dev/function:"),
    ({"metadata": {"labels": {"poller.kfaas.dev/x": "y"}}}, "labels poller.kfaas.dev/x:"),
    ({"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/runtime":
                                   "unconfined"}}}, "annotations container.apparmor"),
    ({"metadata": {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}},
     "annotations seccomp.security.alpha.kubernetes.io/pod"),
    ({"metadata": {"annotations": {"io.kubernetes.cri-o.userns-mode": "host"}}},
     "annotations io.kubernetes.cri-o.userns-mode"),
    ({"metadata": {"name": "x"}}, "spec.podTemplate.metadata.name: is not a known field"),
    ({"resources": {"limits": {"memory": "8Gi"}}},
     "spec.podTemplate.resources: limits.memory: memory is set by memoryMB"),
    ({"resources": {"requests": {"memory": "1Mi"}}}, "requests.memory: memory is set by memoryMB"),
    ({"resources": {"requests": {"cpu": 1}}},
     "spec.podTemplate.resources.requests.cpu: 1 must be a string"),
    ({"resources": {"limits": {"cpu": "lots"}}}, "spec.podTemplate.resources.limits.cpu:"),
    ({"resources": {"claims": [{"name": "gpu"}]}},
     "spec.podTemplate.resources.claims: is not a known field"),
    ({"serviceAccountName": "Admin!"}, "spec.podTemplate.serviceAccountName:"),
    ({"tolerations": [{"operator": "Sometimes"}]},
     "spec.podTemplate.tolerations[0].operator: \"Sometimes\" must be one of Exists, Equal"),
]  # fmt: skip


@pytest.mark.parametrize(("pod_template", "message"), REFUSED)
def test_kfaas_dev_refuses_with_the_field_path(pod_template: Any, message: str) -> None:
    with pytest.raises(ManifestError) as refused:
        function(pod_template)
    assert any(p.startswith(f"fn.yaml: {message}") or message in p for p in refused.value.problems)
    assert all(p.startswith("fn.yaml: spec.podTemplate") for p in refused.value.problems)


def test_kfaas_dev_refuses_to_start_and_names_every_field(tmp_path: Path) -> None:
    manifest = doc(
        {
            "hostNetwork": True,
            "securityContext": {"runAsUser": 0},
            "metadata": {"labels": {"kfaas.dev/function": "other"}},
        }
    )
    (tmp_path / "fn.yaml").write_text(json.dumps(manifest))
    done = subprocess.run(
        [KFAAS, "dev", str(tmp_path), "--port", "0", "--state", str(tmp_path / ".state")],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    lines = (done.stdout + done.stderr).splitlines()
    for expected in (
        "fn.yaml: spec.podTemplate.hostNetwork: is not allowed in podTemplate (allowed: metadata,",
        "fn.yaml: spec.podTemplate.securityContext: is not allowed in podTemplate",
        "fn.yaml: spec.podTemplate.metadata: labels kfaas.dev/function: keys under kfaas.dev/",
    ):
        assert any(expected in line for line in lines), (expected, lines)


def test_allowed_fields_parse() -> None:
    allowed = {
        "metadata": {"labels": {"team": "media"}, "annotations": {"owner": "ana"}},
        "nodeSelector": {"pool": "functions"},
        "tolerations": [{"key": "fn", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone"}],
        "priorityClassName": "functions",
        "runtimeClassName": "gvisor",
        "resources": {"requests": {"cpu": "250m"}, "limits": {"nvidia.com/gpu": "1"}},
        "serviceAccountName": "reader",
        "automountServiceAccountToken": True,
    }
    assert set(allowed) == set(ALLOWED_FIELDS)
    template = function(allowed).spec.pod_template
    assert template.runtime_class_name == "gvisor" and template.automount_service_account_token


def _pod_template_schema() -> dict[str, Any]:
    version = crdgen.function_crd()["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return dict(schema["properties"]["podTemplate"])


def test_the_crd_schema_is_the_allowlist() -> None:
    schema = _pod_template_schema()
    assert "x-kubernetes-preserve-unknown-fields" not in schema
    assert set(schema["properties"]) == set(ALLOWED_FIELDS)
    # Free-form only where Kubernetes checks a scheduling structure of its own.
    free = {
        name
        for name, child in schema["properties"].items()
        if child.get("x-kubernetes-preserve-unknown-fields")
        or (child.get("items") or {}).get("x-kubernetes-preserve-unknown-fields")
    }
    assert free == {"affinity", "topologySpreadConstraints"}
    metadata = schema["properties"]["metadata"]
    assert set(metadata["properties"]) == {"labels", "annotations"}
    rules = [rule["rule"] for rule in metadata["x-kubernetes-validations"]]
    assert all("kfaas\\\\.dev/" in rule for rule in rules), rules
    resources = schema["properties"]["resources"]
    assert "'memory' in self.requests" in resources["x-kubernetes-validations"][0]["rule"]
    assert set(resources["properties"]) == {"requests", "limits"}


# -- the operator's builders -------------------------------------------------------------------


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"])


def test_the_hardening_survives_every_allowed_field() -> None:
    plain = fn.make_deployment(function({}), "u-1", CONFIG)
    full = function(
        {
            "metadata": {"labels": {"app.kubernetes.io/name": "mine", "team": "media"}},
            "nodeSelector": {"pool": "functions"},
            "runtimeClassName": "gvisor",
            "resources": {"requests": {"cpu": "250m"}},
            "serviceAccountName": "reader",
        }
    )
    deployment = fn.make_deployment(full, "u-1", CONFIG)
    pod, hardened = _pod(deployment), _pod(plain)
    assert pod["spec"]["securityContext"] == hardened["spec"]["securityContext"]
    (container,) = pod["spec"]["containers"]
    assert container["securityContext"] == hardened["spec"]["containers"][0]["securityContext"]
    assert container["volumeMounts"] == hardened["spec"]["containers"][0]["volumeMounts"]
    assert pod["spec"]["volumes"] == hardened["spec"]["volumes"]
    assert pod["spec"]["serviceAccountName"] == "reader"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["runtimeClassName"] == "gvisor"
    assert pod["spec"]["nodeSelector"] == {"pool": "functions"}
    assert container["resources"]["requests"] == {"memory": "192Mi", "cpu": "250m"}
    assert container["resources"]["limits"] == {"memory": "192Mi"}
    # kfaas's labels win; the NetworkPolicy and discovery select by them.
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "kfaas-function" and labels["team"] == "media"
    assert labels[names.FUNCTION_LABEL] == "thumb"
    for absent in ("hostNetwork", "hostPID", "hostIPC", "initContainers"):
        assert absent not in pod["spec"]


def test_the_token_is_mounted_only_when_asked_and_allowed() -> None:
    asks = function({"automountServiceAccountToken": True, "serviceAccountName": "reader"})
    allowed = OperatorConfig(allow_service_account_token=True)
    assert _pod(fn.make_deployment(asks, "u", allowed))["spec"]["automountServiceAccountToken"]
    quiet = function({"serviceAccountName": "reader"})
    assert not _pod(fn.make_deployment(quiet, "u", allowed))["spec"]["automountServiceAccountToken"]
    assert not _pod(fn.make_deployment(asks, "u", CONFIG))["spec"]["automountServiceAccountToken"]
    refusal = fn.pod_template_refusal(doc({"automountServiceAccountToken": True}), CONFIG)
    assert refusal is not None
    assert refusal.startswith("spec.podTemplate.automountServiceAccountToken: the platform")
    assert fn.pod_template_refusal(doc({"automountServiceAccountToken": True}), allowed) is None


def test_a_stored_forbidden_pod_template_is_refused_by_name() -> None:
    stored = doc({"hostPID": True, "nodeSelector": {"a": "b"}, "volumes": []})
    refusal = fn.pod_template_refusal(stored, CONFIG)
    assert refusal is not None
    assert "spec.podTemplate.hostPID: is not allowed in podTemplate" in refusal
    assert "spec.podTemplate.volumes: is not allowed" in refusal
    assert fn.pod_template_refusal(doc({"nodeSelector": {"a": "b"}}), CONFIG) is None
    no_template = doc({})
    del no_template["spec"]["podTemplate"]
    assert fn.pod_template_refusal(no_template, CONFIG) is None


class _Cluster:
    """Just enough of KubeClient for a refused Function: one live Deployment, applies recorded."""

    def __init__(self, deployment: dict[str, Any] | None) -> None:
        self.deployment = deployment
        self.applied: list[tuple[dict[str, Any], str | None]] = []

    async def find(self, api_version: str, plural: str, namespace: str, name: str) -> Any:
        assert (plural, namespace, name) == ("deployments", "media", "thumb-fn"), (plural, name)
        return self.deployment

    async def apply(
        self, body: dict[str, Any], plural: str, *, field_manager: str | None = None
    ) -> dict[str, Any]:
        self.applied.append((body, field_manager))
        return body

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the reconciler called {name} for a refused Function")


def _reconcile(stored: dict[str, Any], cluster: _Cluster) -> Any:
    return asyncio.run(reconcile_function(cluster, copy.deepcopy(stored), CONFIG))  # type: ignore[arg-type]


def test_the_operator_writes_nothing_for_a_refused_pod_template() -> None:
    for stored in (
        doc({"hostNetwork": True}),
        doc({"securityContext": {"runAsUser": 0}, "containers": []}),
        doc({"automountServiceAccountToken": True}),
    ):
        cluster = _Cluster(None)
        result = _reconcile(stored, cluster)
        (outcome,) = result.outcomes
        assert (outcome.type, outcome.status, outcome.reason) == (
            "SpecValid",
            "False",
            "PodTemplateNotAllowed",
        )
        assert outcome.message.startswith("spec.podTemplate."), outcome.message
        assert result.written == [] and cluster.applied == [] and result.generation == 3


def test_pods_an_earlier_version_built_from_a_refused_template_are_stopped() -> None:
    running = {"metadata": {"name": "thumb-fn"}, "spec": {"replicas": 2, "template": {}}}
    cluster = _Cluster(running)
    result = _reconcile(doc({"hostPID": True}), cluster)
    (outcome,) = result.outcomes
    assert outcome.message.endswith("its running instances (Deployment thumb-fn) were stopped")
    # Only replicas, as the autoscaler: the refused template is never applied.
    ((body, manager),) = cluster.applied
    assert manager == names.AUTOSCALER_FIELD_MANAGER
    assert body["spec"] == {"replicas": 0}
    assert result.written == ["Deployment/thumb-fn"]
    stopped = _Cluster({"metadata": {"name": "thumb-fn"}, "spec": {"replicas": 0}})
    assert _reconcile(doc({"hostPID": True}), stopped).written == [] and not stopped.applied


def test_the_autoscaler_leaves_a_refused_function_stopped() -> None:
    asks = doc({"automountServiceAccountToken": True}, scaling={"minInstances": 2})

    def scaled(allowed: bool) -> list[Any]:
        cluster = _Cluster(None)
        autoscaler = Autoscaler(
            cluster,  # type: ignore[arg-type]
            platform_namespace="platform",
            allow_service_account_token=allowed,
        )
        autoscaler.deployments.objects["media/thumb-fn"] = {"spec": {"replicas": 0}}
        autoscaler.functions.objects["media/thumb"] = asks
        asyncio.run(autoscaler.tick())
        return [body["spec"] for body, _ in cluster.applied]

    assert scaled(allowed=False) == []
    assert scaled(allowed=True) == [{"replicas": 2}]


def test_runtime_token_secret_env_and_fingerprint() -> None:
    thumb = function({}, environment={"KFAAS_RUNTIME_TOKEN": "chosen-by-the-user"})
    token = runtimetoken.derive(KEY, "media", "thumb")
    secret = fn.make_token_secret(thumb, "u-1", CONFIG)
    assert secret is not None
    assert secret["metadata"]["name"] == "thumb-fn-token"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert base64.b64decode(secret["data"]["token"]).decode() == token
    deployment = fn.make_deployment(thumb, "u-1", CONFIG)
    env = _pod(deployment)["spec"]["containers"][0]["env"]
    tokens = [entry for entry in env if entry["name"] == runtimetoken.TOKEN_ENV]
    assert tokens == [
        {
            "name": runtimetoken.TOKEN_ENV,
            "valueFrom": {"secretKeyRef": {"name": "thumb-fn-token", "key": "token"}},
        }
    ]
    annotations = _pod(deployment)["metadata"]["annotations"]
    assert annotations[names.RUNTIME_TOKEN_ANNOTATION] == runtimetoken.fingerprint(token)
    assert token not in str(deployment)
    # A new platform key rolls the pods.
    rotated = OperatorConfig(platform_namespace="platform", runtime_token_key="another")
    assert _pod(fn.make_deployment(thumb, "u-1", rotated)) != _pod(deployment)
    # Without a key (an operator started by hand) there is no token at all.
    assert fn.make_token_secret(thumb, "u-1", OperatorConfig()) is None


def test_tokens_are_per_function_and_per_key() -> None:
    token = runtimetoken.derive(KEY, "media", "thumb")
    assert len(token) == 64 and token == runtimetoken.derive(KEY, "media", "thumb")
    assert token != runtimetoken.derive(KEY, "media", "other")
    assert token != runtimetoken.derive(KEY, "other", "thumb")
    assert token != runtimetoken.derive("another", "media", "thumb")
    # "a/b" + "c" and "a" + "b/c" cannot collide: names are DNS labels, without "/".
    assert runtimetoken.matches(token, token)
    for wrong in (None, "", token[:-1], token.upper(), token + "0", "é" * 64):
        assert not runtimetoken.matches(token, wrong)
    assert len({runtimetoken.new_key() for _ in range(10)}) == 10


# -- egress ------------------------------------------------------------------------------------


def _egress(config: OperatorConfig) -> list[dict[str, Any]]:
    policy = fn.make_network_policy(function({}), "u-1", config)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    rules: list[dict[str, Any]] = policy["spec"]["egress"]
    return rules


def test_default_egress_is_dns_the_gateway_and_the_internet_without_metadata() -> None:
    dns, gateway, anywhere = _egress(CONFIG)
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    (gateway_peer,) = gateway["to"]
    assert gateway_peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "platform"
    }
    assert gateway_peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    assert gateway["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert anywhere["to"] == [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}},
        {"ipBlock": {"cidr": "::/0", "except": ["fd00:ec2::254/128", "fe80::/10"]}},
    ]
    # Nothing selects the platform namespace as a whole: its Redis and Kafka are not reachable.
    assert all("podSelector" in peer for rule in (dns, gateway) for peer in rule["to"])


def test_denied_ranges_and_the_api_server_are_cut_out_of_anywhere() -> None:
    egress = EgressConfig(
        denied_cidrs=("10.244.0.0/16", "10.96.0.0/12", "fd10::/64"),
        api_server_cidrs=("172.18.0.2/32",),
    )
    config = OperatorConfig(platform_namespace="platform", egress=egress)
    anywhere = _egress(config)[2]["to"]
    assert anywhere[0]["ipBlock"]["except"] == [
        "10.244.0.0/16",
        "10.96.0.0/12",
        "169.254.0.0/16",
        "172.18.0.2/32",
    ]
    assert anywhere[1]["ipBlock"]["except"] == ["fd00:ec2::254/128", "fd10::/64", "fe80::/10"]


def test_what_the_platform_allows_is_added() -> None:
    egress = EgressConfig(
        allow_platform_namespace=True,
        allow_api_server=True,
        allow_metadata=True,
        api_server_cidrs=("172.18.0.2/32",),
        allowed_cidrs=("169.254.20.10/32",),
        gateway_ports=(8080, 8081),
    )
    config = OperatorConfig(platform_namespace="platform", egress=egress)
    _dns, gateway, anywhere, platform, api_server, allowed = _egress(config)
    assert gateway["ports"] == [
        {"protocol": "TCP", "port": 8080},
        {"protocol": "TCP", "port": 8081},
    ]
    assert anywhere["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]
    assert platform["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "platform"}}}
    ]
    assert api_server["to"] == [{"ipBlock": {"cidr": "172.18.0.2/32"}}]
    assert allowed["to"] == [{"ipBlock": {"cidr": "169.254.20.10/32"}}]


def test_egress_policy_can_be_turned_off() -> None:
    config = OperatorConfig(egress=EgressConfig(enabled=False))
    policy = fn.make_network_policy(function({}), "u-1", config)
    assert policy["spec"]["policyTypes"] == ["Ingress"] and "egress" not in policy["spec"]


def test_operator_settings_from_the_environment() -> None:
    config = OperatorConfig.from_env(
        {
            "KFAAS_RUNTIME_TOKEN_KEY": "s3cr3t-key",
            "KFAAS_ALLOW_SERVICE_ACCOUNT_TOKEN": "true",
            "KFAAS_EGRESS_DENIED_CIDRS": "10.244.0.0/16, 10.96.0.1/12",
            "KFAAS_EGRESS_ALLOW_API_SERVER": "false",
            "KFAAS_EGRESS_GATEWAY_PORTS": "8080,9000",
            "KFAAS_EGRESS_DNS_POD_LABELS": "k8s-app=coredns",
        }
    )
    assert config.runtime_token_key == "s3cr3t-key" and "s3cr3t" not in repr(config)
    assert config.allow_service_account_token
    assert config.egress.denied_cidrs == ("10.244.0.0/16", "10.96.0.0/12")
    assert config.egress.gateway_ports == (8080, 9000)
    assert config.egress.dns_pod_labels == (("k8s-app", "coredns"),)
    defaults = OperatorConfig.from_env({})
    assert defaults.runtime_token_key is None and not defaults.allow_service_account_token
    assert defaults.egress == EgressConfig()
    for variable, value in (
        ("KFAAS_EGRESS_DENIED_CIDRS", "10.0.0.0/8,nonsense"),
        ("KFAAS_EGRESS_ALLOW_METADATA", "sometimes"),
        ("KFAAS_EGRESS_GATEWAY_PORTS", "http"),
    ):
        with pytest.raises(ValueError, match=variable):
            OperatorConfig.from_env({variable: value})
