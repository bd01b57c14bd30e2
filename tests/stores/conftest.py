"""The object stores under test: the same conformance tests run on every implementation.

``subject`` is a ``Subject``: the store, two namespaces it may write in, and fresh names. The
folder store runs everywhere; the Kubernetes store (``kube``, marked ``kwok``) runs on the kwok
control plane with kfaas's CRDs (``crds/``) installed, so both are judged by the same
assertions.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from services.cluster import Cluster

from kfaas.dir_store import DirectoryObjectStore
from kfaas.gateway.kube_store import KubernetesObjectStore
from kfaas.kube_clients import Credentials, KubeClient
from kfaas.object_store import GATEWAY_MANAGER, ObjectStore

CRDS = Path(__file__).resolve().parents[2] / "crds"


@dataclass
class Subject:
    store: ObjectStore
    namespaces: tuple[str, str]
    # Which implementation: "dir" or "kube".
    kind: str
    _count: list[int] = field(default_factory=lambda: [0])

    def name(self, prefix: str = "f") -> str:
        self._count[0] += 1
        return f"{prefix}-{uuid.uuid4().hex[:6]}-{self._count[0]}"


@dataclass(frozen=True)
class KubeSetup:
    kubeconfig: Path
    namespaces: tuple[str, str]


@pytest.fixture(scope="session")
def kube_setup(kwok_service: Cluster) -> Iterator[KubeSetup]:
    """kfaas's CRDs installed and two namespaces for the store tests."""
    kwok_service.install_crds(CRDS)
    suffix = uuid.uuid4().hex[:6]
    namespaces = (f"stores-a-{suffix}", f"stores-b-{suffix}")
    for namespace in namespaces:
        kwok_service.kubectl("create", "namespace", namespace)
    yield KubeSetup(kwok_service.kubeconfig, namespaces)
    kwok_service.kubectl("delete", "namespace", "--wait=false", *namespaces)


@pytest.fixture(params=["dir", pytest.param("kube", marks=pytest.mark.kwok)])
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    if request.param == "dir":
        with DirectoryObjectStore.open(tmp_path / "state") as folder:
            yield Subject(folder, ("team-a", "team-b"), "dir")
        return
    setup: KubeSetup = request.getfixturevalue("kube_setup")
    credentials = Credentials.load(str(setup.kubeconfig))
    async with KubeClient(credentials, field_manager=GATEWAY_MANAGER) as client:
        yield Subject(KubernetesObjectStore(client), setup.namespaces, "kube")
