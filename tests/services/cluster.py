"""A real Kubernetes control plane as local processes, with kwok pretending to be the nodes.

The control plane is `control_plane.py`'s; kwok plays kubelet for nodes annotated
`kwok.x-k8s.io/node: fake`, so pods get scheduled, receive an IP from a fake range and turn Ready
without running any container. This is enough to test an operator for real: admission and CRD
schemas, Deployments and ReplicaSets, garbage collection, EndpointSlices. Everything listens on
127.0.0.1; pod IPs are never reachable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from waiting import NeverHappened, eventually

from services.base import LOOPBACK, ServiceError
from services.control_plane import (
    CONTROL_PLANE,
    Component,
    ControlPlane,
    http_ok,
    https_ok,
    ready_nodes,
    self_signed_context,
)

# In start order; stopped in reverse.
COMPONENTS = (*CONTROL_PLANE, "kwok")
NODES = ("kwok-node-0", "kwok-node-1")
# The API server wants an address to advertise and refuses loopback for the `kubernetes` Service.
# It only publishes it (the endpoint reconciler is off), so a documentation address that is
# nobody's is safe: nothing ever connects to it.
ADVERTISE_ADDRESS = "198.51.100.1"
POD_RANGE = "10.244.0.0/16"  # kwok hands these out; they stay out of 127/8 and the service range
NODE_ADDRESS = "10.245.0.1"  # what kwok reports as every fake node's address

_KWOK_CONFIG = """\
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options: {}
"""


def _node(name: str) -> dict[str, Any]:
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "status": {"allocatable": resources, "capacity": resources},
    }


class Cluster(ControlPlane):
    name = "kwok"
    extra_components = ("kwok",)
    extra_ports = ("kwok",)

    def _apiserver_flags(self, ports: Mapping[str, int]) -> list[str]:
        return [f"--advertise-address={ADVERTISE_ADDRESS}", "--endpoint-reconciler-type=none"]

    def _prepare(self, ports: Mapping[str, int]) -> None:
        (self.dir.root / "kwok.yaml").write_text(_KWOK_CONFIG)

    def _extra(self, ports: Mapping[str, int]) -> list[Component]:
        self_signed = self_signed_context()
        health = f"{LOOPBACK}:{ports['kwok']}/healthz"
        return [
            Component(
                "kwok",
                [
                    f"--kubeconfig={self.kubeconfig}",
                    f"--config={self.dir.root / 'kwok.yaml'}",
                    "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                    f"--cidr={POD_RANGE}",
                    # Outside the pod range, or a pod would get its node's address.
                    f"--node-ip={NODE_ADDRESS}",
                    # 0 would make nodes flap between Ready and NotReady.
                    "--node-lease-duration-seconds=40",
                    f"--server-address={LOOPBACK}:{ports['kwok']}",
                ],
                lambda: https_ok(f"https://{health}", self_signed) or http_ok(f"http://{health}"),
                30,
            )
        ]

    def _wait_for_workloads(self) -> None:
        """Pods are admitted only with a default ServiceAccount, scheduled only on Ready nodes."""
        self.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "List", "items": [_node(name) for name in NODES]
        }))  # fmt: skip

        def settled() -> bool:
            waiting = []
            if self.api("/api/v1/namespaces/default/serviceaccounts/default") is None:
                waiting.append("the default ServiceAccount")
            ready = ready_nodes(self.api("/api/v1/nodes"))
            waiting += [f"node {name}" for name in NODES if name not in ready]
            assert not waiting, f"still waiting for {', '.join(waiting)}"
            return True

        try:
            eventually(
                settled, within=60, what="workloads admitted", interval=0.2,
                ignoring=(AssertionError,),
            )  # fmt: skip
        except NeverHappened as late:
            raise ServiceError(f"cluster: {late}; logs in {self.dir.logs}") from None
