"""Builds the real node's add-ons once per machine: kube-router's firewall and Prometheus.

Both are plain `go install module/cmd/x@version` (neither module has replace directives, so no
wrapper module is needed), each into `~/.cache/kfaas/<name>-<version>/bin` under its own build lock,
through a `bin.partial` folder renamed once the binary is there, with a stamp naming the version.
They are built with `nice -n 19`: the machine's cores are shared with the other builds.

kube-router v2.1.0 has security advisories filed against it; it is used here as a test-only
NetworkPolicy enforcer (docs/testing.md) and never ships with kfaas. Prometheus is built without
its web UI assets (the `builtinassets` tag needs a JavaScript build): the HTTP query API is all the
tests use, and with Kubernetes service discovery only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from services.base import ServiceError, build_lock, cache_root, progress
from services.cluster_build import find_go

KUBE_ROUTER_VERSION = "v2.1.0"
PROMETHEUS_VERSION = "v0.316.0"  # Prometheus 3.16.0: v3 releases are tagged v0.3xx in Go


@dataclass(frozen=True)
class GoProgram:
    """One main package at one version, installed into its own cache folder."""

    name: str
    version: str
    package: str
    ldflags: str
    tags: str = ""

    def bin_dir(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}" / "bin"

    def binary(self) -> Path:
        return self.bin_dir() / self.name

    def stamp(self) -> str:
        return f"{self.package}@{self.version} tags {self.tags} ldflags {self.ldflags}\n"

    def is_built(self) -> bool:
        stamp = self.bin_dir() / ".complete"
        return stamp.exists() and stamp.read_text() == self.stamp() and self.binary().exists()

    def build(self) -> Path:
        """The binary, built first unless this version is already in the cache."""
        if not self.is_built():
            go = find_go()
            with build_lock(self.bin_dir().parent.name):
                if not self.is_built():
                    self._build(go)
        return self.binary()

    def _build(self, go: Path) -> None:
        target = self.bin_dir()
        partial = target.with_name("bin.partial")
        partial.mkdir(parents=True, exist_ok=True)
        progress(f"building {self.name} {self.version} into {target} (minutes the first time)")
        started = time.monotonic()
        env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(partial))
        env["PATH"] = f"{go.parent}{os.pathsep}{env.get('PATH', '')}"
        env["GOFLAGS"] = "-trimpath -buildvcs=false"
        argv = ["nice", "-n", "19", str(go), "install", "-ldflags", self.ldflags]
        if self.tags:
            argv += ["-tags", self.tags]
        argv.append(f"{self.package}@{self.version}")
        # Go's progress goes to fd 2, never stdout (which carries only `export` lines).
        done = subprocess.run(argv, env=env, cwd=partial, stdout=2, stderr=2)
        if done.returncode != 0:
            raise ServiceError(f"build failed ({done.returncode}): {' '.join(argv)}")
        if not (partial / self.name).exists():
            raise ServiceError(f"the build left no {self.name} in {partial}")
        (partial / ".complete").write_text(self.stamp())
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        progress(f"built {self.name} {self.version} in {time.monotonic() - started:.0f} s")


KUBE_ROUTER = GoProgram(
    name="kube-router",
    version=KUBE_ROUTER_VERSION,
    package="github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",
    ldflags=f"-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version="
    f"{KUBE_ROUTER_VERSION}",
)
PROMETHEUS = GoProgram(
    name="prometheus",
    version=PROMETHEUS_VERSION,
    package="github.com/prometheus/prometheus/cmd/prometheus",
    ldflags="-s -w -X github.com/prometheus/common/version.Version=3.16.0",
    # Kubernetes discovery only: the other 25 providers' cloud SDKs more than double the build
    # (a full build took over 11 minutes and 3.3 GB here before it was stopped).
    tags="remove_all_sd,enable_kubernetes_sd",
)
