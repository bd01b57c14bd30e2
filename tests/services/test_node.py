"""The real node works like a cluster's node: pods run, resolve cluster names, reach the API server
through the `kubernetes` Service with their ServiceAccount token, reach each other through
ClusterIP Services; and `down` leaves the host as it found it."""

from __future__ import annotations

import json
import os
import textwrap
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import eventually

from services import node_host
from services.base import ServiceError
from services.fixtures import REUSE_CLUSTER
from services.kafka_broker import KafkaBroker
from services.network_policy import CHAIN_PREFIXES
from services.node import NodeCluster
from services.node_config import BRIDGE_ADDRESS, NODE_NAME

pytestmark = pytest.mark.cluster


@pytest.fixture
def namespace(cluster_service: NodeCluster) -> Iterator[str]:
    name = f"node-test-{uuid.uuid4().hex[:8]}"
    cluster_service.kubectl("create", "namespace", name)
    yield name
    cluster_service.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _kfaas_image(node: NodeCluster) -> str:
    image = node.environment().get("KFAAS_IMAGE")
    if image is None:
        pytest.skip("no kfaas image was imported (services.images.kfaas_image is not available)")
    return image


def _run_to_completion(node: NodeCluster, namespace: str, image: str, script: str) -> str:
    """Run a Python script in a pod of the image; its output, after it succeeded."""
    pod = "check"
    node.kubectl(
        "run", pod, f"--namespace={namespace}", f"--image={image}",
        "--image-pull-policy=Never", "--restart=Never", "--command", "--",
        "python3", "-c", textwrap.dedent(script),
    )  # fmt: skip

    def ended() -> str | None:
        phase = str(node.api(f"/api/v1/namespaces/{namespace}/pods/{pod}")["status"]["phase"])
        return phase if phase in ("Succeeded", "Failed") else None

    phase = eventually(ended, within=120, what=f"pod {pod} ending", interval=0.5)
    logs = node.kubectl("logs", f"--namespace={namespace}", pod, check=False)
    assert phase == "Succeeded", f"the pod ended {phase}:\n{logs.stdout}{logs.stderr}"
    return logs.stdout


