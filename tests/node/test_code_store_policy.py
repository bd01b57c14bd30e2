"""The code store behind NetworkPolicies really enforced on the real node (ADR 025).

Its policy admits the release's gateways and pods labelled `kfaas.dev/component: runtime` on
8090 and no one else (the per-digest capability is the boundary; the policy the second wall),
and a zip function still starts with every policy enforced: its init container reaches the store
through the function's egress policy and the store's ingress policy.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from services.network_policy import NetworkPolicyEnforcer

from node.kfaas_release import PLATFORM_NAMESPACE, RELEASE, Release
from node.test_code_store import ROLE, _invoke, _zip
from node.test_network_policy import KUBECTL, WAIT, Pods, _image

STORE_PORT = 8090


@pytest.fixture(scope="module")
def neighbours(
    cluster_service: Any, release: Release, network_policy_enforcer: NetworkPolicyEnforcer
) -> Iterator[Pods]:
    """A namespace with a pod wearing no kfaas label and one wearing the runtime's."""
    namespace = f"csnp-{uuid.uuid4().hex[:6]}"
    kubeconfig = Path(cluster_service.kubeconfig)
    subprocess.run([KUBECTL, f"--kubeconfig={kubeconfig}", "create", "namespace", namespace],
                   check=True, capture_output=True)  # fmt: skip
    found = Pods(kubeconfig, _image(cluster_service), namespace)
    found.apply(
        found.pod("stranger", {"app": "stranger"}, WAIT),
        found.pod("runtime-label", {"kfaas.dev/component": "runtime"}, WAIT),
    )
    found.kubectl("wait", "--for=condition=Ready", "--timeout=120s", "pod", "--all")
    try:
        yield found
    finally:
        subprocess.run([KUBECTL, f"--kubeconfig={kubeconfig}", "delete", "namespace",
                        namespace, "--wait=false"], capture_output=True)  # fmt: skip


def test_only_gateways_and_runtime_pods_reach_the_store(
    cluster_service: Any, release: Release, neighbours: Pods
) -> None:
    store = release.kubectl.json("-n", PLATFORM_NAMESPACE, "get", "pod", f"{RELEASE}-code-store-0")
    address = str(store["status"]["podIP"])
    assert neighbours.settles("stranger", address, False, port=STORE_PORT)
    assert neighbours.settles("runtime-label", address, True, port=STORE_PORT)
    platform = Pods(Path(cluster_service.kubeconfig), "", PLATFORM_NAMESPACE)
    assert platform.settles(f"deploy/{RELEASE}-gateway", address, True, port=STORE_PORT)


@pytest.mark.skip(
    reason="on this test node a function pod cannot resolve names under enforcement: CoreDNS runs "
    "as a host process on 10.88.0.1 (the API server's address, which the function egress policy "
    "denies), not as a kube-system pod the policy's DNS rule admits; the init container reaches "
    "the store by its Service name (docs/testing.md, 'NetworkPolicies')"
)
def test_a_zip_function_starts_with_every_policy_enforced(
    release: Release, network_policy_enforcer: NetworkPolicyEnforcer
) -> None:
    release.allow_deploys()
    name = f"zip-np-{uuid.uuid4().hex[:6]}"
    client = release.lambda_client()
    client.create_function(
        FunctionName=release.qualified(name), Role=ROLE, Runtime="python3.11",
        Handler="app.handler", Code={"ZipFile": _zip("policed")},
    )  # fmt: skip
    try:
        release.wait_ready(name, timeout=100)
        assert _invoke(release, name)["version"] == "policed"
    finally:
        client.delete_function(FunctionName=release.qualified(name))
