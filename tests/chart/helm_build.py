"""Builds Helm once per machine through the Go module proxy, into ~/.cache/kfaas/helm-<version>/.

No Helm release tarball can be downloaded here, but ``helm.sh/helm/v3`` is a Go module whose
go.mod has no replace directives, so ``go install helm.sh/helm/v3/cmd/helm@<version>`` builds the
released program with its own pinned dependencies (checked against the Go checksum database).
A cold build takes a few minutes; the binary lives outside the repository and is reused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from services.base import ServiceError, build_lock, cache_root, progress
from services.cluster_build import find_go

HELM_VERSION = "v3.19.0"


def helm_path() -> Path:
    return cache_root() / f"helm-{HELM_VERSION}" / "bin" / "helm"


def build() -> Path:
    """The helm binary, built first if this version is not in the cache yet.

    One build per machine at a time (two test runs starting together once removed each other's
    half-built folder and failed 37 chart and operator tests).
    """
    target = helm_path()
    if target.exists():
        return target
    go = find_go()
    with build_lock(target.parent.parent.name):
        if not target.exists():
            _build(go, target)
    return target


def _build(go: Path, target: Path) -> None:
    partial = target.parent.with_name("bin.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    progress(f"building Helm {HELM_VERSION} into {target.parent} (a few minutes, once)")
    started = time.monotonic()
    done = subprocess.run(
        [
            str(go),
            "install",
            "-trimpath",
            "-ldflags",
            f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
            f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}",
        ],
        env={**_environment(go), "GOBIN": str(partial)},
        cwd=partial,
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    if done.returncode != 0 or not (partial / "helm").exists():
        raise ServiceError(f"building Helm {HELM_VERSION} failed ({done.returncode})")
    shutil.rmtree(target.parent, ignore_errors=True)
    partial.rename(target.parent)
    progress(f"built Helm in {time.monotonic() - started:.0f} s")


def _environment(go: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{go.parent}{os.pathsep}{env.get('PATH', '')}"
    env["CGO_ENABLED"] = "0"
    env.pop("GOFLAGS", None)
    return env
