"""The store's GC: fresh lists mark, the folder sweeps; a failed list deletes nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, cast

import pytest
from codestore.zips import make_zip

from kfaas.code_digests import CodeDigest
from kfaas.code_folder import DirectoryCodeStore
from kfaas.codestore.gc import collect
from kfaas.codestore.server import StoreMetrics
from kfaas.kube_clients import KubeClient, KubeError

KEPT = make_zip([("kept.py", "x = 1\n")])
RUNNING = make_zip([("running.py", "x = 2\n")])
VERSIONED = make_zip([("versioned.py", "x = 3\n")])
UNUSED = make_zip([("unused.py", "x = 4\n")])
FRESH = make_zip([("fresh.py", "x = 5\n")])
HOUR = 3600.0


class FakeLists:
    """What ``KubeClient.list`` answers per plural; an exception to raise instead, if given."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str, str | None]] = []
        self.namespaces: set[str | None] = set()

    async def list(
        self, api_version: str, plural: str, namespace: str | None = None, *,
        label_selector: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        self.asked.append((api_version, plural, label_selector))
        self.namespaces.add(namespace)
        answer = self.answers[plural]
        if isinstance(answer, Exception):
            raise answer
        return {"metadata": {}, "items": answer}


def _zip_code(data: bytes) -> dict[str, Any]:
    return {"zip": {"sha256": CodeDigest.of(data).hex, "size": len(data)}}


def _lists() -> dict[str, Any]:
    return {
        "functions": [{"spec": {"code": _zip_code(KEPT)}}],
        "functionversions": [{"spec": {"template": {"code": _zip_code(VERSIONED)}}}],
        "deployments": [],
        "replicasets": [
            {
                "spec": {
                    "template": {
                        "metadata": {
                            "annotations": {"kfaas.dev/code-sha256": CodeDigest.of(RUNNING).hex}
                        }
                    }
                }
            }
        ],
    }


@pytest.fixture
async def store(tmp_path: Path) -> DirectoryCodeStore:
    store = DirectoryCodeStore(tmp_path)
    old = time.time() - 2 * HOUR
    for data in (KEPT, RUNNING, VERSIONED, UNUSED, FRESH):
        digest = await store.put(data)
        if data is not FRESH:
            os.utime(store.blob_path(digest), (old, old))
    return store


async def _stored(store: DirectoryCodeStore) -> set[CodeDigest]:
    return {blob.digest for blob in await store.blobs()}


async def test_only_the_old_unreferenced_blob_goes(store: DirectoryCodeStore) -> None:
    lists = FakeLists(_lists())
    metrics = StoreMetrics()
    deleted = await collect(store, cast(KubeClient, lists), grace_seconds=HOUR, metrics=metrics)
    assert deleted == [CodeDigest.of(UNUSED)]
    assert await _stored(store) == {
        CodeDigest.of(data) for data in (KEPT, RUNNING, VERSIONED, FRESH)
    }
    # Cluster-wide lists; the workloads are the operator's only.
    assert ("kfaas.dev/v1alpha1", "functions", None) in lists.asked
    assert ("apps/v1", "replicasets", "app.kubernetes.io/managed-by=kfaas-operator") in lists.asked
    assert metrics.blobs._value.get() == 4


@pytest.mark.parametrize(
    "failing",
    [
        # FunctionVersion's CRD not installed yet: never delete on partial knowledge.
        ("functionversions", KubeError(404, "NotFound", "the server could not find the resource")),
        ("functions", KubeError(403, "Forbidden", "cannot list functions")),
        ("replicasets", KubeError(0, "Unreachable", "connection refused")),
    ],
)
async def test_a_failed_list_skips_the_whole_sweep(
    store: DirectoryCodeStore, failing: tuple[str, KubeError]
) -> None:
    answers = _lists()
    answers[failing[0]] = failing[1]
    before = await _stored(store)
    metrics = StoreMetrics()
    deleted = await collect(
        store, cast(KubeClient, FakeLists(answers)), grace_seconds=HOUR, metrics=metrics
    )
    assert deleted is None
    assert await _stored(store) == before
    assert metrics.sweeps.labels("skipped")._value.get() == 1


async def test_a_list_cut_short_skips_the_sweep(store: DirectoryCodeStore) -> None:
    class Paged(FakeLists):
        async def list(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            answer = await super().list(*args, **kwargs)
            answer["metadata"]["continue"] = "token"
            return answer

    before = await _stored(store)
    lists = cast(KubeClient, Paged(_lists()))
    assert await collect(store, lists, grace_seconds=HOUR, metrics=StoreMetrics()) is None
    assert await _stored(store) == before


async def test_with_a_watched_namespace_only_it_is_listed(store: DirectoryCodeStore) -> None:
    lists = FakeLists(_lists())
    await collect(
        store, cast(KubeClient, lists), grace_seconds=HOUR, metrics=StoreMetrics(),
        namespace="team-a",
    )  # fmt: skip
    assert lists.namespaces == {"team-a"}
