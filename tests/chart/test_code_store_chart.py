"""The chart's code store (ADR 025): a StatefulSet of one on a kept claim, its key kept across
upgrades, list-only RBAC, a NetworkPolicy for gateways and function pods, and the store's address
and key in the gateway's and the operator's environment; off, nothing of it is rendered."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from chart import test_chart
from chart.platform import CHART, Platform
from chart.test_gateway_exposure import _env, _notes, _objects, _one

# The chart applied to the kwok control plane, as test_chart's RBAC tests use it.
platform = test_chart.platform

STORE = "kfaas-code-store"
URL = "http://kfaas-code-store.kfaas-system.svc:8090"
KEY_REF = {"secretKeyRef": {"name": "kfaas-code-store-key", "key": "key"}}


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = _one(objects, "StatefulSet", STORE)["spec"]["template"]["spec"]
    return pod


def test_the_store_is_one_hardened_replica_on_a_claim(helm: Path) -> None:
    objects = _objects(helm)
    statefulset = _one(objects, "StatefulSet", STORE)
    assert statefulset["spec"]["replicas"] == 1
    pod = _pod(objects)
    (container,) = pod["containers"]
    assert container["command"] == ["kfaas", "code-store"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["ports"] == [{"name": "http", "containerPort": 8090, "protocol": "TCP"}]
    env = _env(container)
    assert env["KFAAS_CODE_STORE_KEY"] == KEY_REF
    assert env["KFAAS_CODE_STORE_GC_INTERVAL_SECONDS"] == "3600"
    assert env["KFAAS_CODE_STORE_GC_GRACE_SECONDS"] == "3600"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["code"]["persistentVolumeClaim"] == {"claimName": STORE}
    claim = _one(objects, "PersistentVolumeClaim", STORE)
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in claim["spec"]  # the cluster's default StorageClass
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    service = _one(objects, "Service", STORE)
    assert service["spec"]["ports"][0]["port"] == 8090


def test_the_key_secret_is_kept_and_both_sides_get_address_and_key(helm: Path) -> None:
    objects = _objects(helm)
    secret = _one(objects, "Secret", "kfaas-code-store-key")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(secret["data"]["key"]) > 40
    for name in ("kfaas-gateway", "kfaas-operator"):
        deployment = _one(objects, "Deployment", name)
        env = _env(deployment["spec"]["template"]["spec"]["containers"][0])
        assert env["KFAAS_CODE_STORE_URL"] == URL, name
        assert env["KFAAS_CODE_STORE_KEY"] == KEY_REF, name
        assert "app.kubernetes.io/component=code-store" in env["KFAAS_CODE_STORE_POD_LABELS"]
    # Not the runtime token key: a leaked store key must not open the runtimes.
    assert KEY_REF["secretKeyRef"]["name"] != "kfaas-runtime-token-key"


def test_garbage_collection_may_only_list(helm: Path) -> None:
    objects = _objects(helm)
    role = _one(objects, "ClusterRole", STORE)
    assert role["rules"] == [
        {
            "apiGroups": ["kfaas.dev"],
            "resources": ["functions", "functionversions"],
            "verbs": ["list"],
        },
        {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": ["list"]},
    ]
    binding = _one(objects, "ClusterRoleBinding", STORE)
    assert binding["subjects"][0]["name"] == STORE
    namespaced = _objects(helm, "watchNamespace=team-a")
    assert _one(namespaced, "Role", STORE)["metadata"]["namespace"] == "team-a"
    assert not [
        o for o in namespaced if o["kind"] == "ClusterRole" and o["metadata"]["name"] == STORE
    ]


def test_persistence_values(helm: Path, tmp_path: Path) -> None:
    static = _one(
        _objects(helm, "codeStore.persistence.storageClass=-"), "PersistentVolumeClaim", STORE
    )
    assert static["spec"]["storageClassName"] == ""
    named = _objects(
        helm, "codeStore.persistence.storageClass=fast", "codeStore.persistence.size=50Gi"
    )
    claim = _one(named, "PersistentVolumeClaim", STORE)
    assert (claim["spec"]["storageClassName"], claim["spec"]["resources"]["requests"]) == (
        "fast",
        {"storage": "50Gi"},
    )
    existing = _objects(helm, "codeStore.persistence.existingClaim=my-claim")
    assert not [o for o in existing if o["kind"] == "PersistentVolumeClaim"]
    volumes = {v["name"]: v for v in _pod(existing)["volumes"]}
    assert volumes["code"]["persistentVolumeClaim"] == {"claimName": "my-claim"}

    ephemeral = _objects(helm, "codeStore.persistence.enabled=false")
    assert not [o for o in ephemeral if o["kind"] == "PersistentVolumeClaim"]
    volumes = {v["name"]: v for v in _pod(ephemeral)["volumes"]}
    assert volumes["code"] == {"name": "code", "emptyDir": {}}
    notes = _notes(helm, tmp_path / "ephemeral", "codeStore.persistence.enabled=false")
    assert "lost" in notes and "kfaas-code-store pod restarts" in notes
    assert "codeStore" not in _notes(helm, tmp_path / "default", "redis.url=redis://r:6379")


def test_the_policy_admits_gateways_and_function_pods_on_8090(helm: Path) -> None:
    policy = _one(
        _objects(helm, "functions.egress.apiServerCIDRs={172.18.0.2/32}"), "NetworkPolicy", STORE
    )
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8090}]
    peers = ingress["from"]
    assert peers[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    assert "namespaceSelector" not in peers[0]  # the release's own gateways only
    assert peers[1:] == [
        {
            "namespaceSelector": {},
            "podSelector": {"matchLabels": {"kfaas.dev/component": component}},
        }
        # A published version's pods too, and provisioned instances' (ADR 030).
        for component in (
            "runtime",
            "version-runtime",
            "provisioned-runtime",
            "provisioned-version-runtime",
        )
    ]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    dns, api_server = policy["spec"]["egress"]
    assert {port["port"] for port in dns["ports"]} == {53}
    assert api_server == {"to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}]}
    # The API server's addresses unknown: egress stays open rather than stopping the sweep.
    policy = _one(_objects(helm), "NetworkPolicy", STORE)
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_disabled_renders_nothing_and_the_operator_refuses_zips(helm: Path, tmp_path: Path) -> None:
    objects = _objects(helm, "codeStore.enabled=false")
    assert not [o for o in objects if "code-store" in o["metadata"]["name"]]
    for name in ("kfaas-gateway", "kfaas-operator"):
        deployment = _one(objects, "Deployment", name)
        env = _env(deployment["spec"]["template"]["spec"]["containers"][0])
        assert "KFAAS_CODE_STORE_URL" not in env
    notes = _notes(helm, tmp_path, "codeStore.enabled=false")
    assert "codeStore.enabled is false" in notes


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("codeStore.persistence.size=lots", "size"),
        ("codeStore.persistence.storageClass=Fast_SSD", "storageClass"),
        ("codeStore.gc.intervalSeconds=0", "intervalSeconds"),
        ("codeStore.replicas=2", "replicas"),
    ],
)
def test_bad_code_store_values_are_refused(helm: Path, value: str, words: str) -> None:
    done = subprocess.run(
        [str(helm), "template", "kfaas", str(CHART), "--set", value],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and words in done.stderr, (value, done.stderr)


STORE_ALLOWED = [
    ("list", "functions.kfaas.dev"),
    ("list", "functionversions.kfaas.dev"),
    ("list", "deployments.apps"),
    ("list", "replicasets.apps"),
]
STORE_REFUSED = [
    ("watch", "functions.kfaas.dev"),  # fresh lists only, never a cache
    ("get", "functions.kfaas.dev"),
    ("patch", "functions.kfaas.dev"),
    ("delete", "functionversions.kfaas.dev"),
    ("get", "secrets"),
    ("list", "secrets"),
    ("list", "pods"),
    ("patch", "deployments.apps"),
    ("create", "events"),
]


def test_the_stores_account_may_list_what_it_marks_and_nothing_else(platform: Platform) -> None:
    for verb, resource in STORE_ALLOWED:
        assert test_chart._can(platform, STORE, verb, resource, "default"), (verb, resource)
    for verb, resource in STORE_REFUSED:
        assert not test_chart._can(platform, STORE, verb, resource, "default"), (verb, resource)
