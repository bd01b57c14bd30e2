"""The Helm chart: lint and template clean, documented values, hardened pods, least-privilege RBAC
proven against the real API server, and a hadolint-clean Dockerfile."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from services.cluster import Cluster

from chart.platform import CHART, ROOT, Platform, install, render


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_helm_lint_is_clean(helm: Path) -> None:
    done = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


def test_template_renders_every_component(helm: Path) -> None:
    objects = _documents(render(helm, "kfaas-system", include_crds=False))
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    for expected in [
        ("Deployment", "kfaas-operator"),
        ("Deployment", "kfaas-gateway"),
        ("Service", "kfaas-gateway"),
        ("HorizontalPodAutoscaler", "kfaas-gateway"),
        ("PodDisruptionBudget", "kfaas-gateway"),
        ("ClusterRole", "kfaas-operator"),
        ("ClusterRole", "kfaas-gateway"),
        ("NetworkPolicy", "kfaas-gateway"),
        ("ConfigMap", "kfaas-dashboard"),
        ("ClusterKopfPeering", "kfaas"),
    ]:
        assert expected in kinds
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert deployments["kfaas-operator"]["spec"]["replicas"] == 2
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["command"][0] == "kfaas"


def test_optional_parts_and_namespaced_mode(helm: Path) -> None:
    objects = _documents(
        render(
            helm,
            "kfaas-system",
            "metrics.serviceMonitor.enabled=true",
            "watchNamespace=team-a",
            "gateway.autoscaling.enabled=false",
            include_crds=False,
        )
    )
    kinds = {obj["kind"] for obj in objects}
    assert "ServiceMonitor" in kinds and "KopfPeering" in kinds
    cluster_roles = {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"}
    # CRDs and the reviews the gateway asks for (auth: sigv4) are cluster-scoped; the example
    # roles for API callers are ClusterRoles to bind per namespace.
    assert {
        "kfaas-operator-crds",
        "kfaas-gateway-auth",
        "kfaas-invoker",
        "kfaas-viewer",
        "kfaas-deployer",
    } <= cluster_roles
    assert not {"kfaas-operator", "kfaas-gateway"} & cluster_roles  # those are Roles now
    assert "HorizontalPodAutoscaler" not in kinds


def test_auth_is_sigv4_by_default_with_the_rbac_it_needs(helm: Path) -> None:
    objects = _documents(render(helm, "kfaas-system", include_crds=False))
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    assert {("Role", "kfaas-gateway-credentials"), ("ClusterRole", "kfaas-gateway-auth"),
            ("ClusterRole", "kfaas-invoker"), ("ClusterRole", "kfaas-viewer")} <= kinds  # fmt: skip
    gateway = next(
        o for o in objects if o["kind"] == "Deployment" and "gateway" in o["metadata"]["name"]
    )
    env = {
        e["name"]: e.get("value")
        for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["KFAAS_AUTH"] == "sigv4" and env["KFAAS_AUTH_CACHE_SECONDS"] == "10"
    open_objects = _documents(render(helm, "kfaas-system", "auth=none", include_crds=False))
    names = {o["metadata"]["name"] for o in open_objects}
    assert "kfaas-gateway-credentials" not in names and "kfaas-gateway-auth" not in names
    done = subprocess.run(
        [str(helm), "template", "kfaas", str(CHART), "--set", "auth=iam"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0 and "auth" in done.stderr


def test_crds_ship_with_the_chart(helm: Path) -> None:
    crds = _documents(render(helm, "kfaas-system"))
    names = {obj["metadata"]["name"] for obj in crds if obj["kind"] == "CustomResourceDefinition"}
    assert names == {
        "functions.kfaas.dev",
        "eventsourcemappings.kfaas.dev",
        "functionversions.kfaas.dev",
        "functionaliases.kfaas.dev",
        "schedules.kfaas.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }


def test_values_schema_refuses_bad_values(helm: Path) -> None:
    for value, words in [
        ("operator.replicas=0", "minimum"),
        ("logLevel=loud", "logLevel"),
        ("gateway.service.type=Mesh", "type"),
    ]:
        done = subprocess.run(
            [str(helm), "template", "kfaas", str(CHART), "--set", value],
            capture_output=True,
            text=True,
        )
        assert done.returncode != 0 and words in done.stderr, (value, done.stderr)


def test_every_value_is_documented_with_an_example() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    comments: list[str] = []
    undocumented = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            comments.append(stripped)
            continue
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):\s*(.*)$", line)
        documented = any("Example" in comment for comment in comments)
        if match and match.group(3) and not match.group(3).startswith("#") and not documented:
            undocumented.append(match.group(2))
        if match and match.group(3):
            comments = []
    assert not undocumented, undocumented


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def platform(
    helm: Path, kwok_service: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    installed = install(helm, kwok_service, tmp_path_factory.mktemp("chart"))
    yield installed
    kwok_service.kubectl("delete", "namespace", installed.namespace, "--wait=false")


# That the chart's pods become Ready is shown for real on the real node (tests/node/conftest.py:
# `helm install --wait` with the locally built image), where kwok's pods only pretended to.


OPERATOR_ALLOWED = [
    ("list", "functions.kfaas.dev"),
    ("watch", "eventsourcemappings.kfaas.dev"),
    ("patch", "functions.kfaas.dev/status"),
    ("watch", "functionversions.kfaas.dev"),
    ("patch", "functionversions.kfaas.dev/status"),
    ("watch", "functionaliases.kfaas.dev"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("delete", "deployments.apps"),  # a provisioned Deployment once provisioned is 0 (ADR 030)
    ("create", "configmaps"),
    ("delete", "configmaps"),
    ("watch", "configmaps"),  # a Function's code.configMap: an edit rolls its pods
    ("create", "networkpolicies.networking.k8s.io"),
    ("patch", "secrets"),  # runtime-token Secrets (ADR 011), written, never read
    ("create", "poddisruptionbudgets.policy"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "events"),
    ("patch", "clusterkopfpeerings.kopf.dev"),
    ("invoke", "functions.kfaas.dev"),  # only to grant it to each mapping's pollers (ADR 009)
]
OPERATOR_REFUSED = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("list", "pods"),
    ("create", "pods"),
    ("delete", "functions.kfaas.dev"),
    ("create", "functions.kfaas.dev"),
    ("create", "functionversions.kfaas.dev"),  # published by the gateway only
    ("patch", "functionaliases.kfaas.dev"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("escalate", "roles.rbac.authorization.k8s.io"),
    ("create", "namespaces"),
    ("patch", "nodes"),
]
GATEWAY_ALLOWED = [
    ("watch", "functions.kfaas.dev"),
    # The management API writes kfaas objects as the gateway (ADR 024): PUT, never PATCH.
    ("create", "functions.kfaas.dev"),
    ("update", "functions.kfaas.dev"),
    ("delete", "functions.kfaas.dev"),
    ("create", "functionversions.kfaas.dev"),
    ("delete", "functionversions.kfaas.dev"),
    ("update", "functionaliases.kfaas.dev"),
    ("watch", "functionaliases.kfaas.dev"),
    ("create", "eventsourcemappings.kfaas.dev"),
    ("watch", "eventsourcemappings.kfaas.dev"),
    ("list", "endpointslices.discovery.k8s.io"),
    # auth: sigv4 (ADR 009): bearer tokens and RBAC questions go to the apiserver.
    ("create", "tokenreviews.authentication.k8s.io"),
    ("create", "subjectaccessreviews.authorization.k8s.io"),
]
GATEWAY_REFUSED = [
    ("patch", "functions.kfaas.dev"),
    ("deletecollection", "functions.kfaas.dev"),
    ("get", "secrets"),
    ("create", "deployments.apps"),
    ("list", "pods"),
]


def _can(platform: Platform, account: str, verb: str, resource: str, namespace: str) -> bool:
    done = platform.cluster.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace,
        f"--as=system:serviceaccount:{platform.namespace}:{account}",
        check=False,
    )  # fmt: skip
    return done.stdout.strip() == "yes"


def test_service_accounts_can_do_exactly_what_they_need(platform: Platform) -> None:
    elsewhere = "default"
    for account, allowed, refused in [
        ("kfaas-operator", OPERATOR_ALLOWED, OPERATOR_REFUSED),
        ("kfaas-gateway", GATEWAY_ALLOWED, GATEWAY_REFUSED),
    ]:
        for verb, resource in allowed:
            assert _can(platform, account, verb, resource, elsewhere), (account, verb, resource)
        for verb, resource in refused:
            assert not _can(platform, account, verb, resource, elsewhere), (account, verb, resource)
    # Demand Leases: the gateway writes them, the operator reads them, in the release namespace.
    assert _can(
        platform, "kfaas-gateway", "patch", "leases.coordination.k8s.io", platform.namespace
    )
    assert not _can(platform, "kfaas-gateway", "patch", "leases.coordination.k8s.io", elsewhere)
    # Credential Secrets (auth: sigv4): watched in the release namespace only.
    assert _can(platform, "kfaas-gateway", "watch", "secrets", platform.namespace)
    assert not _can(platform, "kfaas-gateway", "watch", "secrets", elsewhere)
    assert _can(
        platform, "kfaas-operator", "watch", "leases.coordination.k8s.io", platform.namespace
    )
    assert not _can(
        platform, "kfaas-operator", "patch", "leases.coordination.k8s.io", platform.namespace
    )


def test_real_requests_outside_the_grant_are_refused(platform: Platform) -> None:
    kubeconfig = platform.token_kubeconfig("kfaas-gateway")
    done = subprocess.run(
        [
            str(platform.cluster.bin / "kubectl"),
            f"--kubeconfig={kubeconfig}",
            "get",
            "secrets",
            "-A",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "Forbidden" in done.stderr, done.stderr
    done = subprocess.run(
        [
            str(platform.cluster.bin / "kubectl"),
            f"--kubeconfig={kubeconfig}",
            "get",
            "functions",
            "-A",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
