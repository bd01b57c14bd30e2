"""``kfaas dev``'s objects in a folder, written as the API server would keep them (ADR 024).

``kfaas dev --state DIR`` must serve the management API without a cluster and keep what was
created across restarts, with the same facts a cluster gives (uid, generation, resourceVersion,
creationTimestamp, managedFields times), so RevisionId, LastModified and State read alike on
both. ``DirectoryObjectStore`` implements ``kfaas.object_store.ObjectStore`` over
``DIR/objects/<plural>/<namespace>/<name>.yaml``: each write goes to a temporary file in the same
folder, is fsynced and renamed over the old one, so a crash leaves the old or the new object,
never half of one. One process owns a folder (an exclusive ``flock`` on ``DIR/lock``), so the
objects are read once at ``open`` and kept in memory; every write goes through to disk.
"""

from __future__ import annotations

import copy
import fcntl
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from . import object_store as store
from .api_objects import from_api_object
from .durable_files import write_whole
from .manifests import EventSourceMapping, Function, ManifestError
from .object_bodies import (
    body_for_create,
    invalid_from,
    replaced_body,
    rfc3339_now,
    with_status,
)
from .object_store import Body, ChangeListener, StoreError
from .schedule_manifests import parse_schedule
from .version_manifests import checked_code, parse_alias, parse_version

log = logging.getLogger("kfaas.dir_store")

Validator = Callable[[Body], None]
Clock = Callable[[], str]

# Kubernetes' own alphabet for generated name suffixes (no vowels: no words by chance).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# A generated name keeps at most this much of its prefix, so prefix + suffix is a DNS label.
_GENERATED_PREFIX = 58


def _validate_function(body: Body) -> None:
    from_api_object(body, Function)


def _validate_mapping(body: Body) -> None:
    from_api_object(body, EventSourceMapping)


def _validate_version(body: Body) -> None:
    # Beyond the CRD (CEL cannot hash): the code the template names is the code its digest says.
    checked_code(parse_version(body))
    # The CRD's `self == oldSelf` on spec: the generation moves exactly when the spec changed,
    # and a version is created at 1, so a later one is a replaced spec.
    if int(body["metadata"].get("generation", 1)) != 1:
        raise store.Invalid(
            f'FunctionVersion "{body["metadata"]["name"]}" is invalid: spec: a published '
            "version is immutable: publish a new version instead",
            "spec",
        )


def _validate_alias(body: Body) -> None:
    parse_alias(body)


def _validate_schedule(body: Body) -> None:
    parse_schedule(body)


# What the API server's schema checks, by plural; a validator raises ``object_store.Invalid`` or
# a ``ManifestError`` (the store turns it into ``Invalid`` naming its field).
VALIDATORS: dict[str, Validator] = {
    store.FUNCTIONS: _validate_function,
    store.EVENT_SOURCE_MAPPINGS: _validate_mapping,
    store.FUNCTION_VERSIONS: _validate_version,
    store.FUNCTION_ALIASES: _validate_alias,
    store.SCHEDULES: _validate_schedule,
}


