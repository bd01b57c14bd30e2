"""A real Kubernetes control plane as local processes, with kwok pretending to be the nodes.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the upstream programs (built by
`cluster_build.py`); kwok plays kubelet for nodes annotated `kwok.x-k8s.io/node: fake`, so pods get
scheduled, receive an IP from a fake range and turn Ready without running any container. This is
enough to test an operator for real: admission and CRD schemas, Deployments and ReplicaSets,
garbage collection, EndpointSlices. Everything listens on 127.0.0.1; pod IPs are never reachable.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services import cluster_build
from services.base import LOOPBACK, ServiceDir, ServiceError, progress
from services.cluster_pki import Pki
from services.processes import launch, running_pid, stop, wait_until

# In start order; stopped in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
NODES = ("kwok-node-0", "kwok-node-1")
# The API server wants an address to advertise and refuses loopback for the `kubernetes` Service.
# It only publishes it (the endpoint reconciler is off), so a documentation address that is
# nobody's is safe: nothing ever connects to it.
ADVERTISE_ADDRESS = "198.51.100.1"
SERVICE_RANGE = "10.96.0.0/16"
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


@dataclass(frozen=True)
class _Component:
    executable: str
    argv: list[str]
    ready: Callable[[], bool]
    timeout: float


def _https_ok(port: int, path: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(
            f"https://{LOOPBACK}:{port}{path}", context=context, timeout=2
        ) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class Cluster:
    name = "kwok"

    def __init__(self, state_dir: Path) -> None:
        self.dir = ServiceDir(state_dir, self.name)
        self.pki = Pki(self.dir.root / "pki")
        self.kubeconfig = self.dir.root / "kubeconfig"

    # -- facts ---------------------------------------------------------------------------------

    @property
    def bin(self) -> Path:
        return cluster_build.bin_dir()

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.dir.saved_ports()['apiserver']}"

    def environment(self) -> Mapping[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def _client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.cert), str(self.pki.key))
        return context

    @staticmethod
    def _self_signed_context() -> ssl.SSLContext:
        # The controller-manager and scheduler serve /healthz with certificates they make up.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def api(self, path: str) -> Any:
        """GET a path of the API as the admin; None when it does not exist (404)."""
        request = urllib.request.Request(self.server + path, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(
                request, context=self._client_context(), timeout=10
            ) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as error:
            with error:
                if error.code == 404:
                    return None
                raise

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the kubectl built with the control plane (no version skew) against this cluster."""
        done = subprocess.run(
            [
                str(self.bin / "kubectl"),
                f"--kubeconfig={self.kubeconfig}",
                # Discovery is cached per cluster state, not in the user's ~/.kube.
                f"--cache-dir={self.dir.root / 'kubectl-cache'}",
                *args,
            ],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise ServiceError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
        return done

    # -- lifecycle -----------------------------------------------------------------------------

    @staticmethod
    def build() -> None:
        cluster_build.build()

    def running(self) -> bool:
        return all(running_pid(self.dir.pid_file(component)) for component in COMPONENTS)

    def _components(self, ports: Mapping[str, int]) -> list[_Component]:
        pki, root = self.pki, self.dir.root
        etcd_url = f"http://{LOOPBACK}:{ports['etcd']}"
        peer_url = f"http://{LOOPBACK}:{ports['etcd-peer']}"
        client = self._client_context()
        self_signed = self._self_signed_context()

        def etcd_healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{etcd_url}/health", timeout=2) as answer:
                    return bool(json.load(answer).get("health") == "true")
            except (OSError, ValueError):
                return False

        delegated = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            # Restarts must not wait ~15 s for a lease held by the process they replace.
            "--leader-elect=false",
            f"--bind-address={LOOPBACK}",
        ]
        return [
            _Component(
                "etcd",
                [
                    "--name=node0",
                    f"--data-dir={self.dir.data / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=node0={peer_url}",
                    "--listen-metrics-urls=",
                    # Tests, not production: a process restart loses nothing without fsync,
                    # and fsync per write slows the API several times on small VMs.
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
                etcd_healthy,
                30,
            ),
            _Component(
                "kube-apiserver",
                [
                    f"--etcd-servers={etcd_url}",
                    f"--bind-address={LOOPBACK}",
                    f"--secure-port={ports['apiserver']}",
                    f"--advertise-address={ADVERTISE_ADDRESS}",
                    "--endpoint-reconciler-type=none",
                    f"--cert-dir={root / 'run' / 'apiserver'}",
                    f"--tls-cert-file={pki.cert}",
                    f"--tls-private-key-file={pki.key}",
                    f"--client-ca-file={pki.ca_cert}",
                    # Nothing proxies to this API server, but without a request-header CA the
                    # controller-manager and scheduler log an error every few seconds. No client
                    # certificate is named front-proxy-client, so nobody can use these headers.
                    f"--requestheader-client-ca-file={pki.ca_cert}",
                    "--requestheader-allowed-names=front-proxy-client",
                    "--requestheader-username-headers=X-Remote-User",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-account-key-file={pki.service_account_public_key}",
                    f"--service-account-signing-key-file={pki.service_account_key}",
                    f"--service-cluster-ip-range={SERVICE_RANGE}",
                    "--authorization-mode=Node,RBAC",
                    "--allow-privileged=true",
                    "--profiling=false",
                ],
                lambda: _https_ok(ports["apiserver"], "/readyz", client),
                60,
            ),
            _Component(
                "kube-controller-manager",
                [
                    *delegated,
                    f"--secure-port={ports['controller-manager']}",
                    f"--root-ca-file={pki.ca_cert}",
                    f"--service-account-private-key-file={pki.service_account_key}",
                    "--use-service-account-credentials=true",
                    f"--cluster-signing-cert-file={pki.ca_cert}",
                    f"--cluster-signing-key-file={pki.ca_key}",
                    "--controllers=*",
                    "--profiling=false",
                ],
                lambda: _https_ok(ports["controller-manager"], "/healthz", self_signed),
                60,
            ),
            _Component(
                "kube-scheduler",
                [
                    *delegated,
                    f"--secure-port={ports['scheduler']}",
                    "--profiling=false",
                ],
                lambda: _https_ok(ports["scheduler"], "/healthz", self_signed),
                60,
            ),
            _Component(
                "kwok",
                [
                    f"--kubeconfig={self.kubeconfig}",
                    f"--config={root / 'kwok.yaml'}",
                    "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                    f"--cidr={POD_RANGE}",
                    # Outside the pod range, or a pod would get its node's address.
                    f"--node-ip={NODE_ADDRESS}",
                    # 0 would make nodes flap between Ready and NotReady.
                    "--node-lease-duration-seconds=40",
                    f"--server-address={LOOPBACK}:{ports['kwok']}",
                ],
                lambda: (
                    _https_ok(ports["kwok"], "/healthz", self_signed)
                    or _http_ok(ports["kwok"], "/healthz")
                ),
                30,
            ),
        ]

    def _write_kubeconfig(self, port: int) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kfaas-local",
                    "cluster": {
                        "server": f"https://{LOOPBACK}:{port}",
                        "certificate-authority": str(self.pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "kfaas-admin",
                    "user": {
                        "client-certificate": str(self.pki.cert),
                        "client-key": str(self.pki.key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "kfaas-local",
                    "context": {"cluster": "kfaas-local", "user": "kfaas-admin"},
                }
            ],
            "current-context": "kfaas-local",
        }
        # JSON is YAML; kubectl and every client library read it.
        self.kubeconfig.write_text(json.dumps(config, indent=2) + "\n")

    def up(self) -> Mapping[str, str]:
        if self.running():
            return self.environment()
        self.build()
        self.down()  # whatever survived of a half-running control plane goes first
        started = time.monotonic()
        ports = self.dir.ports(
            ["etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok"]
        )
        self.pki.ensure()
        self._write_kubeconfig(ports["apiserver"])
        (self.dir.root / "kwok.yaml").write_text(_KWOK_CONFIG)
        version = cluster_build.KUBERNETES_VERSION
        progress(f"starting the control plane (Kubernetes {version}) on {self.server}")
        for component in self._components(ports):
            log_file = self.dir.log_file(component.executable)
            pid = launch(
                [str(self.bin / component.executable), *component.argv],
                pid_file=self.dir.pid_file(component.executable),
                log_file=log_file,
            )
            wait_until(
                component.ready,
                what=f"cluster ({component.executable})",
                timeout=component.timeout,
                pid=pid,
                log_file=log_file,
                interval=0.2,
            )
        self._wait_for_workloads()
        progress(f"control plane ready in {time.monotonic() - started:.1f} s")
        return self.environment()

    def _wait_for_workloads(self) -> None:
        """Pods are admitted only with a default ServiceAccount, scheduled only on Ready nodes."""
        self.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "List", "items": [_node(name) for name in NODES]
        }))  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            waiting = []
            if self.api("/api/v1/namespaces/default/serviceaccounts/default") is None:
                waiting.append("the default ServiceAccount")
            nodes = self.api("/api/v1/nodes") or {"items": []}
            ready = {
                node["metadata"]["name"]
                for node in nodes["items"]
                if any(
                    condition["type"] == "Ready" and condition["status"] == "True"
                    for condition in node.get("status", {}).get("conditions", [])
                )
                and not any(
                    taint["key"] == "node.kubernetes.io/not-ready"
                    for taint in node.get("spec", {}).get("taints", [])
                )
            }
            waiting += [f"node {name}" for name in NODES if name not in ready]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"cluster: still waiting for {', '.join(waiting)}; logs in {self.dir.logs}"
                )
            time.sleep(0.2)

    def down(self) -> None:
        stopped = [
            component for component in reversed(COMPONENTS) if stop(self.dir.pid_file(component))
        ]
        if stopped:
            progress(f"stopped {', '.join(stopped)}")

    def wipe(self) -> None:
        self.down()
        self.dir.wipe()


def _http_ok(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=2) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False
