"""Builds what the real node runs beside the control plane: kubelet, kube-proxy and CoreDNS.

kubelet and kube-proxy come from the same Go module as the control plane (tests/cluster/go.mod lists
them as tools), so they are the same Kubernetes version; CoreDNS is installed from its own module
at its own version. They land in `~/.cache/kfaas/node-<kubernetes>-coredns-<version>/bin` with a
stamp of their own, so adding them never invalidates the control plane's cache. With a warm Go
build cache this takes about a minute; cold, kubelet alone takes ~8 minutes and 1.5 GB.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from services import cluster_build
from services.base import ServiceError, build_lock, cache_root, progress

COREDNS_VERSION = "v1.15.0"
BINARIES = ("kubelet", "kube-proxy", "coredns")


def bin_dir() -> Path:
    version = cluster_build.KUBERNETES_VERSION
    return cache_root() / f"node-{version}-coredns-{COREDNS_VERSION}" / "bin"


def _stamp() -> str:
    return f"kubernetes {cluster_build.KUBERNETES_VERSION} coredns {COREDNS_VERSION}\n"


def is_built() -> bool:
    stamp = bin_dir() / ".complete"
    return stamp.exists() and stamp.read_text() == _stamp()


def build() -> Path:
    """Build the control plane, then the node's programs unless built; returns their folder."""
    cluster_build.build()
    target = bin_dir()
    if is_built():
        return target
    go = cluster_build.find_go()
    with build_lock(target.parent.name):
        if not is_built():
            _build(go, target)
    return target


def _build(go: Path, target: Path) -> None:
    env = cluster_build.go_environment(go)
    partial = target.with_name("bin.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    started = time.monotonic()
    progress(
        f"building kubelet and kube-proxy {cluster_build.KUBERNETES_VERSION} into {target} "
        "(about a minute with a warm Go cache, several minutes cold)"
    )
    cluster_build.run(
        [
            str(go),
            "build",
            "-ldflags",
            cluster_build.version_flags(),
            "-o",
            f"{partial}/",
            "k8s.io/kubernetes/cmd/kubelet",
            "k8s.io/kubernetes/cmd/kube-proxy",
        ],
        env=env,
        cwd=cluster_build.MODULE,
    )
    progress(f"building CoreDNS {COREDNS_VERSION}")
    cluster_build.run(
        [str(go), "install", "-ldflags", "-s -w", f"github.com/coredns/coredns@{COREDNS_VERSION}"],
        # Its own module and dependencies, outside tests/cluster's go.mod.
        env=dict(env, GOBIN=str(partial), GOFLAGS="-trimpath -buildvcs=false"),
        cwd=partial,
    )
    missing = [name for name in BINARIES if not (partial / name).exists()]
    if missing:
        raise ServiceError(f"the build left out {', '.join(missing)} in {partial}")
    (partial / ".complete").write_text(_stamp())
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    progress(f"built the node's programs in {time.monotonic() - started:.0f} s")
