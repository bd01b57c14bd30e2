"""NetworkPolicies really enforced on the real node (kube-router: services.network_policy).

First the enforcer itself, with plain pods: a server, a client the policy admits and one it does
not, each connection tried from inside a pod (the host is always let through: see the service
module). Then kfaas's own policies as the chart and the operator write them: a pod outside the
allowed set cannot reach a function's runtime port, the gateway can (it invokes the function).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from services import cluster_build
from services.network_policy import NetworkPolicyEnforcer, leftovers
from waiting import NeverHappened, eventually

from node.kfaas_release import PLATFORM_NAMESPACE, RELEASE, Release

PORT = 8080
KUBECTL = str(cluster_build.bin_dir() / "kubectl")  # no version skew (docs/testing.md)
# Exits 0 when a TCP connection to argv[1]:argv[2] opens within 2 s, 1 otherwise.
CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()\n"
    "except OSError as error:\n"
    "    print(type(error).__name__, error)\n"
    "    sys.exit(1)\n"
)
SERVE = (
    "import signal, socketserver, sys\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "class Hello(socketserver.BaseRequestHandler):\n"
    "    def handle(self): self.request.sendall(b'hello')\n"
    f"socketserver.TCPServer(('0.0.0.0', {PORT}), Hello).serve_forever()\n"
)
WAIT = "import signal, sys\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\nsignal.pause()\n"


class Pods:
    """kubectl against the node's cluster, in one throw-away namespace."""

    def __init__(self, kubeconfig: Path, image: str, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.image = image
        self.namespace = namespace

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            [KUBECTL, f"--kubeconfig={self.kubeconfig}", "-n", self.namespace, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}:\n{done.stderr}")
        return done.stdout

    def apply(self, *documents: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps({"kind": "List", "apiVersion": "v1",
                                                          "items": list(documents)}))  # fmt: skip

    def pod(self, name: str, labels: dict[str, str], program: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "main",
                        "image": self.image,
                        "imagePullPolicy": "Never",
                        "command": ["python3", "-c", program],
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
            },
        }

    def ip(self, name: str) -> str:
        return self.kubectl("get", "pod", name, "-o", "jsonpath={.status.podIP}").strip()

    def connects(self, client: str, address: str, port: int = PORT) -> bool:
        done = subprocess.run(
            [KUBECTL, f"--kubeconfig={self.kubeconfig}", "-n", self.namespace, "exec", client,
             "--", "python3", "-c", CONNECT, address, str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if done.returncode not in (0, 1):
            raise AssertionError(f"kubectl exec {client} failed ({done.returncode}):{done.stderr}")
        return done.returncode == 0

    def settles(self, client: str, address: str, expected: bool, port: int = PORT) -> bool:
        """Whether the connection's outcome becomes `expected` within 20 s (policies apply
        asynchronously) — and stays so for the next two tries."""
        try:
            eventually(
                lambda: self.connects(client, address, port) == expected,
                within=20, what=f"{client} → {address}:{port} {expected}", interval=0,
            )  # fmt: skip
        except NeverHappened:
            return False
        return all(self.connects(client, address, port) == expected for _ in range(2))


def _image(cluster: Any) -> str:
    image = cluster.environment().get("KFAAS_IMAGE") or os.environ.get("KFAAS_IMAGE")
    if not image:
        pytest.fail("the node imported no kfaas image (KFAAS_IMAGE): nothing with Python to run")
    return str(image)


@pytest.fixture(scope="module")
def pods(cluster_service: Any, network_policy_enforcer: NetworkPolicyEnforcer) -> Iterator[Pods]:
    namespace = f"netpol-{uuid.uuid4().hex[:6]}"
    kubeconfig = Path(cluster_service.kubeconfig)
    subprocess.run([KUBECTL, f"--kubeconfig={kubeconfig}", "create", "namespace", namespace],
                   check=True, capture_output=True)  # fmt: skip
    found = Pods(kubeconfig, _image(cluster_service), namespace)
    found.apply(
        found.pod("server", {"app": "server"}, SERVE),
        found.pod("friend", {"app": "client", "access": "server"}, WAIT),
        found.pod("stranger", {"app": "client"}, WAIT),
    )
    found.kubectl("wait", "--for=condition=Ready", "--timeout=120s", "pod", "--all")
    try:
        yield found
    finally:
        subprocess.run([KUBECTL, f"--kubeconfig={kubeconfig}", "delete", "namespace",
                        namespace, "--wait=false"], capture_output=True)  # fmt: skip


ONLY_FRIENDS: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "only-friends"},
    "spec": {
        "podSelector": {"matchLabels": {"app": "server"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [{"podSelector": {"matchLabels": {"access": "server"}}}],
                "ports": [{"protocol": "TCP", "port": PORT}],
            }
        ],
    },
}


