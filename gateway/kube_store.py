"""The cluster gateway's objects: ``ObjectStore`` over the Kubernetes API (ADR 024).

The management handlers create, replace and delete Functions, FunctionVersions, FunctionAliases
and EventSourceMappings as the gateway's ServiceAccount, so what the API writes is what
``kubectl get`` shows. Each operation is one request to ``/apis/kfaas.dev/v1alpha1``; the API
server keeps uid, generation, resourceVersion and managedFields, checks the CRD's schema and CEL
rules, and its garbage collector deletes what an object owns. Its answers are translated here,
once, into ``kfaas.object_store``'s errors (STYLE 9): by status and reason, never by text.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kfaas import object_store as store
from kfaas.kube_clients import KubeClient, KubeError, api_path
from kfaas.manifests import API_VERSION
from kfaas.object_bodies import WRITABLE_METADATA, is_namespace, is_object_name
from kfaas.object_store import Body

# A label selector's value may hold only these (Kubernetes' label value syntax): anything else
# (",", "=", "!", spaces) would be read as selector structure.
_LABEL_VALUE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_LABEL_KEY = _LABEL_VALUE | {"/"}


def label_selector(labels: Mapping[str, str] | None) -> str | None:
    """``labels`` as an equality selector (``a=b,c=d``), refusing what would change its meaning."""
    if not labels:
        return None
    for key, value in labels.items():
        if not key or not set(key) <= _LABEL_KEY or not set(value) <= _LABEL_VALUE:
            raise store.Invalid(f"labels: {key!r}={value!r} is not a label selector", "labels")
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def status_merge_patch(live: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that makes ``write_status``' top-level keys replace, not merge.

    A merge patch merges nested mappings key by key; the store's contract replaces each
    top-level key whole, so keys of ``live``'s mapping that ``status`` lacks are set to null.
    """
    patch: dict[str, Any] = {}
    for key, value in status.items():
        old = live.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            patch[key] = status_merge_patch(old, value) | {k: None for k in old if k not in value}
        else:
            patch[key] = copy.deepcopy(value)
    return patch


def translated(exc: KubeError, what: str) -> store.StoreError:
    """The store's error for a failed request to the API server."""
    if exc.status == 0:
        return store.StoreUnavailable(f"{what}: the Kubernetes API cannot be reached: {exc}")
    if exc.status == 401:
        return store.StoreUnavailable(f"{what}: the Kubernetes API refused the gateway's token")
    if exc.status == 403:
        return store.StoreUnavailable(
            f"{what}: the gateway's RBAC lacks this verb (a platform misconfiguration: its "
            f"ClusterRole must allow it on kfaas.dev): {exc.message}"
        )
    if exc.status == 404:
        return store.ObjectNotFound(exc.message)
    if exc.status == 409:
        if exc.reason == "AlreadyExists":
            return store.AlreadyExists(exc.message)
        return store.Conflict(exc.message)
    if exc.status in (400, 422):
        causes = exc.details.get("causes") or []
        fields = [c.get("field") for c in causes if isinstance(c, Mapping) and c.get("field")]
        return store.Invalid(exc.message, str(fields[0]) if fields else None)
    if exc.status == 429:  # throttled, or a new CRD's storage still starting: try again later
        return store.StoreBusy(f"{what}: the Kubernetes API asked to retry later: {exc}")
    if exc.status >= 500:
        return store.StoreUnavailable(f"{what}: the Kubernetes API answered {exc}")
    return store.StoreError(f"{what}: {exc}")


@contextmanager
def _requests(what: str) -> Iterator[None]:
    try:
        yield
    except KubeError as exc:
        raise translated(exc, what) from exc


def _kind(plural: str) -> str:
    kind = store.KINDS.get(plural)
    if kind is None:
        raise store.StoreError(f"unknown kind {plural!r}: one of {', '.join(store.KINDS)}")
    return kind


def _typed(plural: str, body: Body) -> Body:
    # List items and some answers lack them; the store's bodies always carry both.
    body.setdefault("apiVersion", API_VERSION)
    body.setdefault("kind", store.KINDS[plural])
    return body


def _absent(plural: str, namespace: object, name: object) -> store.ObjectNotFound:
    # A name no object can have: asking would put it into a URL, and the answer is known.
    return store.ObjectNotFound(f'{store.KINDS[plural]} "{name}" not found in {namespace}')


