"""The product on the real node: the chart installed once per run as docs/install.md says.

`release` is the installed chart with its SigV4 caller; `platform_redis_url` the platform Redis
(on the node's bridge address, where pods reach it); `kill_pod` SIGKILLs a pod's containers
through the node's containerd, as an OOM kill or a crash would.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chart.fixtures import helm, pytest_collection_finish
from services.base import default_state_dir
from services.fixtures import REUSE_CLUSTER
from services.image_fixtures import BuiltImages
from services.node import NodeCluster
from services.redis_server import PodRedis

from node.code_store_volume import code_store_volume
from node.kfaas_release import (
    PLATFORM_NAMESPACE,
    RELEASE,
    Kubectl,
    Release,
    install,
    installed,
)

__all__ = ["helm", "pytest_collection_finish"]


@pytest.fixture(scope="session")
def platform_redis_url(cluster_service: NodeCluster, services_state_dir: Path) -> Iterator[str]:
    if os.environ.get(REUSE_CLUSTER) == "1":
        # Beside the reused node, kept running for the release a later run may reuse too.
        redis = PodRedis(default_state_dir(), cluster_service.bridge_address)
        redis.up()
        yield redis.url
        return
    redis = PodRedis(services_state_dir, cluster_service.bridge_address)
    redis.up()
    try:
        yield redis.url
    finally:
        redis.down()


@pytest.fixture(scope="session")
def kubectl(cluster_service: NodeCluster) -> Kubectl:
    return Kubectl(cluster_service.kubectl)


def _uninstall(kubectl: Kubectl, cluster: NodeCluster, helm: Path) -> None:
    """What a previous run left on a reused cluster (KFAAS_REUSE_CLUSTER=1) goes first."""
    subprocess.run(
        [str(helm), "uninstall", RELEASE, "-n", PLATFORM_NAMESPACE, "--wait",
         "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    kubectl("delete", "namespace", "e2e", PLATFORM_NAMESPACE, "--ignore-not-found",
            "--timeout=180s")  # fmt: skip


@pytest.fixture(scope="session")
def release(
    kfaas_images: BuiltImages,  # built before the first test, so no test's timeout cuts a build
    cluster_service: NodeCluster,
    kubectl: Kubectl,
    helm: Path,
    platform_redis_url: str,
) -> Iterator[Release]:
    image = cluster_service.environment().get("KFAAS_IMAGE")
    if not image:
        pytest.fail("the cluster imported no kfaas image (services.images)", pytrace=False)
    # python3.13 functions run on an image of their own, as a platform team would configure it.
    python313 = kfaas_images.kfaas["3.13"]
    if not cluster_service.has_image(python313.ref):
        cluster_service.import_image(python313.archive)
    reusing = os.environ.get(REUSE_CLUSTER) == "1"
    kept = installed(kubectl, image) if reusing else None
    if kept is not None and kept.deployed_image() == image:
        # A developer's loop on a reused node: the release the last run left, same image.
        yield kept
        return
    _uninstall(kubectl, cluster_service, helm)
    # No provisioner on the node: the code store's claim binds to a volume made here.
    code_store = code_store_volume(kubectl, cluster_service.dir.root / "code-store")
    release = install(
        kubectl, cluster_service.kubeconfig, helm, image, platform_redis_url,
        f"functions.runtimeImages.python3\\.13={python313.ref}", *code_store,
    )  # fmt: skip
    try:
        yield release
    finally:
        if not reusing:
            _uninstall(kubectl, cluster_service, helm)


@pytest.fixture(scope="session")
def kill_pod(cluster_service: NodeCluster) -> Callable[[dict[str, Any]], None]:
    def kill(pod: dict[str, Any]) -> None:
        for status in pod["status"].get("containerStatuses", []):
            container = status.get("containerID", "").removeprefix("containerd://")
            if container:
                cluster_service.ctr("tasks", "kill", "--signal", "SIGKILL", container)

    return kill
