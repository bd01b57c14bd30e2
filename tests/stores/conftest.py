"""The object stores under test: the same conformance tests run on every implementation.

``subject`` is a ``Subject``: the store, two namespaces it may write in, and fresh names. The
folder store runs everywhere; the Kubernetes store (``kube``) runs on the kwok control plane with
kfaas's CRDs installed, so both are judged by the same assertions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kfaas.dir_store import DirectoryObjectStore
from kfaas.object_store import ObjectStore


@dataclass
class Subject:
    store: ObjectStore
    namespaces: tuple[str, str]
    # Which implementation: "dir" or "kube" (a few facts differ, e.g. time resolution).
    kind: str
    _count: list[int] = field(default_factory=lambda: [0])

    def name(self, prefix: str = "f") -> str:
        self._count[0] += 1
        return f"{prefix}-{uuid.uuid4().hex[:6]}-{self._count[0]}"


def _directory(tmp_path: Path) -> Iterator[Subject]:
    store = DirectoryObjectStore.open(tmp_path / "state")
    try:
        yield Subject(store, ("team-a", "team-b"), "dir")
    finally:
        store.close()


@pytest.fixture(params=["dir"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param == "dir":
        yield from _directory(tmp_path)