def test_without_a_policy_every_pod_reaches_the_server(pods: Pods) -> None:
    server = pods.ip("server")
    assert pods.settles("friend", server, True)
    assert pods.settles("stranger", server, True)


def test_a_policy_admits_only_the_labelled_pod(pods: Pods) -> None:
    server = pods.ip("server")
    pods.apply(ONLY_FRIENDS)
    try:
        assert pods.settles("stranger", server, False), "the stranger still reaches the server"
        assert pods.settles("friend", server, True), "the admitted pod lost the server"
    finally:
        pods.kubectl("delete", "networkpolicy", "only-friends")
    assert pods.settles("stranger", server, True), "deleting the policy did not lift it"


def test_a_policy_admits_only_its_ports(pods: Pods) -> None:
    other_port = {**ONLY_FRIENDS, "metadata": {"name": "other-port"}}
    other_port["spec"] = {**ONLY_FRIENDS["spec"], "ingress": [{"ports": [{"port": PORT + 1}]}]}
    pods.apply(other_port)
    try:
        assert pods.settles("friend", pods.ip("server"), False)
    finally:
        pods.kubectl("delete", "networkpolicy", "other-port")


def test_an_egress_policy_stops_the_client(pods: Pods) -> None:
    no_egress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "no-egress"},
        "spec": {"podSelector": {"matchLabels": {"access": "server"}}, "policyTypes": ["Egress"]},
    }
    pods.apply(no_egress)
    try:
        assert pods.settles("friend", pods.ip("server"), False)
    finally:
        pods.kubectl("delete", "networkpolicy", "no-egress")
    assert pods.settles("friend", pods.ip("server"), True)


def test_stopping_the_enforcer_restores_the_host(
    pods: Pods, network_policy_enforcer: NetworkPolicyEnforcer
) -> None:
    pods.apply(ONLY_FRIENDS)  # so that there are policy chains and sets to remove
    try:
        assert pods.settles("stranger", pods.ip("server"), False)
        network_policy_enforcer.down()
        assert leftovers() == []
        assert pods.settles("stranger", pods.ip("server"), True)
    finally:
        network_policy_enforcer.up()
        pods.kubectl("delete", "networkpolicy", "only-friends")


# -- kfaas's own policies, as the chart installs them and the operator writes them ------------

HELLO = "def handler(event, context):\n    return {'hello': event.get('who', 'world')}\n"


@pytest.fixture(scope="module")
def function(
    release: Release, network_policy_enforcer: NetworkPolicyEnforcer
) -> Iterator[tuple[str, str]]:
    """A function with a pod kept running (minInstances: 1): its name and the pod's address."""
    name = release.function({"app.py": HELLO}, scaling={"minInstances": 1})
    pod = eventually(lambda: release.running_pods(name), within=120, what=f"a pod of {name}")[0]
    try:
        yield name, str(pod["status"]["podIP"])
    finally:
        release.kubectl("-n", release.namespace, "delete", "--wait=false", f"function/{name}")