class KubernetesObjectStore:
    """``kfaas.object_store.ObjectStore`` on the API server, as ``client``'s identity.

    ``watch_namespace``: the one namespace a gateway installed with the chart's
    ``watchNamespace`` may read and write (its grant is a Role there); other namespaces hold
    nothing for it, and a listing of all namespaces lists that one.
    """

    def __init__(self, client: KubeClient, *, watch_namespace: str | None = None) -> None:
        self.client = client
        self.watch_namespace = watch_namespace

    def _reachable(self, namespace: object, name: object) -> bool:
        return (
            is_namespace(namespace)
            and is_object_name(name)
            and self.watch_namespace in (None, namespace)
        )

    async def get(self, plural: str, namespace: str, name: str) -> Body:
        _kind(plural)
        if not self._reachable(namespace, name):
            raise _absent(plural, namespace, name)
        with _requests(f"get {plural} {namespace}/{name}"):
            return _typed(plural, await self.client.get(API_VERSION, plural, namespace, name))

    async def list(
        self,
        plural: str,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> list[Body]:
        _kind(plural)
        if namespace is None:
            namespace = self.watch_namespace
        elif not is_namespace(namespace) or self.watch_namespace not in (None, namespace):
            return []
        selector = label_selector(labels)
        try:
            answer = await self.client.list(API_VERSION, plural, namespace, label_selector=selector)
        except KubeError as exc:
            if exc.not_found:  # the collection itself is missing: the CRD is not installed
                raise store.StoreUnavailable(
                    f"list {plural}: the API server does not serve it; install kfaas's CRDs"
                ) from exc
            raise translated(exc, f"list {plural}") from exc
        items = [_typed(plural, item) for item in answer.get("items") or []]
        return sorted(
            items, key=lambda b: (b["metadata"].get("namespace", ""), b["metadata"]["name"])
        )

    async def create(self, plural: str, body: Body, *, field_manager: str) -> Body:
        kind = _kind(plural)
        request = body.get("metadata") or {}
        metadata = {
            key: copy.deepcopy(request[key])
            for key in ("name", "generateName", "namespace", *WRITABLE_METADATA)
            if request.get(key) is not None
        }
        if not is_namespace(metadata.get("namespace")):
            raise store.Invalid(
                f"metadata.namespace: {metadata.get('namespace')!r} is not a DNS-1123 label",
                "metadata.namespace",
            )
        if self.watch_namespace not in (None, metadata["namespace"]):
            raise store.Invalid(
                f"metadata.namespace: this gateway manages namespace {self.watch_namespace} only",
                "metadata.namespace",
            )
        if body.get("kind") not in (None, kind):
            raise store.Invalid(f"kind: {body.get('kind')!r} is not {kind}", "kind")
        obj = {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": metadata,
            "spec": copy.deepcopy(body.get("spec") or {}),
        }
        with _requests(f"create {plural} in {metadata['namespace']}"):
            return _typed(
                plural, await self.client.create(obj, plural, field_manager=field_manager)
            )

    async def replace(self, plural: str, body: Body, *, field_manager: str) -> Body:
        kind = _kind(plural)
        metadata = copy.deepcopy(body.get("metadata") or {})
        namespace, name = metadata.get("namespace"), metadata.get("name")
        if not self._reachable(namespace, name):
            raise _absent(plural, namespace, name)
        if body.get("kind") not in (None, kind):
            raise store.Invalid(f"kind: {body.get('kind')!r} is not {kind}", "kind")
        # Sent managedFields would overwrite the server's record of who wrote what; status is
        # the subresource's and ignored here anyway.
        metadata.pop("managedFields", None)
        obj = {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": metadata,
            "spec": copy.deepcopy(body.get("spec") or {}),
        }
        with _requests(f"replace {plural} {namespace}/{name}"):
            return _typed(
                plural, await self.client.replace(obj, plural, field_manager=field_manager)
            )

    async def write_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Body:
        live = await self.get(plural, namespace, name)
        if resource_version is not None and live["metadata"]["resourceVersion"] != resource_version:
            raise store.Conflict(
                f'{store.KINDS[plural]} "{name}" changed since it was read (resourceVersion '
                f"{live['metadata']['resourceVersion']}, not {resource_version})"
            )
        patch: Body = {"status": status_merge_patch(live.get("status") or {}, status)}
        if resource_version is not None:
            # A patch that names a resourceVersion is applied only if it is still the object's:
            # the API server answers 409 Conflict otherwise (optimistic concurrency).
            patch["metadata"] = {"resourceVersion": resource_version}
        with _requests(f"write the status of {plural} {namespace}/{name}"):
            written = await self.client.patch(
                API_VERSION, plural, namespace, name, patch, subresource="status"
            )
        return _typed(plural, written)

    async def delete(
        self, plural: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> None:
        _kind(plural)
        if not self._reachable(namespace, name):
            raise _absent(plural, namespace, name)
        options: Body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            # What it owns goes too, deleted by the garbage collector after the answer.
            "propagationPolicy": "Background",
        }
        if resource_version is not None:
            options["preconditions"] = {"resourceVersion": resource_version}
        with _requests(f"delete {plural} {namespace}/{name}"):
            await self.client.request(
                "DELETE", api_path(API_VERSION, plural, namespace, name), body=options
            )