class DirectoryObjectStore:
    """The ``ObjectStore`` of ``kfaas dev`` (see the module docstring): ``open``, ``close``."""

    def __init__(self, root: Path, lock_fd: int, clock: Clock) -> None:
        self.root = root
        self.objects_dir = root / "objects"
        self._lock_fd = lock_fd
        self._clock = clock
        self._objects: dict[str, dict[tuple[str, str], Body]] = {p: {} for p in store.KINDS}
        self._resource_version = 0
        self._listeners: list[ChangeListener] = []
        # Writes do their file I/O inline (no await inside), but a thread (a test, a reload
        # watcher) may call in too: one lock keeps each read-modify-write whole.
        self._mutex = threading.RLock()

    @classmethod
    def open(cls, root: Path, *, clock: Clock = rfc3339_now) -> DirectoryObjectStore:
        """Take ``root`` for this process (``StoreError`` if another holds it) and read it."""
        root.mkdir(parents=True, exist_ok=True)
        (root / "objects").mkdir(exist_ok=True)
        fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(
                f"another kfaas dev uses the state directory {root}: stop it, or give this one "
                "its own with --state"
            ) from None
        opened = cls(root, fd, clock)
        try:
            opened._load()
        except BaseException:
            opened.close()
            raise
        return opened

    def close(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> DirectoryObjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener(plural, "namespace/name", body or None)`` after every change."""
        self._listeners.append(listener)

    # -- reads -----------------------------------------------------------------------------------

    async def get(self, plural: str, namespace: str, name: str) -> Body:
        with self._mutex:
            return copy.deepcopy(self._find(plural, namespace, name))

    async def list(
        self,
        plural: str,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> list[Body]:
        with self._mutex:
            objects = self._kind(plural)
            found = []
            for (item_namespace, _), body in sorted(objects.items()):
                if namespace is not None and item_namespace != namespace:
                    continue
                own = body["metadata"].get("labels") or {}
                if labels and any(own.get(key) != value for key, value in labels.items()):
                    continue
                found.append(copy.deepcopy(body))
            return found

    # -- writes ----------------------------------------------------------------------------------

    async def create(self, plural: str, body: Body, *, field_manager: str) -> Body:
        with self._mutex:
            objects = self._kind(plural)
            created = body_for_create(
                plural, body, field_manager=field_manager, uid=str(uuid.uuid4()), now=self._clock()
            )
            metadata = created["metadata"]
            namespace = metadata["namespace"]
            if "name" not in metadata:
                metadata["name"] = self._generated_name(objects, namespace, body)
            if (namespace, metadata["name"]) in objects:
                raise store.AlreadyExists(
                    f'{store.KINDS[plural]} "{metadata["name"]}" already exists in {namespace}'
                )
            self._validate(plural, created)
            return self._write(plural, created)

    async def replace(self, plural: str, body: Body, *, field_manager: str) -> Body:
        with self._mutex:
            metadata = body.get("metadata") or {}
            live = self._find(plural, str(metadata.get("namespace")), str(metadata.get("name")))
            replaced = replaced_body(plural, live, body, field_manager, now=self._clock())
            if replaced is None:  # nothing changed: the API server writes nothing either
                return copy.deepcopy(live)
            self._validate(plural, replaced)
            return self._write(plural, replaced)

    async def write_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Body:
        with self._mutex:
            live = self._find(plural, namespace, name)
            _check_current(plural, live, resource_version)
            updated = with_status(live, status)
            if updated.get("status") == live.get("status"):  # a no-op, as on the API server
                return copy.deepcopy(live)
            return self._write(plural, updated)

    async def delete(
        self, plural: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> None:
        with self._mutex:
            live = self._find(plural, namespace, name)
            _check_current(plural, live, resource_version)
            self._remove(plural, live)

    # -- the folder ------------------------------------------------------------------------------

    def _kind(self, plural: str) -> dict[tuple[str, str], Body]:
        objects = self._objects.get(plural)
        if objects is None:
            raise StoreError(f"unknown kind {plural!r}: one of {', '.join(store.KINDS)}")
        return objects

    def _find(self, plural: str, namespace: str, name: str) -> Body:
        body = self._kind(plural).get((namespace, name))
        if body is None:
            raise store.ObjectNotFound(f'{store.KINDS[plural]} "{name}" not found in {namespace}')
        return body

    def _validate(self, plural: str, body: Body) -> None:
        validator = VALIDATORS.get(plural)
        if validator is None:
            return
        try:
            validator(body)
        except ManifestError as exc:
            raise invalid_from(exc) from exc

    def _generated_name(
        self, objects: Mapping[tuple[str, str], Body], namespace: str, body: Body
    ) -> str:
        prefix = str(body["metadata"]["generateName"])[:_GENERATED_PREFIX]
        for _ in range(8):
            name = prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
            if (namespace, name) not in objects:
                return name
        raise store.AlreadyExists(f"no free name with the prefix {prefix!r} after 8 draws")

    def _path(self, plural: str, namespace: str, name: str) -> Path:
        return self.objects_dir / plural / namespace / f"{name}.yaml"

    def _write(self, plural: str, body: Body) -> Body:
        """Give ``body`` the next resourceVersion and write it (the counter first: a crash
        between the two leaves a gap in the numbers, never a number used twice)."""
        self._resource_version += 1
        version = str(self._resource_version)
        write_whole(self.objects_dir / ".resource-version", (version + "\n").encode())
        body["metadata"]["resourceVersion"] = version
        metadata = body["metadata"]
        path = self._path(plural, metadata["namespace"], metadata["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, yaml.safe_dump(body, sort_keys=False, allow_unicode=True).encode())
        self._objects[plural][(metadata["namespace"], metadata["name"])] = body
        self._tell(plural, body)
        return copy.deepcopy(body)

    def _remove(self, plural: str, body: Body) -> None:
        """Delete ``body``, then what it owns (the garbage collector's cascade, done at once)."""
        metadata = body["metadata"]
        self._path(plural, metadata["namespace"], metadata["name"]).unlink(missing_ok=True)
        del self._objects[plural][(metadata["namespace"], metadata["name"])]
        self._tell(plural, None, f"{metadata['namespace']}/{metadata['name']}")
        uid = metadata.get("uid")
        for child_plural, objects in self._objects.items():
            for key, child in list(objects.items()):
                owners = child["metadata"].get("ownerReferences") or []
                # A child may be gone already: a grandchild owned by both went with its parent.
                if uid and key in objects and any(owner.get("uid") == uid for owner in owners):
                    self._remove(child_plural, child)

    def _tell(self, plural: str, body: Body | None, key: str | None = None) -> None:
        if key is None and body is not None:
            key = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
        for listener in self._listeners:
            try:
                listener(plural, str(key), copy.deepcopy(body))
            except Exception:
                # The write has happened: a listener's bug must not make it look failed.
                log.exception("a store listener failed on %s %s", plural, key)

    def _load(self) -> None:
        for leftover in self.objects_dir.rglob(".*.tmp"):
            leftover.unlink()  # a write cut short by a crash: the object it replaced stands
        counter = self.objects_dir / ".resource-version"
        highest = int(counter.read_text().strip() or 0) if counter.exists() else 0
        for plural, objects in self._objects.items():
            for path in sorted((self.objects_dir / plural).glob("*/*.yaml")):
                body = _read(path)
                metadata = body["metadata"]
                objects[(metadata["namespace"], metadata["name"])] = body
                highest = max(highest, int(metadata.get("resourceVersion") or 0))
        self._resource_version = highest


def _check_current(plural: str, live: Body, resource_version: str | None) -> None:
    """``Conflict`` unless ``live`` is still at ``resource_version`` (None: no precondition)."""
    current = live["metadata"]["resourceVersion"]
    if resource_version is not None and resource_version != current:
        raise store.Conflict(
            f'{store.KINDS[plural]} "{live["metadata"]["name"]}" changed since it was read '
            f"(resourceVersion {current}, not {resource_version})"
        )


def _read(path: Path) -> Body:
    try:
        body = yaml.safe_load(path.read_text())
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise ValueError("not an API object")
        if body["metadata"].get("namespace") != path.parent.name or body["metadata"].get(
            "name"
        ) != path.name.removesuffix(".yaml"):
            raise ValueError("its metadata names another object than its path")
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise StoreError(f"cannot read {path}: {exc}; fix or remove it") from exc
    return body