@pytest.fixture(scope="module")
def callers(cluster_service: Any, release: Release, pods: Pods) -> Iterator[Pods]:
    """Pods in the function's namespace: a stranger and an impostor wearing the gateway's labels
    (the `pods` namespace gets its own impostor)."""
    kubeconfig = Path(cluster_service.kubeconfig)
    e2e = Pods(kubeconfig, pods.image, release.namespace)
    gateway_labels = {"app.kubernetes.io/name": "kfaas", "app.kubernetes.io/instance": RELEASE,
                      "app.kubernetes.io/component": "gateway"}  # fmt: skip
    e2e.apply(
        e2e.pod("np-stranger", {"app": "np-stranger"}, WAIT),
        e2e.pod("np-fake-gateway", gateway_labels, WAIT),
    )
    pods.apply(pods.pod("fake-gateway", gateway_labels, WAIT))
    # A pod of the platform namespace that is not the gateway (an in-cluster Prometheus, say).
    platform = Pods(kubeconfig, pods.image, PLATFORM_NAMESPACE)
    platform.apply(platform.pod("np-platform-stranger", {"app": "np-platform-stranger"}, WAIT))
    e2e.kubectl("wait", "--for=condition=Ready", "--timeout=120s", "pod", "np-stranger",
                "np-fake-gateway")  # fmt: skip
    pods.kubectl("wait", "--for=condition=Ready", "--timeout=120s", "pod", "fake-gateway")
    platform.kubectl("wait", "--for=condition=Ready", "--timeout=120s", "pod",
                     "np-platform-stranger")  # fmt: skip
    try:
        yield e2e
    finally:
        e2e.kubectl("delete", "pod", "np-stranger", "np-fake-gateway", "--wait=false")
        platform.kubectl("delete", "pod", "np-platform-stranger", "--wait=false")


def test_a_pod_outside_the_allowed_set_cannot_reach_a_function(
    function: tuple[str, str],
    callers: Pods,
    pods: Pods,
    network_policy_enforcer: NetworkPolicyEnforcer,
) -> None:
    _, address = function
    # The same pods reach a pod no policy selects: only kfaas's policy can be what stops them.
    assert pods.settles("stranger", pods.ip("server"), True)
    assert callers.settles("np-stranger", address, False), "from the function's namespace"
    assert pods.settles("stranger", address, False), "from another namespace"
    # The gateway's labels are not enough outside the platform namespace.
    assert callers.settles("np-fake-gateway", address, False)
    assert pods.settles("fake-gateway", address, False)
    # Nor is the platform namespace without them: only the gateway's pods get in.
    platform = Pods(callers.kubeconfig, "", PLATFORM_NAMESPACE)
    assert platform.settles("np-platform-stranger", address, False)
    # And it is the policy: with nobody enforcing it, the stranger gets through.
    network_policy_enforcer.down()
    try:
        assert callers.settles("np-stranger", address, True)
    finally:
        network_policy_enforcer.up()
    assert callers.settles("np-stranger", address, False)


def test_the_gateway_reaches_the_function_and_invokes_it(
    cluster_service: Any, release: Release, function: tuple[str, str]
) -> None:
    name, address = function
    platform = Pods(Path(cluster_service.kubeconfig), "", PLATFORM_NAMESPACE)
    assert platform.settles(f"deploy/{RELEASE}-gateway", address, True)
    answer = release.lambda_client().invoke(
        FunctionName=release.qualified(name), Payload=json.dumps({"who": "policy"}).encode()
    )
    assert "FunctionError" not in answer
    assert json.loads(answer["Payload"].read()) == {"hello": "policy"}


def test_only_invoke_from_peers_reach_the_gateways_invoke_api(
    release: Release, callers: Pods, pods: Pods
) -> None:
    """networkPolicies.invokeFrom (default: pollers and function pods) guards port 8080; HTTP
    triggers (8081) are open to any pod (gatewayFrom: [])."""
    gateway_pod = release.kubectl.json(
        "-n", PLATFORM_NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=gateway"
    )["items"][0]
    address = str(gateway_pod["status"]["podIP"])
    assert callers.settles("np-stranger", address, False, port=8080)
    assert pods.settles("stranger", address, False, port=8080)
    assert callers.settles("np-stranger", address, True, port=8081)
    callers.apply(callers.pod("np-runtime-label", {"kfaas.dev/component": "runtime"}, WAIT))
    try:
        callers.kubectl("wait", "--for=condition=Ready", "--timeout=120s", "pod",
                        "np-runtime-label")  # fmt: skip
        assert callers.settles("np-runtime-label", address, True, port=8080)
    finally:
        callers.kubectl("delete", "pod", "np-runtime-label", "--wait=false")
