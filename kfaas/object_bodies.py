"""The API server's write rules as plain functions, for a store that is not the API server.

``kfaas dev``'s folder store (``kfaas.dir_store``) must hand back the bodies a cluster would:
what ``create`` keeps of a request and adds (uid, generation 1, creationTimestamp, a
managedFields entry), when ``replace`` is refused (a stale or missing resourceVersion) and what
it moves (generation only when the spec changed; a manager's time only when it wrote the spec,
so tags keep LastModified), and how a status write merges. Both stores refuse names the API
server would (``is_object_name``, ``is_namespace``), which also keeps a name from becoming a
path outside the folder or the URL. Pure: no I/O.
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Mapping
from typing import Any

from . import object_store as store
from .manifests import API_VERSION, DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN, ManifestError
from .object_store import Body

# DNS-1123 subdomain (object names) and label (namespaces), as Kubernetes validates them: the
# models' own patterns (anchored), so a name the store takes is one the model takes.
_SUBDOMAIN = re.compile(DNS_SUBDOMAIN_PATTERN)
_NAMESPACE = re.compile(DNS_LABEL_PATTERN)
# The metadata a write may set; the rest (uid, generation, …) is the store's.
WRITABLE_METADATA = ("labels", "annotations", "ownerReferences")
# A ManifestError's field path: the text before its first ": ", without spaces.
_FIELD = re.compile(r"[A-Za-z][^\s:]*")


def is_object_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= 253 and _SUBDOMAIN.fullmatch(name) is not None


def is_namespace(namespace: object) -> bool:
    return (
        isinstance(namespace, str)
        and len(namespace) <= 63
        and _NAMESPACE.fullmatch(namespace) is not None
    )


def rfc3339_now() -> str:
    """Now in UTC as RFC 3339 with microseconds: ``2026-11-30T06:00:01.123456Z``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def invalid_from(exc: ManifestError) -> store.Invalid:
    """A model's refusal as the store's: every problem in the message, the first one's field.

    Problems read ``<source>: <field path>: <rule>`` (``Function f: spec.code: exactly one of
    …``); the field is the path, when the problem names one.
    """
    problems = [problem.removeprefix(f"{exc.source}: ") for problem in exc.problems]
    field = None
    if problems:
        head, separator, _ = problems[0].partition(": ")
        if separator and _FIELD.fullmatch(head):
            field = head
    return store.Invalid(f"{exc.source} is invalid: {'; '.join(problems)}", field)


def _check_type(plural: str, body: Mapping[str, Any]) -> None:
    kind = store.KINDS[plural]
    if body.get("kind") not in (None, kind):
        raise store.Invalid(f"kind: {body.get('kind')!r} is not {kind}", "kind")
    if body.get("apiVersion") not in (None, API_VERSION):
        raise store.Invalid(
            f"apiVersion: {body.get('apiVersion')!r} is not {API_VERSION}", "apiVersion"
        )


def managed_entry(manager: str, now: str, fields: Mapping[str, Any]) -> Body:
    return {
        "manager": manager,
        "operation": "Update",
        "apiVersion": API_VERSION,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": dict(fields),
    }


def recorded_write(
    entries: list[Body], manager: str, now: str, *, spec: bool, metadata: bool
) -> list[Body]:
    """``entries`` after ``manager`` wrote the spec and/or metadata.

    One entry per manager. Its time moves when it writes the spec (or when the entry is new), so
    a metadata-only write (tags) by a manager that owns ``f:spec`` keeps LastModified.
    """
    updated = copy.deepcopy(entries)
    entry = next(
        (e for e in updated if e.get("manager") == manager and not e.get("subresource")), None
    )
    if entry is None:
        entry = managed_entry(manager, now, {})
        updated.append(entry)
    elif spec:
        entry["time"] = now
    fields = entry.setdefault("fieldsV1", {})
    if metadata:
        fields["f:metadata"] = {}
    if spec:
        fields["f:spec"] = {}
    return updated


