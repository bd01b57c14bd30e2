"""Is this operator replica the active one? The same answer Kopf's peering gives its handlers.

Kopf pauses the handlers of every replica but the one with the highest priority in the peering
object (and all of them when two share the top priority). The autoscaler is a loop of our own, not
a Kopf handler, so it reads the same object and applies the same rule: that way the replica that
reconciles is the replica that scales, and two replicas never both write ``replicas``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

CLUSTER_PEERING = ("kopf.dev/v1", "clusterkopfpeerings")
NAMESPACED_PEERING = ("kopf.dev/v1", "kopfpeerings")


def _parse(raw: Any) -> datetime.datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def is_active(
    peers: Mapping[str, Any], identity: str, priority: int, now: datetime.datetime
) -> bool:
    """True when no live peer outranks or ties with us (``peers``: the peering's status).

    Until our own keep-alive shows up in the object we are not active, as Kopf starts paused.
    """
    if identity not in peers:
        return False
    for peer, info in peers.items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        seen = _parse(info.get("lastseen"))
        lifetime = datetime.timedelta(seconds=int(info.get("lifetime", 60)))
        if seen is None or seen + lifetime <= now:
            continue
        if int(info.get("priority", 0)) >= priority:
            return False
    return True


def peering_resource(namespace: str | None) -> tuple[str, str]:
    """(apiVersion, plural) of the peering object: namespaced for a one-namespace operator."""
    return NAMESPACED_PEERING if namespace else CLUSTER_PEERING


def missing_peering(name: str, namespace: str | None) -> str:
    """What to do when the peering object is absent (Kopf would pause this replica forever)."""
    what = (
        f"KopfPeering {name!r} in namespace {namespace!r}"
        if namespace
        else (f"ClusterKopfPeering {name!r}")
    )
    return (
        f"no {what}: every replica would wait in it forever. Create it (the chart does: "
        "charts/kfaas/templates/peering.yaml, with the CRDs of charts/kfaas/crds/"
        "kopfpeerings.kopf.dev.yaml), set KFAAS_PEERING_NAME to the one that exists, "
        "or pass --standalone to run this process as the only operator"
    )
