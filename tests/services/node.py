"""A Kubernetes cluster with one real node: the control plane, containerd, a kubelet, kube-proxy
and CoreDNS as local processes, so pods really run (runc containers on a CNI bridge).

The control plane is `control_plane.py`'s, except that the API server listens on and advertises
the bridge address, so pods reach it through the `kubernetes` Service (10.96.0.1) like in any
cluster. containerd runs with its own root, state, sockets and config; pods get addresses on the
bridge `kfaas0` (10.88.0.0/16) and resolve `*.svc.cluster.local` through CoreDNS, which runs as a
host process on the bridge address (the kubelet's clusterDNS), port 53. Images are never pulled:
they are imported into the node's containerd (`import_image`). One real node per machine; what it
changes on the host is undone by `down` (`node_host.py`).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from waiting import NeverHappened, eventually

from services import node_build, node_host
from services.base import LOOPBACK, ServiceError, progress
from services.control_plane import Component, ControlPlane, http_ok, ready_nodes
from services.node_config import (
    BRIDGE_ADDRESS,
    NODE_NAME,
    NodePaths,
    cni_conflist,
    containerd_toml,
    corefile,
    kube_proxy_config,
    kubelet_config,
    resolv_conf,
)
from services.node_images import image_ref, kfaas_image, pause_archive
from services.processes import running_pid

NODE_COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns")


class NodeCluster(ControlPlane):
    name = "cluster"
    extra_components = NODE_COMPONENTS
    extra_ports = (
        "kubelet",
        "kubelet-healthz",
        "kube-proxy-healthz",
        "kube-proxy-metrics",
        "coredns-ready",
        "coredns-health",
    )
    api_address = BRIDGE_ADDRESS
    san_addresses = (BRIDGE_ADDRESS,)
    bridge_address = BRIDGE_ADDRESS  # where pods reach services that run on the host
    node_name = NODE_NAME

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.paths = NodePaths(self.dir.root)
        self._images_file = self.dir.root / "images.json"

    def environment(self) -> Mapping[str, str]:
        environment = {"KUBECONFIG": str(self.kubeconfig)}
        kfaas = self.imported().get("kfaas")
        if kfaas:
            environment["KFAAS_IMAGE"] = kfaas
        return environment

    def imported(self) -> dict[str, str]:
        """Images imported by `up`, by role ("pause", "kfaas"): their references."""
        try:
            saved: dict[str, str] = json.loads(self._images_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return saved

    def _remember(self, role: str, ref: str) -> None:
        self._images_file.write_text(json.dumps({**self.imported(), role: ref}, indent=2))

    @staticmethod
    def build() -> None:
        """Programs and images, before any test's timeout starts (a cold kfaas image: minutes)."""
        node_host.check_machine()
        node_build.build()
        pause_archive()
        kfaas_image()

    # -- containerd ----------------------------------------------------------------------------

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["ctr", "--address", str(self.paths.containerd_socket), "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise ServiceError(f"ctr {' '.join(args)} failed:\n{done.stderr}")
        return done

    def import_image(self, archive: Path) -> str:
        """Import a docker-archive into the node's containerd unless it holds that reference
        already; returns the reference. Test runs sharing the node may import at once."""
        ref = image_ref(archive)
        with node_host.machine_lock("import.lock"):
            if self.has_image(ref):
                return ref
            started = time.monotonic()
            self.ctr("images", "import", str(archive))
        progress(f"imported {ref} in {time.monotonic() - started:.1f} s")
        return ref

    # -- components ----------------------------------------------------------------------------

    def _apiserver_flags(self, ports: Mapping[str, int]) -> list[str]:
        return [
            f"--advertise-address={BRIDGE_ADDRESS}",
            # Else logs and exec look the node's name up in DNS.
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--kubelet-client-certificate={self.pki.cert}",
            f"--kubelet-client-key={self.pki.key}",
        ]

    def _prepare(self, ports: Mapping[str, int]) -> None:
        paths = self.paths
        pause = pause_archive()
        self._pause = pause
        for folder in (paths.config, paths.cni_conf_dir, paths.kubelet_root, paths.pod_logs):
            folder.mkdir(parents=True, exist_ok=True)
        (paths.config / "containerd.toml").write_text(containerd_toml(paths, image_ref(pause)))
        (paths.cni_conf_dir / "10-kfaas.conflist").write_text(cni_conflist())
        paths.resolv_conf.write_text(resolv_conf())
        (paths.config / "kubelet.json").write_text(
            kubelet_config(
                paths,
                ca=self.pki.ca_cert,
                port=ports["kubelet"],
                healthz_port=ports["kubelet-healthz"],
            )
        )
        (paths.config / "kube-proxy.json").write_text(
            kube_proxy_config(
                self.kubeconfig,
                healthz_port=ports["kube-proxy-healthz"],
                metrics_port=ports["kube-proxy-metrics"],
            )
        )
        (paths.config / "Corefile").write_text(
            corefile(
                self.kubeconfig,
                ready_port=ports["coredns-ready"],
                health_port=ports["coredns-health"],
            )
        )

    def _import_pause(self) -> None:
        self._remember("pause", self.import_image(self._pause))

    def _extra(self, ports: Mapping[str, int]) -> list[Component]:
        paths, node_bin = self.paths, node_build.bin_dir()

        def containerd_ready() -> bool:
            return paths.containerd_socket.exists() and (
                subprocess.run(
                    ["ctr", "--address", str(paths.containerd_socket), "version"],
                    capture_output=True,
                ).returncode
                == 0
            )

        return [
            Component(
                "containerd",
                ["--config", str(paths.config / "containerd.toml")],
                containerd_ready,
                30,
                program=Path("/usr/bin/containerd"),
                then=self._import_pause,
            ),
            Component(
                "kubelet",
                [
                    f"--config={paths.config / 'kubelet.json'}",
                    f"--kubeconfig={self.kubeconfig}",
                    f"--root-dir={paths.kubelet_root}",
                    f"--cert-dir={paths.kubelet_root / 'pki'}",
                    f"--hostname-override={NODE_NAME}",
                    f"--node-ip={BRIDGE_ADDRESS}",
                ],
                lambda: http_ok(f"http://{LOOPBACK}:{ports['kubelet-healthz']}/healthz"),
                60,
                program=node_bin / "kubelet",
            ),
            Component(
                "kube-proxy",
                [f"--config={paths.config / 'kube-proxy.json'}"],
                lambda: http_ok(f"http://{LOOPBACK}:{ports['kube-proxy-healthz']}/livez"),
                60,
                program=node_bin / "kube-proxy",
            ),
            Component(
                "coredns",
                ["-conf", str(paths.config / "Corefile")],
                lambda: http_ok(f"http://{LOOPBACK}:{ports['coredns-ready']}/ready"),
                60,
                program=node_bin / "coredns",
            ),
        ]

    def _wait_for_workloads(self) -> None:
        """Pods are admitted only with a default ServiceAccount, scheduled only on Ready nodes."""

        def settled() -> bool:
            waiting = []
            if self.api("/api/v1/namespaces/default/serviceaccounts/default") is None:
                waiting.append("the default ServiceAccount")
            if NODE_NAME not in ready_nodes(self.api("/api/v1/nodes")):
                waiting.append(f"node {NODE_NAME} Ready")
            assert not waiting, f"still waiting for {', '.join(waiting)}"
            return True

        try:
            eventually(
                settled, within=120, what="workloads admitted", interval=0.2,
                ignoring=(AssertionError,),
            )  # fmt: skip
        except NeverHappened as late:
            raise ServiceError(f"cluster: {late}; logs in {self.dir.logs}") from None

    # -- lifecycle -----------------------------------------------------------------------------

    def _owned_elsewhere(self) -> str | None:
        """The folder of another node that runs on this machine, if one does."""
        owner = node_host.owner()
        if owner is None or owner["root"] == str(self.dir.root):
            return None
        run = Path(owner["root"]) / "run"
        alive = any(running_pid(run / f"{name}.pid") for name in ("kube-apiserver", "kubelet"))
        return owner["root"] if alive else None

    def up(self) -> Mapping[str, str]:
        if not self.running():
            self._start_node()
        self._import_kfaas_image()
        return self.environment()

    def _refuse_if_another_runs(self) -> None:
        other = self._owned_elsewhere()
        if other is not None:
            raise ServiceError(
                f"a real node already runs on this machine (state in {other}); only one can. "
                "Stop it with `scripts/services down cluster` (with its --state-dir), or use "
                "it from tests with KFAAS_REUSE_CLUSTER=1"
            )

    def _start_node(self) -> None:
        self._refuse_if_another_runs()  # before minutes of building, and again under the lock
        self.build()
        with node_host.machine_lock():
            self._refuse_if_another_runs()
            if self.running():
                return  # another `up` of this same node got the lock first
            started = time.monotonic()
            self._stop_components()
            node_host.restore()  # what a crashed or half-stopped node left behind
            node_host.record_before()
            node_host.claim(self.dir.root, self.paths.runc_root, self.paths.containerd_socket)
            try:
                node_host.prepare_network()
                self._images_file.unlink(missing_ok=True)
                self._start()
                self._wait_for_workloads()
            except BaseException:
                # Nothing half-started may hold the host; the logs stay for the post-mortem.
                self._teardown()
                raise
            progress(f"node {NODE_NAME} Ready {time.monotonic() - started:.1f} s after start")

    def has_image(self, ref: str) -> bool:
        return ref in self.ctr("images", "list", "--quiet").stdout.split()

    def _import_kfaas_image(self) -> None:
        """The image built from the repository's Dockerfile (KFAAS_IMAGE), unless imported."""
        self._remember("kfaas", self.import_image(kfaas_image().archive))

    def down(self) -> None:
        if not node_host.MACHINE_DIR.exists() and not self.running():
            return
        with node_host.machine_lock():
            self._teardown()

    def _teardown(self) -> None:
        """Stop the processes and, if this node owns the host's changes, undo them (locked)."""
        started = time.monotonic()
        self._stop_components()
        owner = node_host.owner()
        if owner is not None and owner["root"] == str(self.dir.root):
            node_host.restore()
            progress(f"host restored in {time.monotonic() - started:.1f} s")
