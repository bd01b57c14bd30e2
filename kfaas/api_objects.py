"""Kubernetes API objects of kfaas's kinds, read back as the shared models and compared by status.

The gateway, the operator and its autoscaler all read Functions and EventSourceMappings from the
API server, and the API server hands back more than a manifest (``status``, managed fields,
resource versions). ``from_api_object`` is the one parse of such an object into the model of
``kfaas.manifests``, raising ``ManifestError`` with the object's name when it is invalid.
``status_differs`` is the one answer to "would this status write change anything?", shared by
the operator and the pollers, which both write status and skip writes that would change nothing
but a condition's transition time. Pure: no client, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from .manifests import API_VERSION, EventSourceMapping, Function, parse_manifest

Model = TypeVar("Model", Function, EventSourceMapping)


def from_api_object(body: Mapping[str, Any], kind: type[Model]) -> Model:
    """The object as ``kind``'s model: only its apiVersion, metadata and spec are read.

    The kind is the caller's (it read the object from that resource), so a body that lacks
    ``kind``, as Kopf's do not always carry, still parses. Raises ``ManifestError``.
    """
    name = kind.__name__
    metadata = body["metadata"]
    document = {
        "apiVersion": body.get("apiVersion", API_VERSION),
        "kind": name,
        "metadata": metadata,
        "spec": body.get("spec", {}),
    }
    manifest = parse_manifest(document, source=f"{name} {metadata.get('name')}")
    if not isinstance(manifest, kind):  # the kind was given, so the parse dispatched to it
        raise TypeError(f"parsed a {type(manifest).__name__} as a {name}")
    return manifest


def _comparable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _comparable(v) for k, v in value.items() if k != "lastTransitionTime"}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def status_differs(live: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether writing ``status`` over ``live`` changes anything but condition transition times.

    Only the fields ``status`` names are compared: a status write is a merge, so a field it
    leaves out (one the other writer owns) is never changed by it.
    """
    return any(_comparable(live.get(key)) != _comparable(value) for key, value in status.items())
