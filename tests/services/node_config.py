"""The real node's configuration files, as plain functions of its paths and ports.

Every setting here was needed on a machine like CI's (`../shared/SERVICES.md`, "A real node"), and
each says why next to it. Nothing in here touches the host: `node.py` writes these files and starts
the programs, `node_host.py` changes and restores the host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "kfaas0"
BRIDGE_ADDRESS = "10.88.0.1"
POD_RANGE = "10.88.0.0/16"
NODE_NAME = "kfaas-node"
CLUSTER_DOMAIN = "cluster.local"
CNI_BIN = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
CNI_NETWORK = "kfaas"


@dataclass(frozen=True)
class NodePaths:
    """Everything of the node that lives in its service folder, not on fixed host paths."""

    root: Path

    @property
    def containerd_root(self) -> Path:
        return self.root / "data" / "containerd"

    @property
    def containerd_state(self) -> Path:
        return self.root / "run" / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_state / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        return self.containerd_state / "runc"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "data" / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.root / "logs" / "pods"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def cni_conf_dir(self) -> Path:
        return self.config / "cni"

    @property
    def resolv_conf(self) -> Path:
        return self.config / "resolv.conf"


def containerd_toml(paths: NodePaths, pause_ref: str) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
version = 2
root = {json.dumps(str(paths.containerd_root))}
state = {json.dumps(str(paths.containerd_state))}
# Snapshotters that cannot work here only log errors at start.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = {json.dumps(str(paths.containerd_socket))}

[ttrpc]
  address = {json.dumps(str(paths.containerd_socket) + ".ttrpc")}

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  # Default /opt/containerd: a host path nobody would clean up.
  path = {json.dumps(str(paths.containerd_root / "opt"))}

[{cri}]
  sandbox_image = {json.dumps(pause_ref)}
  # Root here may lack CAP_SYS_RESOURCE: without this every sandbox fails in runc with
  # "can't get final child's PID from pipe: EOF" (oom_score_adj: Permission denied).
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = {json.dumps(str(paths.runc_root))}

[{cri}.cni]
  bin_dir = {json.dumps(str(CNI_BIN))}
  conf_dir = {json.dumps(str(paths.cni_conf_dir))}
"""


def cni_conflist() -> str:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    # No masquerading: nothing from a pod may leave the machine (a FORWARD rule
                    # drops it), and kube-proxy masquerades what Services need.
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_RANGE, "gateway": BRIDGE_ADDRESS}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubelet_config(paths: NodePaths, *, ca: Path, port: int, healthz_port: int) -> str:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": BRIDGE_ADDRESS,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "cgroupDriver": "cgroupfs",  # no systemd here
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        # The image's resolv.conf is the host's (debootstrap copies it); without cluster DNS in
        # a stub, a program resolving its own name waits ~20 s for a timeout.
        "resolvConf": str(paths.resolv_conf),
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [BRIDGE_ADDRESS],
        "podLogsDir": str(paths.pod_logs),
        "volumePluginDir": str(paths.kubelet_root / "volume-plugins"),
        # Images are imported, never pulled: one garbage-collected could not come back.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "protectKernelDefaults": False,
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "shutdownGracePeriod": "0s",
        "maxPods": 110,
    }
    return json.dumps(config, indent=2)


def kube_proxy_config(kubeconfig: Path, *, healthz_port: int, metrics_port: int) -> str:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",  # no IPVS in this kernel
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": BRIDGE_ADDRESS,
        "clusterCIDR": POD_RANGE,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # 0 everywhere: kube-proxy then leaves the host's conntrack sysctls alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        # NodePorts only on the bridge address, never on the machine's own interfaces.
        "nodePortAddresses": [f"{BRIDGE_ADDRESS}/32"],
    }
    return json.dumps(config, indent=2)


def corefile(kubeconfig: Path, *, ready_port: int, health_port: int) -> str:
    """CoreDNS as a host process on the bridge address: pods use it as their nameserver.

    Only cluster.local (and its reverse zones) is answered; other names fail at once
    (SERVERFAIL), since pods have no way out of the machine anyway.
    """
    return f"""\
.:53 {{
    bind {BRIDGE_ADDRESS}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} kfaas-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""


def resolv_conf() -> str:
    # What the kubelet puts in front of a pod's search path; the nameserver is CoreDNS.
    return f"nameserver {BRIDGE_ADDRESS}\noptions ndots:5\n"
