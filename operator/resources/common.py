"""What every built object shares: owner references, the desired-state hash, the pod hardening."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kfaas.manifests import API_VERSION

from ..names import DESIRED_HASH_ANNOTATION

Body = dict[str, Any]

# Every container kfaas creates runs like this; the chart's own pods too.
CONTAINER_SECURITY: Body = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
POD_SECURITY: Body = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "fsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def owner_reference(kind: str, name: str, uid: str) -> Body:
    """Makes the object garbage-collected with its Function or EventSourceMapping."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def desired_hash(obj: Body) -> str:
    """A stable hash of a desired object, ignoring the annotation that carries it."""
    clean = json.loads(json.dumps(obj))
    meta = clean.get("metadata", {})
    meta.get("annotations", {}).pop(DESIRED_HASH_ANNOTATION, None)
    if meta.get("annotations") == {}:
        del meta["annotations"]
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_hash(obj: Body) -> Body:
    """The object with its desired-state hash annotation, which the reconciler compares."""
    obj.setdefault("metadata", {}).setdefault("annotations", {})[DESIRED_HASH_ANNOTATION] = (
        desired_hash(obj)
    )
    return obj


def live_hash(obj: Body | None) -> str | None:
    if obj is None:
        return None
    value = obj.get("metadata", {}).get("annotations", {}).get(DESIRED_HASH_ANNOTATION)
    return str(value) if value is not None else None


def metadata(name: str, namespace: str, labels: dict[str, str], owner: Body, **extra: Any) -> Body:
    return {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels),
        "ownerReferences": [owner],
        **extra,
    }