def body_for_create(
    plural: str, body: Mapping[str, Any], *, field_manager: str, uid: str, now: str
) -> Body:
    """What the API server stores for a create request, but the resourceVersion (and the name,
    when only ``generateName`` is given). Status is never taken from a request."""
    _check_type(plural, body)
    request = body.get("metadata") or {}
    namespace = request.get("namespace")
    if not is_namespace(namespace):
        raise store.Invalid(
            f"metadata.namespace: {namespace!r} is not a DNS-1123 label", "metadata.namespace"
        )
    metadata: Body = {}
    if request.get("name") is not None:
        if not is_object_name(request["name"]):
            raise store.Invalid(
                f"metadata.name: {request['name']!r} is not a DNS-1123 subdomain", "metadata.name"
            )
        metadata["name"] = request["name"]
    elif request.get("generateName"):
        if not is_object_name(f"{request['generateName']}x"):
            raise store.Invalid(
                f"metadata.generateName: {request['generateName']!r} cannot start a name",
                "metadata.generateName",
            )
        metadata["generateName"] = request["generateName"]
    else:
        raise store.Invalid("metadata.name: name or generateName is required", "metadata.name")
    metadata.update(
        namespace=namespace, uid=uid, generation=1, creationTimestamp=now, resourceVersion=""
    )
    for key in WRITABLE_METADATA:
        if request.get(key):
            metadata[key] = copy.deepcopy(request[key])
    fields: Body = {"f:spec": {}}
    if any(request.get(key) for key in WRITABLE_METADATA):
        fields = {"f:metadata": {}, **fields}
    metadata["managedFields"] = [managed_entry(field_manager, now, fields)]
    return {
        "apiVersion": API_VERSION,
        "kind": store.KINDS[plural],
        "metadata": metadata,
        "spec": copy.deepcopy(body.get("spec") or {}),
    }


def replaced_body(
    plural: str, live: Body, body: Mapping[str, Any], field_manager: str, *, now: str
) -> Body | None:
    """``live`` after a replace with ``body``, or None when it would change nothing.

    Refused as the API server refuses an update of a custom resource: a missing resourceVersion
    is Invalid, a stale one (or another uid: the object was re-created) a Conflict.
    """
    _check_type(plural, body)
    request = body.get("metadata") or {}
    current = live["metadata"]
    name = current["name"]
    if not request.get("resourceVersion"):
        raise store.Invalid(
            "metadata.resourceVersion: must be specified for an update",
            "metadata.resourceVersion",
        )
    if request["resourceVersion"] != current["resourceVersion"] or request.get("uid") not in (
        None,
        current["uid"],
    ):
        raise store.Conflict(
            f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again"
        )
    replaced = copy.deepcopy(live)
    metadata = replaced["metadata"]
    metadata_changed = False
    for key in WRITABLE_METADATA:
        wanted = copy.deepcopy(request.get(key)) or None
        if wanted != (current.get(key) or None):
            metadata_changed = True
        if wanted:
            metadata[key] = wanted
        else:
            metadata.pop(key, None)
    spec = copy.deepcopy(body.get("spec") or {})
    spec_changed = spec != (live.get("spec") or {})
    if not spec_changed and not metadata_changed:
        return None
    if spec_changed:
        replaced["spec"] = spec
        metadata["generation"] = int(current.get("generation", 1)) + 1
    metadata["managedFields"] = recorded_write(
        current.get("managedFields") or [],
        field_manager,
        now,
        spec=spec_changed,
        metadata=metadata_changed,
    )
    return replaced


def with_status(live: Body, status: Mapping[str, Any]) -> Body:
    """``live`` with ``status`` merged in: each top-level key replaces, None removes it."""
    updated = copy.deepcopy(live)
    merged = dict(updated.get("status") or {})
    for key, value in status.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = copy.deepcopy(value)
    updated["status"] = merged
    return updated
