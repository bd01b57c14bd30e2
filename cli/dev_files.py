"""``kfaas dev`` applies the manifests it is given into its object store, as ``kubectl apply`` does.

The store (``kfaas dev --state DIR``) is the one source of truth: the gateway's registry, the local
instances and the pollers are fed from it, whether an object came from a file or through the
management API (ADR 024). Objects from files carry the annotation ``kfaas.dev/applied-from``, so
that a Function or EventSourceMapping removed from the files is deleted from the store while the
ones created through the API are kept across restarts. The files win over API edits of the same
object, as a re-run ``kubectl apply`` does.

A ``code.path`` folder is stored as the zip the API would have received: its canonical zip
(``lambda_code.canonical_zip``) goes into the code store and the stored spec names it
(``code.zip``), so an edit of the code changes the spec, hence the generation, ``RevisionId`` and
``LastModified`` — kfaas dev does ``UpdateFunctionCode`` for you — and a published version pins
that code by digest. ``$LATEST`` still runs in the folder itself (the annotations
``kfaas.dev/code-path`` and the digest it had), so tracebacks and breakpoints show the user's files.
``snapshot`` is what the watcher compares every second to know when to apply again.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kfaas import object_store as store
from kfaas.code import IGNORED_PARTS, tree_files
from kfaas.code_archives import ArchiveTooLarge
from kfaas.code_store import CodeStore
from kfaas.lambda_code import canonical_zip
from kfaas.manifests import (
    API_VERSION,
    EventSourceMapping,
    Function,
    ManifestError,
    manifest_files,
)
from kfaas.object_store import Body, ObjectStore
from kfaas.schedule_manifests import Schedule

# The file an object was applied from (for messages, and to know it came from a file).
APPLIED_FROM: Final = "kfaas.dev/applied-from"
# A `code.path` function's folder, and the digest of the zip made of it when it was applied:
# `$LATEST` runs in the folder while the spec still names that zip.
CODE_PATH: Final = "kfaas.dev/code-path"
CODE_PATH_SHA256: Final = "kfaas.dev/code-path-sha256"
FILE_ANNOTATIONS: Final = (APPLIED_FROM, CODE_PATH, CODE_PATH_SHA256)
# Annotations the API writes (tags, role, the version counter): a re-apply keeps them.
API_ANNOTATION_PREFIX: Final = "kfaas.dev/"
APPLIED_KINDS: Final = (store.FUNCTIONS, store.EVENT_SOURCE_MAPPINGS, store.SCHEDULES)
# What kfaas dev applies from its files (Schedules are read by cli/dev_schedules.py).
Applied = Function | EventSourceMapping | Schedule

ObjectKey = tuple[str, str, str]  # plural, namespace, name
CONFLICT_RETRIES: Final = 5


@dataclass(frozen=True)
class PackedCode:
    """A `code.path` folder as the zip stored for it."""

    folder: Path
    sha256: str
    size: int


def plural_of(manifest: Applied) -> str:
    if isinstance(manifest, Schedule):
        return store.SCHEDULES
    return store.FUNCTIONS if isinstance(manifest, Function) else store.EVENT_SOURCE_MAPPINGS


def stored_body(manifest: Applied, packed: PackedCode | None = None) -> Body:
    """The API object a manifest is applied as (what ``kubectl apply`` would send)."""
    metadata: Body = {"name": manifest.metadata.name, "namespace": manifest.metadata.namespace}
    if manifest.metadata.labels:
        metadata["labels"] = dict(manifest.metadata.labels)
    annotations = dict(manifest.metadata.annotations)
    annotations[APPLIED_FROM] = manifest.source or "(unknown file)"
    spec = manifest.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if packed is not None:
        spec["code"] = {"zip": {"sha256": packed.sha256, "size": packed.size}}
        annotations[CODE_PATH] = str(packed.folder)
        annotations[CODE_PATH_SHA256] = packed.sha256
    metadata["annotations"] = annotations
    return {"apiVersion": API_VERSION, "kind": manifest.kind, "metadata": metadata, "spec": spec}


def reapplied_body(live: Mapping[str, Any], applied: Body) -> Body:
    """``applied`` as a replace of ``live``: its resourceVersion, owners and API annotations kept.

    The file's own annotations replace those of the previous apply (a folder that became inline
    code loses ``code-path``); annotations the API wrote (``kfaas.dev/tags`` …) stay.
    """
    body = copy.deepcopy(applied)
    live_metadata = live.get("metadata") or {}
    metadata = body["metadata"]
    metadata["resourceVersion"] = live_metadata.get("resourceVersion")
    if live_metadata.get("ownerReferences"):
        metadata["ownerReferences"] = copy.deepcopy(live_metadata["ownerReferences"])
    kept = {
        key: value
        for key, value in (live_metadata.get("annotations") or {}).items()
        if key.startswith(API_ANNOTATION_PREFIX) and key not in FILE_ANNOTATIONS
    }
    metadata["annotations"] = {**kept, **metadata.get("annotations", {})}
    return body


def from_files(body: Mapping[str, Any]) -> bool:
    return APPLIED_FROM in ((body.get("metadata") or {}).get("annotations") or {})


def object_key(plural: str, body: Mapping[str, Any]) -> ObjectKey:
    metadata = body["metadata"]
    return plural, str(metadata["namespace"]), str(metadata["name"])


def removed_from_files(
    live: Mapping[str, Iterable[Mapping[str, Any]]], applied: Iterable[ObjectKey]
) -> list[ObjectKey]:
    """Objects a previous apply wrote that the files no longer hold (API-created ones stay)."""
    wanted = set(applied)
    return sorted(
        key
        for plural, bodies in live.items()
        for body in bodies
        if from_files(body) and (key := object_key(plural, body)) not in wanted
    )


def state_misplaced(
    state: Path, paths: Iterable[str | Path], manifests: Iterable[Function | EventSourceMapping]
) -> str | None:
    """Why ``state`` cannot be where it is, if it cannot: inside a folder of manifests its stored
    objects would be read as manifests, inside a code folder its writes would be code edits
    (unless hidden, or named as a folder the code's zip leaves out)."""
    for path in paths:
        folder = Path(path).absolute()
        if state.is_relative_to(folder):
            inside = state.relative_to(folder).parts
            if not any(part.startswith(".") for part in inside):
                return (
                    f"the state folder {state} is in {folder}, whose YAML files are read as "
                    "manifests: give --state a folder outside it, or a hidden one (.kfaas)"
                )
    for manifest in manifests:
        root = manifest.code_root() if isinstance(manifest, Function) else None
        if root is None or not state.is_relative_to(root):
            continue
        if not IGNORED_PARTS.intersection(state.relative_to(root).parts):
            return (
                f"the state folder {state} is in {root}, the code of Function "
                f"{manifest.key}: give --state a folder outside it, or {root / '.kfaas'}"
            )
    return None


def pack_folder(folder: Path) -> bytes:
    """A `code.path` folder as the canonical zip of its files (empty if it is no folder)."""
    return canonical_zip(tree_files(folder) if folder.is_dir() else {})


async def apply_manifests(
    objects: ObjectStore, code: CodeStore, manifests: Sequence[Applied]
) -> list[ObjectKey]:
    """Make the store hold these manifests; the objects created, whose spec changed, or deleted.

    Raises ``ManifestError`` for a `code.path` folder over Lambda's 50 MiB zip, and the stores'
    errors (``object_store.StoreError``, ``code_store.CodeStoreError``) as they come.
    """
    bodies: dict[ObjectKey, Body] = {}
    for manifest in manifests:
        packed = None
        folder = manifest.code_root() if isinstance(manifest, Function) else None
        if folder is not None:
            package = pack_folder(folder)
            try:
                digest = await code.put(package)
            except ArchiveTooLarge as exc:
                source = manifest.source or manifest.key
                raise ManifestError(source, [f"{source}: spec.code.path {folder}: {exc}"]) from exc
            packed = PackedCode(folder, digest.hex, len(package))
        body = stored_body(manifest, packed)
        bodies[object_key(plural_of(manifest), body)] = body
    changed = [key for key, body in bodies.items() if await _apply(objects, key, body)]
    live_objects = {plural: await objects.list(plural) for plural in APPLIED_KINDS}
    for plural, namespace, name in removed_from_files(live_objects, bodies):
        try:
            await objects.delete(plural, namespace, name)
        except store.ObjectNotFound:
            continue  # gone with its owner
        changed.append((plural, namespace, name))
    return changed


async def _apply(objects: ObjectStore, key: ObjectKey, body: Body) -> bool:
    """Create or replace one object; whether its spec changed (or it is new)."""
    plural, namespace, name = key
    for _ in range(CONFLICT_RETRIES):
        try:
            live = await objects.get(plural, namespace, name)
        except store.ObjectNotFound:
            await objects.create(plural, body, field_manager=store.DEV_FILES_MANAGER)
            return True
        try:
            written = await objects.replace(
                plural, reapplied_body(live, body), field_manager=store.DEV_FILES_MANAGER
            )
        except store.Conflict:
            continue  # a status or API write came in between: read it again
        return bool(written["metadata"].get("generation") != live["metadata"].get("generation"))
    raise store.Conflict(f"{plural} {namespace}/{name} kept changing while it was applied")


# What the watcher compares every second: modification time and size by file.
Snapshot = dict[str, tuple[float, int]]


def snapshot(paths: Iterable[str | Path], functions: Iterable[Function]) -> Snapshot:
    """Modification time and size of every manifest and code file: cheap to take every second."""
    state: Snapshot = {}
    roots = [root for fn in functions if (root := fn.code_root()) is not None]
    manifests, _ = manifest_files(paths)
    for path in [*manifests, *roots]:
        candidates = path.rglob("*") if path.is_dir() else [path]
        for file in candidates:
            if path.is_dir() and IGNORED_PARTS.intersection(file.relative_to(path).parts):
                continue  # what the code's zip leaves out (caches, kfaas dev's own state)
            with contextlib.suppress(OSError):
                stat = file.stat()
                state[str(file)] = (stat.st_mtime, stat.st_size)
    return state