def test_the_node_is_ready_on_the_bridge_address(cluster_service: NodeCluster) -> None:
    node = json.loads(cluster_service.kubectl("get", "node", NODE_NAME, "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == BRIDGE_ADDRESS == cluster_service.bridge_address
    # In-cluster clients reach the API server at the address the `kubernetes` Service names.
    endpoints = cluster_service.api("/api/v1/namespaces/default/endpoints/kubernetes")
    assert endpoints["subsets"][0]["addresses"][0]["ip"] == BRIDGE_ADDRESS


def test_a_pod_of_the_pause_image_runs(cluster_service: NodeCluster, namespace: str) -> None:
    pause = cluster_service.imported()["pause"]
    cluster_service.kubectl(
        "run", "pause", f"--namespace={namespace}", f"--image={pause}",
        "--image-pull-policy=Never", "--restart=Never",
    )  # fmt: skip
    cluster_service.kubectl(
        "wait", f"--namespace={namespace}", "pod/pause", "--for=condition=Ready", "--timeout=120s"
    )
    pod = json.loads(
        cluster_service.kubectl("get", f"--namespace={namespace}", "pod/pause", "-o", "json").stdout
    )
    assert pod["status"]["podIP"].startswith("10.88.")


def test_a_pod_resolves_the_api_server_and_calls_it_with_its_token(
    cluster_service: NodeCluster, namespace: str
) -> None:
    output = _run_to_completion(
        cluster_service,
        namespace,
        _kfaas_image(cluster_service),
        """
        import json, socket, ssl, urllib.request
        secrets = "/var/run/secrets/kubernetes.io/serviceaccount"
        print(socket.gethostbyname("kubernetes.default.svc.cluster.local"))
        context = ssl.create_default_context(cafile=f"{secrets}/ca.crt")
        request = urllib.request.Request(
            "https://kubernetes.default.svc/apis/authentication.k8s.io/v1/selfsubjectreviews",
            data=json.dumps({"apiVersion": "authentication.k8s.io/v1",
                             "kind": "SelfSubjectReview"}).encode(),
            headers={"Authorization": "Bearer " + open(f"{secrets}/token").read(),
                     "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            print(json.load(answer)["status"]["userInfo"]["username"])
        """,
    )
    address, username = output.split()[-2:]
    assert address == "10.96.0.1"
    assert username == f"system:serviceaccount:{namespace}:default"


def test_a_cluster_ip_service_reaches_its_pod(cluster_service: NodeCluster, namespace: str) -> None:
    image = _kfaas_image(cluster_service)
    cluster_service.kubectl(
        "run", "web", f"--namespace={namespace}", f"--image={image}", "--image-pull-policy=Never",
        "--restart=Never", "--port=8080", "--expose", "--command", "--",
        "python3", "-m", "http.server", "8080", "--directory", "/etc",
    )  # fmt: skip
    cluster_service.kubectl(
        "wait", f"--namespace={namespace}", "pod/web", "--for=condition=Ready", "--timeout=120s"
    )
    # From another pod, by the Service's DNS name.
    output = _run_to_completion(
        cluster_service,
        namespace,
        image,
        f"""
        import time, urllib.request
        url = "http://web.{namespace}.svc.cluster.local:8080/hostname"
        for attempt in range(60):  # kube-proxy programs a new Service's rules within seconds
            try:
                with urllib.request.urlopen(url, timeout=10) as answer:
                    print(answer.status, answer.read().decode().strip())
                    break
            except OSError as error:
                print("not yet:", error)
                time.sleep(0.5)
        """,
    )
    assert output.split()[-2:] == ["200", "web"]
    # From the host, by its ClusterIP (kube-proxy's rules apply to the host's own traffic too).
    service = cluster_service.api(f"/api/v1/namespaces/{namespace}/services/web")
    url = f"http://{service['spec']['clusterIP']}:8080/hostname"
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read().decode().strip() == "web"


def test_a_pod_produces_to_kafka_through_its_listener_for_pods(
    cluster_service: NodeCluster, pod_kafka_service: KafkaBroker, namespace: str
) -> None:
    pod_kafka_service.create_topic("from-pods")
    output = _run_to_completion(
        cluster_service,
        namespace,
        _kfaas_image(cluster_service),
        f"""
        import asyncio, aiokafka
        async def main():
            producer = aiokafka.AIOKafkaProducer(
                bootstrap_servers="{pod_kafka_service.bootstrap_servers_for_pods}"
            )
            await producer.start()
            try:
                sent = await producer.send_and_wait("from-pods", b"hello")
                print("offset", sent.offset)
            finally:
                await producer.stop()
        asyncio.run(main())
        """,
    )
    assert output.split()[-2:] == ["offset", "0"]


def test_a_second_node_is_refused_while_one_runs(
    cluster_service: NodeCluster, tmp_path: Path
) -> None:
    with pytest.raises(ServiceError, match="a real node already runs on this machine"):
        NodeCluster(tmp_path).up()
    assert cluster_service.running()
    assert not (tmp_path / "cluster" / "run").exists()


def _without_enforcer(rules: list[str]) -> list[str]:
    """The NetworkPolicy enforcer of the same session is another service, with a teardown of its
    own, and may re-create its chains at any moment while it runs."""
    return [rule for rule in rules if not any(prefix in rule for prefix in CHAIN_PREFIXES)]


def test_down_restores_the_host(cluster_service: NodeCluster) -> None:
    """Last in this file: it stops the session's node and starts it again."""
    if os.environ.get(REUSE_CLUSTER) == "1":
        pytest.skip(f"{REUSE_CLUSTER}=1: the shared node is not stopped by tests")
    before = node_host.recorded_before()
    assert before is not None
    cluster_service.down()
    try:
        after = node_host.host_state()
        for key in ("sysctls", "paths", "links", "mounts", "cgroups"):
            assert after[key] == before[key], key
        for family in ("iptables", "ip6tables"):
            assert _without_enforcer(after[family]) == _without_enforcer(before[family]), family
        assert not [
            mount
            for mount in node_host._mounts()
            if mount.startswith(str(cluster_service.dir.root))
        ]
    finally:
        cluster_service.up()
