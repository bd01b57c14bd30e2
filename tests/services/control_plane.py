"""The Kubernetes control plane as local processes: what the kwok cluster and the real node share.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the upstream programs (built by
`cluster_build.py`). A subclass says where the API server listens and what it advertises, adds its
own flags and components (kwok's fake nodes, or containerd, a kubelet, kube-proxy and CoreDNS) and
what "ready for workloads" means. Processes are launched detached (`processes.py`) in order and
stopped in reverse.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waiting import eventually

from services import cluster_build
from services.base import LOOPBACK, ServiceDir, ServiceError, progress
from services.cluster_pki import Pki
from services.processes import launch, running_pid, stop, wait_until

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
CONTROL_PLANE_PORTS = ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler")
SERVICE_RANGE = "10.96.0.0/16"


@dataclass(frozen=True)
class Component:
    executable: str
    argv: list[str]
    ready: Callable[[], bool]
    timeout: float
    program: Path | None = None  # default: the control plane's bin folder
    then: Callable[[], None] | None = None  # run once it is ready, before the next one starts


def https_ok(url: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def self_signed_context() -> ssl.SSLContext:
    # The controller-manager and scheduler serve /healthz with certificates they make up.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class ControlPlane:
    name = "control-plane"
    # Subclasses: the components after the control plane, in start order, and their ports.
    extra_components: Sequence[str] = ()
    extra_ports: Sequence[str] = ()
    # Where the API server listens (and what the kubeconfig names); what it advertises.
    api_address = LOOPBACK
    san_addresses: Sequence[str] = ()

    def __init__(self, state_dir: Path) -> None:
        self.dir = ServiceDir(state_dir, self.name)
        self.pki = Pki(self.dir.root / "pki", tuple(self.san_addresses))
        self.kubeconfig = self.dir.root / "kubeconfig"

    # -- facts ---------------------------------------------------------------------------------

    @property
    def bin(self) -> Path:
        return cluster_build.bin_dir()

    @property
    def server(self) -> str:
        return f"https://{self.api_address}:{self.dir.saved_ports()['apiserver']}"

    def environment(self) -> Mapping[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def _client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.cert), str(self.pki.key))
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
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
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
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise ServiceError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
        return done

    def install_crds(self, *paths: Path) -> None:
        """Apply CRD files (or folders of them) as helm does; return once every kind is served.

        Established is not enough: for a moment after it the API server answers 429 ("storage is
        (re)initializing"), so each kind is listed until it answers.
        """
        files = [f for p in paths for f in (sorted(p.glob("*.yaml")) if p.is_dir() else [p])]
        for path in paths:
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        kinds = [f.name.removesuffix(".yaml") for f in files]
        self.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{k}" for k in kinds)
        )
        listing = ",".join(kinds)
        eventually(
            lambda: self.kubectl("get", listing, "-A", check=False).returncode == 0,
            within=60,
            what=f"the kinds {listing} served",
        )

    # -- what subclasses add -------------------------------------------------------------------

    def _apiserver_flags(self, ports: Mapping[str, int]) -> list[str]:
        """Where the API server listens and what it advertises for the `kubernetes` Service."""
        raise NotImplementedError

    def _extra(self, ports: Mapping[str, int]) -> list[Component]:
        return []

    def _prepare(self, ports: Mapping[str, int]) -> None:
        """Files the components read, written before the first one starts."""

    def _wait_for_workloads(self) -> None:
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------------

    @staticmethod
    def build() -> None:
        cluster_build.build()

    @property
    def components(self) -> tuple[str, ...]:
        return (*CONTROL_PLANE, *self.extra_components)

    def running(self) -> bool:
        return all(running_pid(self.dir.pid_file(component)) for component in self.components)

    def _control_plane(self, ports: Mapping[str, int]) -> list[Component]:
        pki, address = self.pki, self.api_address
        etcd_url = f"http://{LOOPBACK}:{ports['etcd']}"
        peer_url = f"http://{LOOPBACK}:{ports['etcd-peer']}"
        client = self._client_context()
        self_signed = self_signed_context()

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
            Component(
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
            Component(
                "kube-apiserver",
                [
                    f"--etcd-servers={etcd_url}",
                    f"--bind-address={address}",
                    f"--secure-port={ports['apiserver']}",
                    *self._apiserver_flags(ports),
                    f"--cert-dir={self.dir.run / 'apiserver'}",
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
                lambda: https_ok(f"https://{address}:{ports['apiserver']}/readyz", client),
                60,
            ),
            Component(
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
                    # Default /usr/libexec/kubernetes/...: a host folder it would create.
                    f"--flex-volume-plugin-dir={self.dir.data / 'volume-plugins'}",
                    "--profiling=false",
                ],
                lambda: https_ok(
                    f"https://{LOOPBACK}:{ports['controller-manager']}/healthz", self_signed
                ),
                60,
            ),
            Component(
                "kube-scheduler",
                [*delegated, f"--secure-port={ports['scheduler']}", "--profiling=false"],
                lambda: https_ok(f"https://{LOOPBACK}:{ports['scheduler']}/healthz", self_signed),
                60,
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
                        "server": f"https://{self.api_address}:{port}",
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

    def _start(self) -> None:
        """Start every component in order, each once the one before is ready."""
        ports = self.dir.ports([*CONTROL_PLANE_PORTS, *self.extra_ports])
        self.pki.ensure()
        self._write_kubeconfig(ports["apiserver"])
        self._prepare(ports)
        version = cluster_build.KUBERNETES_VERSION
        progress(f"starting the control plane (Kubernetes {version}) on {self.server}")
        for component in [*self._control_plane(ports), *self._extra(ports)]:
            log_file = self.dir.log_file(component.executable)
            program = component.program or self.bin / component.executable
            pid = launch(
                [str(program), *component.argv],
                pid_file=self.dir.pid_file(component.executable),
                log_file=log_file,
            )
            wait_until(
                component.ready,
                what=f"{self.name} ({component.executable})",
                timeout=component.timeout,
                pid=pid,
                log_file=log_file,
                interval=0.2,
            )
            if component.then is not None:
                component.then()

    def up(self) -> Mapping[str, str]:
        if self.running():
            return self.environment()
        self.build()
        self.down()  # whatever survived of a half-running cluster goes first
        started = time.monotonic()
        self._start()
        self._wait_for_workloads()
        progress(f"{self.name} ready in {time.monotonic() - started:.1f} s")
        return self.environment()

    def _stop_components(self) -> None:
        stopped = []
        for component in reversed(self.components):
            started = time.monotonic()
            # The API server can sit 20 s and more after "Stopped listening" while clients
            # (port-forwards, log streams) hold connections; it keeps no state of its own.
            grace = 5.0 if component == "kube-apiserver" else 20.0
            if stop(self.dir.pid_file(component), grace=grace):
                stopped.append(component)
            if time.monotonic() - started > 2:
                progress(f"{component} took {time.monotonic() - started:.1f} s to stop")
        if stopped:
            progress(f"stopped {', '.join(stopped)}")

    def down(self) -> None:
        self._stop_components()

    def wipe(self) -> None:
        self.down()
        self.dir.wipe()


def ready_nodes(nodes: Any) -> set[str]:
    """Names of the nodes that are Ready and no longer tainted not-ready."""
    return {
        node["metadata"]["name"]
        for node in (nodes or {"items": []})["items"]
        if any(
            condition["type"] == "Ready" and condition["status"] == "True"
            for condition in node.get("status", {}).get("conditions", [])
        )
        and not any(
            taint["key"] == "node.kubernetes.io/not-ready"
            for taint in node.get("spec", {}).get("taints", [])
        )
    }
