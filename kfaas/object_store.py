"""The objects the management API reads and writes, kept as the API server keeps them (ADR 024).

The management handlers (CreateFunction, PublishVersion, TagResource, …) are written once against
``ObjectStore``; a cluster's gateway uses the Kubernetes implementation (``gateway/kube_store.py``)
and ``kfaas dev`` a folder (``kfaas/dir_store.py``). Both hand back full API bodies — ``metadata``
with ``uid``, ``generation``, ``resourceVersion``, ``creationTimestamp`` and ``managedFields``,
``spec``, ``status`` — so ``lambda_shapes.object_facts`` and ``function_state`` read either alike.
Errors are this module's, whatever the backend: the handlers map them to Lambda's error types.

Pure: a Protocol, its errors and the resource names. No client, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

Body = dict[str, Any]

# The plurals of the kinds the API manages (group kfaas.dev, version v1alpha1).
FUNCTIONS = "functions"
FUNCTION_VERSIONS = "functionversions"
FUNCTION_ALIASES = "functionaliases"
EVENT_SOURCE_MAPPINGS = "eventsourcemappings"
SCHEDULES = "schedules"
KINDS: Mapping[str, str] = {
    FUNCTIONS: "Function",
    FUNCTION_VERSIONS: "FunctionVersion",
    FUNCTION_ALIASES: "FunctionAlias",
    EVENT_SOURCE_MAPPINGS: "EventSourceMapping",
    SCHEDULES: "Schedule",
}

# Field managers: who wrote a spec, as managedFields records it.
GATEWAY_MANAGER = "kfaas-gateway"
# Tags are metadata written by their own manager, so they never move LastModified.
TAGS_MANAGER = "kfaas-gateway-tags"
DEV_FILES_MANAGER = "kfaas-dev-files"

# A change seen by a watcher: (plural, "namespace/name", the body, or None once deleted).
ChangeListener = Callable[[str, str, Body | None], None]


class StoreError(Exception):
    """The store refused or could not do an operation; ``str()`` says why, fit for a caller."""


class ObjectNotFound(StoreError):
    """No object of that kind and name (404)."""


class AlreadyExists(StoreError):
    """An object of that kind and name exists (409 AlreadyExists on create)."""


class Conflict(StoreError):
    """The object changed since it was read: the resourceVersion precondition failed (409)."""


class Invalid(StoreError):
    """The object was refused by validation (422); ``field`` is the path it names, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StoreUnavailable(StoreError):
    """The store could not be reached or answered with a server error; nothing was written."""


class StoreBusy(StoreUnavailable):
    """The store asked to be called again later (the API server's 429); nothing was written."""


class ObjectStore(Protocol):
    """Namespaced kfaas objects by plural, with the API server's write semantics.

    - ``create``: ``metadata.name`` or ``metadata.generateName``; the store sets ``uid``,
      ``generation`` 1, ``resourceVersion``, ``creationTimestamp`` and a managedFields entry for
      ``field_manager`` owning ``f:spec`` with the write's time.
    - ``replace``: writes the body's ``metadata.labels``/``annotations``/``ownerReferences`` and
      ``spec`` (never ``status``) if ``metadata.resourceVersion`` is still current, else
      ``Conflict``. ``generation`` goes up by one exactly when ``spec`` changed, and only then
      does ``field_manager``'s managedFields time move (so a tag write keeps LastModified).
    - ``write_status``: merges ``status`` (top-level keys replace, None removes) without
      touching generation; with ``resource_version``, only if the object is still at it, else
      ``Conflict`` (the scheduler's claims, ADR 026). Used by ``kfaas dev`` to report what the
      operator would and by the scheduler, never by the gateway in a cluster.
    - ``delete``: with ``resource_version`` as a precondition if given; objects whose
      ownerReferences name the deleted object's uid are deleted too (the API server's garbage
      collector does this in the background; a folder store does it at once).
    """

    async def get(self, plural: str, namespace: str, name: str) -> Body: ...

    async def list(
        self,
        plural: str,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> list[Body]: ...

    async def create(self, plural: str, body: Body, *, field_manager: str) -> Body: ...

    async def replace(self, plural: str, body: Body, *, field_manager: str) -> Body: ...

    async def write_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Body: ...

    async def delete(
        self, plural: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> None: ...
