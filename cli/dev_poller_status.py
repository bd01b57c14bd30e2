"""``kfaas dev``'s pollers report into its object store, as a poller pod reports to the API server.

In a cluster each poller patches its mapping's status (lag, last batch, the ``Polling`` condition;
``kfaas.pollers.status``). ``kfaas dev`` runs the pollers in its own process, and this is the
``StatusStore`` they write through there: the same report, so ``GetEventSourceMapping``'s
``LastProcessingResult`` and the stored object's conditions say why a mapping does not poll — a
refused password or an untrusted certificate (ADR 027) — exactly as in a cluster.
"""

from __future__ import annotations

from collections.abc import Callable

from kfaas import object_store as store
from kfaas.manifests import EventSourceMapping
from kfaas.object_store import Body, ObjectStore
from kfaas.pollers.errors import StatusError


class StoredMappingStatus:
    """One mapping's object in ``kfaas dev``'s store (a ``kfaas.pollers.status.StatusStore``)."""

    def __init__(self, objects: ObjectStore, namespace: str, name: str) -> None:
        self.objects = objects
        self.namespace = namespace
        self.name = name

    async def read(self) -> Body | None:
        try:
            return await self.objects.get(store.EVENT_SOURCE_MAPPINGS, self.namespace, self.name)
        except store.ObjectNotFound:
            return None
        except store.StoreError as exc:
            raise StatusError(f"reading {self.namespace}/{self.name}: {exc}") from exc

    async def write(self, status: Body, resource_version: str) -> None:
        try:
            await self.objects.write_status(
                store.EVENT_SOURCE_MAPPINGS,
                self.namespace,
                self.name,
                status,
                resource_version=resource_version,
            )
        except store.Conflict as exc:
            raise StatusError(str(exc), conflict=True) from exc
        except store.StoreError as exc:
            raise StatusError(f"writing {self.namespace}/{self.name} status: {exc}") from exc

    async def close(self) -> None:
        return None


def status_stores(objects: ObjectStore) -> Callable[[EventSourceMapping], StoredMappingStatus]:
    """What ``PollerGroup`` asks for each mapping it starts."""

    def of(mapping: EventSourceMapping) -> StoredMappingStatus:
        return StoredMappingStatus(objects, mapping.metadata.namespace, mapping.metadata.name)

    return of
