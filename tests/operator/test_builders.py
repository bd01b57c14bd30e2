"""The operator's pure builders: a manifest and the config in, Kubernetes objects out."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kfaas.code import code_digest, config_map_files
from kfaas.manifests import EventSourceMapping, Function, parse_manifest
from kfaas.operator import names
from kfaas.operator.config import OperatorConfig
from kfaas.operator.resources import function as fn
from kfaas.operator.resources import mapping as esm
from kfaas.operator.resources.common import desired_hash, live_hash

CONFIG = OperatorConfig(image="registry.example/kfaas:1.0", platform_namespace="platform")
UID = "0f0e-uid"


def function(**spec: Any) -> Function:
    doc = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "thumbnail", "namespace": "media"},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(e, c): return 1\n"}},
        }
        | spec,
    }
    manifest = parse_manifest(doc)
    assert isinstance(manifest, Function)
    return manifest


def mapping(**spec: Any) -> EventSourceMapping:
    doc = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "uploads", "namespace": "media"},
        "spec": {
            "functionName": "thumbnail",
            "kafka": {"bootstrapServers": "k1:9092", "topic": "uploads"},
        }
        | spec,
    }
    manifest = parse_manifest(doc)
    assert isinstance(manifest, EventSourceMapping)
    return manifest


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return result


def env(deployment: dict[str, Any]) -> dict[str, Any]:
    return {
        item["name"]: item.get("value", item.get("valueFrom"))
        for item in container(deployment)["env"]
    }


def test_deployment_runs_the_runtime_with_adr_002_environment() -> None:
    deployment = fn.make_deployment(function(environment={"LOG_LEVEL": "info"}), UID, CONFIG)
    assert container(deployment)["command"] == ["kfaas", "runtime"]
    assert container(deployment)["image"] == "registry.example/kfaas:1.0"
    variables = env(deployment)
    assert variables["_HANDLER"] == "app.handler"
    assert variables["LAMBDA_TASK_ROOT"] == "/var/task"
    assert variables["AWS_LAMBDA_FUNCTION_NAME"] == "thumbnail"
    assert variables["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert variables["KFAAS_RUNTIME"] == "python3.11"
    assert variables["KFAAS_RUNTIME_HOST"] == "0.0.0.0"
    assert variables["KFAAS_RUNTIME_PORT"] == "8080"
    assert variables["KFAAS_NAMESPACE"] == "media"
    assert variables["LOG_LEVEL"] == "info"
    assert variables["AWS_LAMBDA_LOG_STREAM_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_deployment_never_sets_replicas_and_is_owned_by_the_function() -> None:
    deployment = fn.make_deployment(function(), UID, CONFIG)
    assert "replicas" not in deployment["spec"]
    (owner,) = deployment["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "name": "thumbnail",
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_deployment_is_hardened() -> None:
    deployment = fn.make_deployment(function(), UID, CONFIG)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    security = container(deployment)["securityContext"]
    assert security == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_memory_probes_code_mount_and_tmp() -> None:
    spec_function = function(memoryMB=512, timeoutSeconds=30, concurrency={"perInstance": 2})
    deployment = fn.make_deployment(spec_function, UID, CONFIG)
    runtime = container(deployment)
    assert runtime["resources"]["limits"]["memory"] == "1088Mi"  # 2 workers x 512 + 64
    assert runtime["resources"]["requests"]["memory"] == "1088Mi"
    assert runtime["resources"]["requests"]["cpu"] == "579m"  # 1024 MB of 1769 per vCPU
    assert runtime["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert runtime["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    mounts = {m["mountPath"]: m for m in runtime["volumeMounts"]}
    assert mounts["/var/task"]["readOnly"] is True
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}}
    digest = code_digest(spec_function)
    assert volumes["code"]["configMap"]["name"] == f"thumbnail-code-{digest[:10]}"
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 35


def test_code_change_changes_the_pod_template_and_the_config_map() -> None:
    before = fn.make_deployment(function(), UID, CONFIG)
    changed = function(code={"inline": {"app.py": "def handler(e, c): return 2\n"}})
    after = fn.make_deployment(changed, UID, CONFIG)
    key = names.CODE_SHA256_ANNOTATION
    annotations = (before, after)
    assert (
        annotations[0]["spec"]["template"]["metadata"]["annotations"][key]
        != (annotations[1]["spec"]["template"]["metadata"]["annotations"][key])
    )
    assert desired_hash(before) != desired_hash(after)
    config_map = fn.make_code_config_map(changed, UID)
    assert config_map is not None
    assert config_map["immutable"] is True
    assert config_map["data"] == {"app.py": "def handler(e, c): return 2\n"}


def test_hash_is_stable_and_carried_in_an_annotation() -> None:
    first = fn.make_deployment(function(), UID, CONFIG)
    second = fn.make_deployment(function(), UID, CONFIG)
    assert live_hash(first) == live_hash(second) == desired_hash(first)


def test_image_code_runs_that_image_without_a_code_volume() -> None:
    deployment = fn.make_deployment(function(code={"image": "registry.example/t:1"}), UID, CONFIG)
    assert container(deployment)["image"] == "registry.example/t:1"
    assert fn.make_code_config_map(function(code={"image": "x:1"}), UID) is None
    volumes = [v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]]
    assert volumes == ["tmp"]


def code_config_map(data: dict[str, str], binary: dict[str, bytes] | None = None) -> Any:
    """A ConfigMap as the API returns it, with the noise a live object carries."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "thumbnail-src", "namespace": "media", "resourceVersion": "7"},
        "data": data,
    }
    if binary:
        body["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    return body


def template_digest(deployment: dict[str, Any]) -> str:
    return str(
        deployment["spec"]["template"]["metadata"]["annotations"][names.CODE_SHA256_ANNOTATION]
    )


def test_config_map_files_are_its_data_and_decoded_binary_data() -> None:
    files = config_map_files(code_config_map({"app.py": "x = 1\n"}, {"model.bin": b"\x00\xff"}))
    assert files == {"app.py": b"x = 1\n", "model.bin": b"\x00\xff"}
    assert config_map_files({"metadata": {"name": "empty"}}) == {}


def test_config_map_code_digest_is_its_files_digest_whatever_the_order() -> None:
    source = {"app.py": "def handler(e, c): return 1\n", "util.py": "X = 1\n"}
    shuffled = dict(reversed(list(source.items())))
    from_config_map = function(code={"configMap": "thumbnail-src"})
    digest = fn.code_sha256(from_config_map, code_config_map(source))
    assert digest == fn.code_sha256(from_config_map, code_config_map(shuffled))
    # The same files inline have the same digest: status.codeSha256 means one thing.
    assert digest == code_digest(function(code={"inline": source}))
    assert digest != code_digest(from_config_map)  # not the ConfigMap's name
    # Text and binary keys both count, and a key moved between them keeps the digest.
    as_binary = code_config_map({"util.py": "X = 1\n"}, {"app.py": source["app.py"].encode()})
    assert fn.code_sha256(from_config_map, as_binary) == digest
    edited = code_config_map({**source, "util.py": "X = 2\n"})
    assert fn.code_sha256(from_config_map, edited) != digest


def test_config_map_edit_changes_the_pod_template() -> None:
    from_config_map = function(code={"configMap": "thumbnail-src"})
    before = fn.make_deployment(
        from_config_map, UID, CONFIG, code=code_config_map({"app.py": "x = 1\n"})
    )
    after = fn.make_deployment(
        from_config_map, UID, CONFIG, code=code_config_map({"app.py": "x = 2\n"})
    )
    assert template_digest(before) != template_digest(after)
    assert desired_hash(before) != desired_hash(after)
    volumes = {v["name"]: v for v in after["spec"]["template"]["spec"]["volumes"]}
    assert volumes["code"]["configMap"]["name"] == "thumbnail-src"
    # Without the ConfigMap's data there is no digest to give the pods.
    with pytest.raises(ValueError, match="thumbnail-src"):
        fn.make_deployment(from_config_map, UID, CONFIG)


def test_env_from_and_pod_template_are_merged() -> None:
    deployment = fn.make_deployment(
        function(
            envFrom=[{"secretRef": {"name": "thumbnail-secrets"}}],
            podTemplate={
                "nodeSelector": {"pool": "functions"},
                "tolerations": [{"key": "fn", "operator": "Exists"}],
                "resources": {"limits": {"cpu": "2", "nvidia.com/gpu": "1"}},
                "metadata": {"labels": {"team": "media"}},
            },
        ),
        UID,
        CONFIG,
    )
    assert container(deployment)["envFrom"] == [{"secretRef": {"name": "thumbnail-secrets"}}]
    pod = deployment["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"pool": "functions"}
    assert pod["spec"]["tolerations"] == [{"key": "fn", "operator": "Exists"}]
    # Memory stays memoryMB's; a CPU limit without a request is also the request.
    assert container(deployment)["resources"] == {
        "requests": {"memory": "192Mi", "cpu": "2"},
        "limits": {"memory": "192Mi", "cpu": "2", "nvidia.com/gpu": "1"},
    }
    assert pod["metadata"]["labels"]["team"] == "media"
    assert pod["metadata"]["labels"][names.FUNCTION_LABEL] == "thumbnail"


def test_service_is_headless_and_selects_the_runtime_pods() -> None:
    service = fn.make_service(function(), UID)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {
        names.FUNCTION_LABEL: "thumbnail",
        names.COMPONENT_LABEL: "runtime",
    }


def test_network_policy_admits_only_gateway_and_pollers() -> None:
    policy = fn.make_network_policy(function(), UID, CONFIG)
    (rule,) = policy["spec"]["ingress"]
    gateway, pollers = rule["from"]
    assert gateway["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "platform"}
    }
    assert gateway["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    assert pollers["podSelector"]["matchLabels"] == {
        names.COMPONENT_LABEL: "poller",
        names.FUNCTION_LABEL: "thumbnail",
    }
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_pod_disruption_budget_only_with_more_than_one_kept_instance() -> None:
    assert fn.make_pod_disruption_budget(function(), UID) is None
    assert fn.make_pod_disruption_budget(function(scaling={"minInstances": 1}), UID) is None
    budget = fn.make_pod_disruption_budget(function(concurrency={"provisioned": 3}), UID)
    assert budget is not None and budget["spec"]["maxUnavailable"] == 1


def test_initial_replicas_is_the_floor() -> None:
    assert fn.initial_replicas(function()) == 0
    assert fn.initial_replicas(function(scaling={"minInstances": 2})) == 2
    # Provisioned instances run in a Deployment of their own (ADR 030, test_provisioned.py).
    assert fn.initial_replicas(function(concurrency={"provisioned": 3})) == 0


def test_names_stay_within_63_characters() -> None:
    long = "a" * 63
    assert len(names.function_workload(long)) <= 63
    assert names.function_workload(long) != names.function_workload("a" * 62 + "b")
    assert names.function_workload("thumbnail") == "thumbnail-fn"


def test_poller_deployment_carries_the_mapping_and_the_gateway() -> None:
    config = OperatorConfig(gateway_url="http://gw.platform.svc:8080")
    deployment = esm.make_poller_deployment(mapping(parallelism=3), UID, config)
    assert deployment["spec"]["replicas"] == 3
    assert container(deployment)["command"] == ["kfaas", "poller"]
    variables = env(deployment)
    assert variables["KFAAS_GATEWAY_URL"] == "http://gw.platform.svc:8080"
    document = json.loads(variables["KFAAS_MAPPING"])
    assert parse_manifest(document) == mapping(parallelism=3)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels[names.FUNCTION_LABEL] == "thumbnail"
    assert labels[names.COMPONENT_LABEL] == "poller"


def test_disabled_mapping_runs_no_poller_and_secrets_stay_references() -> None:
    disabled = esm.make_poller_deployment(mapping(enabled=False), UID, CONFIG)
    assert disabled["spec"]["replicas"] == 0
    with_auth = mapping(
        kafka={
            "bootstrapServers": "k1:9092",
            "topic": "uploads",
            "auth": {
                "mechanism": "SASL_SCRAM_512_AUTH",
                "secretRef": {"name": "kafka-credentials"},
            },
        }
    )
    deployment = esm.make_poller_deployment(with_auth, UID, CONFIG)
    assert "envFrom" not in container(deployment)
    assert env(deployment)["KFAAS_POLLER_SECRETS_DIR"] == esm.SECRETS_DIR
    assert container(deployment)["volumeMounts"][1:] == [
        {
            "name": "secret-0",
            "mountPath": f"{esm.SECRETS_DIR}/kafka-credentials",
            "readOnly": True,
        }
    ]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert volumes[1:] == [
        {
            "name": "secret-0",
            "secret": {"secretName": "kafka-credentials", "optional": True, "defaultMode": 0o440},
        }
    ]
    assert "kafka-credentials" not in json.dumps(esm.make_poller_role(with_auth, UID))


def test_the_poller_mounts_every_secret_its_source_and_destination_name() -> None:
    secured = mapping(
        kafka={
            "bootstrapServers": "k1:9093",
            "topic": "uploads",
            "tls": {"caSecretRef": {"name": "kafka-ca"}},
            "auth": {"mechanism": "BASIC_AUTH", "secretRef": {"name": "kafka-user"}},
        },
        destinationConfig={
            "onFailure": {
                "kafka": {
                    "topic": "dlq",
                    "bootstrapServers": "other:9093",
                    "tls": {"caSecretRef": {"name": "kafka-ca"}},
                    "auth": {
                        "mechanism": "CLIENT_CERTIFICATE_TLS_AUTH",
                        "secretRef": {"name": "dlq-client"},
                    },
                }
            }
        },
    )
    assert esm.referenced_secrets(secured) == ["dlq-client", "kafka-ca", "kafka-user"]
    mounts = container(esm.make_poller_deployment(secured, UID, CONFIG))["volumeMounts"]
    assert [m["mountPath"].rsplit("/", 1)[1] for m in mounts[1:]] == esm.referenced_secrets(secured)
    plain = esm.make_poller_deployment(mapping(), UID, CONFIG)
    assert "KFAAS_POLLER_SECRETS_DIR" not in env(plain)
    assert len(plain["spec"]["template"]["spec"]["volumes"]) == 1


def test_poller_role_allows_only_its_own_mapping_status_and_invoking_its_function() -> None:
    role = esm.make_poller_role(mapping(), UID)
    invoke = [rule for rule in role["rules"] if rule["resources"] == ["functions"]]
    assert invoke == [
        {
            "apiGroups": ["kfaas.dev"],
            "resources": ["functions"],
            "resourceNames": [mapping().spec.function_name],
            "verbs": ["invoke"],
        }
    ]
    for rule in role["rules"]:
        if rule not in invoke:
            assert rule["resourceNames"] == ["uploads"]
            assert set(rule["verbs"]) <= {"get", "patch"}
    binding = esm.make_poller_role_binding(mapping(), UID)
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "uploads-poller", "namespace": "media"}
    ]


def test_source_column() -> None:
    assert esm.source_of(mapping()) == "kafka:uploads"
    redis = mapping(kafka=None, redis={"url": "redis://r:6379/0", "stream": "s"})
    assert esm.source_of(redis) == "redis:s"
