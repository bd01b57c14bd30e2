"""Builds the control plane's binaries once per machine, through the Go module proxy.

kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd come from the Go module in
tests/cluster/ (k8s.io/kubernetes with its staging modules pinned to their published releases, see
its go.mod); kwok is installed at its own version with its own dependencies, because it is built
against an older client-go than the control plane. Everything lands in
`~/.cache/kfaas/kubernetes-<version>/bin`, never in the repository. A cold build takes minutes and
a couple of GB of memory; the Go build cache makes a rebuild after a version change cheaper.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from services.base import MissingDependency, ServiceError, build_lock, cache_root, progress

KUBERNETES_VERSION = "v1.34.4"  # keep in step with k8s.io/kubernetes in tests/cluster/go.mod
KWOK_VERSION = "v0.7.0"  # v0.8 exits without Stage objects; v0.7 falls back to built-in stages
ETCD_VERSION = "v3.6.4"  # what k8s.io/kubernetes v1.34.4 requires (tests/cluster/go.mod)
MODULE = Path(__file__).resolve().parents[1] / "cluster"
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
)
# Not the `tool` meta-package: the module's tools include the real node's kubelet and kube-proxy,
# which `node_build.py` builds separately (the kwok cluster does not need them).
CONTROL_PLANE_PACKAGES = tuple(
    f"k8s.io/kubernetes/cmd/{name}"
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
)
MINIMUM_GO = (1, 24)  # the go directive of k8s.io/kubernetes v1.34


def bin_dir() -> Path:
    return cache_root() / f"kubernetes-{KUBERNETES_VERSION}" / "bin"


def _stamp() -> str:
    return f"kubernetes {KUBERNETES_VERSION} etcd {ETCD_VERSION} kwok {KWOK_VERSION}\n"


def is_built() -> bool:
    stamp = bin_dir() / ".complete"
    return stamp.exists() and stamp.read_text() == _stamp()


def find_go() -> Path:
    """The Go toolchain: the machine's /usr/local/go when present, else whatever PATH has."""
    candidates = [Path("/usr/local/go/bin/go")]
    on_path = shutil.which("go")
    if on_path:
        candidates.append(Path(on_path))
    for go in candidates:
        if not go.exists():
            continue
        shown = subprocess.run([go, "version"], capture_output=True, text=True).stdout
        match = re.search(r"go(\d+)\.(\d+)", shown)
        if match and (int(match[1]), int(match[2])) >= MINIMUM_GO:
            return go
    raise MissingDependency(
        f"Go {MINIMUM_GO[0]}.{MINIMUM_GO[1]} or later is needed to build Kubernetes "
        f"{KUBERNETES_VERSION} (looked at {', '.join(map(str, candidates))})"
    )


def go_environment(go: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{go.parent}{os.pathsep}{env.get('PATH', '')}"
    env["CGO_ENABLED"] = "0"
    # -mod=mod: tests/cluster has no vendor folder and go.sum may lag behind a version change;
    # no VCS stamping, which needs git to trust the checkout and changes nothing that runs.
    env["GOFLAGS"] = "-mod=mod -trimpath -buildvcs=false"
    return env


def version_flags() -> str:
    # Without these the binaries report v0.0.0-master and clients warn about version skew.
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    flags = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={KUBERNETES_VERSION}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(["-s", "-w", *flags])


def run(argv: list[str], *, env: dict[str, str], cwd: Path | None = None) -> None:
    # Go's own progress ("go: downloading ...") goes to file descriptor 2, never to stdout, which
    # carries only export lines; under pytest, fd 2 is the terminal or pytest's capture file.
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=2, stderr=2)
    if done.returncode != 0:
        raise ServiceError(f"build failed ({done.returncode}): {' '.join(argv)}")


def build() -> Path:
    """Build every binary unless this version is already built; returns the bin folder."""
    target = bin_dir()
    if is_built():
        return target
    go = find_go()
    with build_lock(target.parent.name):
        if not is_built():
            _build(go, target)
    return target


def _build(go: Path, target: Path) -> None:
    env = go_environment(go)
    partial = target.with_name("bin.partial")
    partial.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    progress(
        f"building Kubernetes {KUBERNETES_VERSION} (kube-apiserver, kube-controller-manager, "
        f"kube-scheduler, kubectl) and etcd {ETCD_VERSION} into {target}; "
        "the first build takes several minutes"
    )
    run(
        [
            str(go),
            "build",
            "-ldflags",
            version_flags(),
            "-o",
            f"{partial}/",
            *CONTROL_PLANE_PACKAGES,
            "./cmd/etcd",
        ],
        env=env,
        cwd=MODULE,
    )
    progress(f"building kwok {KWOK_VERSION}")
    kwok_env = dict(env, GOBIN=str(partial), GOFLAGS="-trimpath -buildvcs=false")
    run(
        [
            str(go),
            "install",
            "-ldflags",
            f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION}",
            f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}",
        ],
        env=kwok_env,
        cwd=partial,
    )
    missing = [name for name in BINARIES if not (partial / name).exists()]
    if missing:
        raise ServiceError(f"the build left out {', '.join(missing)} in {partial}")
    (partial / ".complete").write_text(_stamp())
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    progress(f"built the control plane in {time.monotonic() - started:.0f} s")
