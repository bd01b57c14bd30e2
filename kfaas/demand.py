"""How gateway replicas report per-function concurrency to the autoscaler: one Lease each (ADR 007).

Each gateway replica owns a ``coordination.k8s.io/v1`` Lease in the platform namespace, labelled
``kfaas.dev/demand=gateway``; its annotation holds ``{"namespace/name": concurrency}`` for every
function with work in flight or waiting, and ``renewTime`` says when the figures were taken. The
operator sums the live Leases (renewed within their duration) per function. Pure helpers only:
the writer lives in the gateway's Kubernetes backend, the reader in the operator's autoscaler.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from typing import Any

DEMAND_LABEL = "kfaas.dev/demand"
DEMAND_LABEL_VALUE = "gateway"
CONCURRENCY_ANNOTATION = "kfaas.dev/concurrency"
LEASE_SECONDS = 15
_MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def lease_name(replica: str) -> str:
    return f"kfaas-demand-{replica}"[:63].rstrip("-.")


def demand_lease(
    namespace: str, replica: str, concurrency: Mapping[str, int], now: datetime.datetime
) -> dict[str, Any]:
    """The Lease a gateway replica applies; zero figures are left out."""
    figures = {key: value for key, value in sorted(concurrency.items()) if value > 0}
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(replica),
            "namespace": namespace,
            "labels": {DEMAND_LABEL: DEMAND_LABEL_VALUE},
            "annotations": {CONCURRENCY_ANNOTATION: json.dumps(figures, separators=(",", ":"))},
        },
        "spec": {
            "holderIdentity": replica,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now.astimezone(datetime.UTC).strftime(_MICRO_TIME),
        },
    }


def _renewed(lease: Mapping[str, Any]) -> datetime.datetime | None:
    raw = lease.get("spec", {}).get("renewTime")
    if not isinstance(raw, str):
        return None
    try:
        return datetime.datetime.strptime(raw, _MICRO_TIME).replace(tzinfo=datetime.UTC)
    except ValueError:
        try:
            return datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None


def total_demand(leases: Iterable[Mapping[str, Any]], now: datetime.datetime) -> dict[str, int]:
    """Concurrency per function summed over the replicas whose Lease is still live."""
    totals: dict[str, int] = {}
    for lease in leases:
        renewed = _renewed(lease)
        duration = lease.get("spec", {}).get("leaseDurationSeconds") or LEASE_SECONDS
        if renewed is None or (now - renewed).total_seconds() > float(duration):
            continue  # a replica that stopped reporting (gone, or cut off) counts for nothing
        raw = lease.get("metadata", {}).get("annotations", {}).get(CONCURRENCY_ANNOTATION, "{}")
        try:
            figures = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(figures, dict):
            continue
        for key, value in figures.items():
            if isinstance(value, int) and value > 0:
                totals[key] = totals.get(key, 0) + value
    return totals
