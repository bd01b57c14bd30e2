"""The code store's garbage collector: mark from fresh lists, then sweep the folder (ADR 025).

Every interval the store LISTs (never a watch cache, which may lag) Functions and FunctionVersions
in all namespaces and the operator's Deployments and ReplicaSets, marks the digests they name
(``kfaas.code_marks``) and lets ``DirectoryCodeStore.sweep`` delete what is unmarked and older
than the grace period. Any list that fails — forbidden, unreachable, or FunctionVersions not
installed yet (404) — skips the whole sweep: a blob is never deleted on partial knowledge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from kfaas.code_digests import CodeDigest
from kfaas.code_folder import DirectoryCodeStore
from kfaas.code_marks import marked_digests
from kfaas.kube_clients import KubeClient, KubeError

from .server import StoreMetrics

log = logging.getLogger("kfaas.codestore.gc")

MANAGED_BY_OPERATOR = "app.kubernetes.io/managed-by=kfaas-operator"


@dataclass(frozen=True)
class Listing:
    api_version: str
    plural: str
    label_selector: str | None = None


FUNCTIONS = Listing("kfaas.dev/v1alpha1", "functions")
VERSIONS = Listing("kfaas.dev/v1alpha1", "functionversions")
DEPLOYMENTS = Listing("apps/v1", "deployments", MANAGED_BY_OPERATOR)
REPLICA_SETS = Listing("apps/v1", "replicasets", MANAGED_BY_OPERATOR)


class MarkingFailed(Exception):
    """A list the marking needs could not be read; the sweep is skipped. Says which."""


async def _items(
    client: KubeClient, listing: Listing, namespace: str | None
) -> list[dict[str, object]]:
    try:
        answer = await client.list(
            listing.api_version, listing.plural, namespace, label_selector=listing.label_selector
        )
    except KubeError as exc:
        raise MarkingFailed(f"cannot list {listing.plural}: {exc}") from exc
    if answer.get("metadata", {}).get("continue"):
        # The API server cut the list (it does so only when asked to page): partial knowledge.
        raise MarkingFailed(f"the list of {listing.plural} came back incomplete")
    items = answer.get("items")
    if not isinstance(items, list):
        raise MarkingFailed(f"the list of {listing.plural} has no items")
    return items


async def referenced(client: KubeClient, namespace: str | None = None) -> set[CodeDigest]:
    """Every digest some object of ``namespace`` (None: all) names; ``MarkingFailed`` if any list
    could not be read."""
    functions, versions, deployments, replica_sets = await asyncio.gather(
        *(
            _items(client, what, namespace)
            for what in (FUNCTIONS, VERSIONS, DEPLOYMENTS, REPLICA_SETS)
        )
    )
    return marked_digests(functions, versions, [*deployments, *replica_sets])


async def collect(
    store: DirectoryCodeStore,
    client: KubeClient,
    *,
    grace_seconds: float,
    metrics: StoreMetrics,
    namespace: str | None = None,
) -> Sequence[CodeDigest] | None:
    """One mark and sweep; the deleted digests, or None when the sweep was skipped."""
    try:
        marked = await referenced(client, namespace)
    except MarkingFailed as exc:
        log.warning("garbage collection skipped: %s", exc)
        metrics.sweeps.labels("skipped").inc()
        return None
    deleted = await store.sweep({digest.hex for digest in marked}, grace_seconds=grace_seconds)
    metrics.sweeps.labels("done").inc()
    metrics.deleted.inc(len(deleted))
    for digest in deleted:
        log.info("deleted unreferenced code %s", digest.hex)
    await count_blobs(store, metrics)
    return deleted


async def count_blobs(store: DirectoryCodeStore, metrics: StoreMetrics) -> None:
    """Set the blobs and bytes gauges from the folder."""
    blobs = await store.blobs()
    sizes = await asyncio.to_thread(_sizes, store, [blob.digest for blob in blobs])
    metrics.blobs.set(len(blobs))
    metrics.bytes.set(sum(sizes))


def _sizes(store: DirectoryCodeStore, digests: list[CodeDigest]) -> list[int]:
    found = []
    for digest in digests:
        try:
            found.append(store.blob_path(digest).stat().st_size)
        except FileNotFoundError:
            continue
    return found


async def collect_forever(
    store: DirectoryCodeStore,
    client: KubeClient,
    *,
    interval: float,
    grace_seconds: float,
    metrics: StoreMetrics,
    namespace: str | None = None,
) -> None:
    while True:
        await asyncio.sleep(interval)
        await collect(
            store, client, grace_seconds=grace_seconds, metrics=metrics, namespace=namespace
        )
