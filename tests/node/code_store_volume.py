"""The code store's volume on the real node, which has no storage provisioner (ADR 025).

As docs/install.md says for such clusters: a PersistentVolume made by hand (a hostPath folder on
the node, owned by the pods' user since a hostPath ignores fsGroup), bound in advance to the
chart's claim, and the chart installed with `codeStore.persistence.storageClass: "-"`. The
garbage collector runs every few seconds with a short grace so a test can watch a sweep.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from node.kfaas_release import PLATFORM_NAMESPACE, RELEASE, Kubectl

VOLUME = "kfaas-e2e-code-store"
CLAIM = f"{RELEASE}-code-store"
POD_USER = 65532
GC_INTERVAL_SECONDS = 5
GC_GRACE_SECONDS = 20


def code_store_volume(kubectl: Kubectl, folder: Path) -> list[str]:
    """Make the volume (again: a claim deleted with its namespace leaves it Released); the
    chart values that bind to it."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chown(folder, POD_USER, POD_USER)
    kubectl("delete", "persistentvolume", VOLUME, "--ignore-not-found", "--timeout=60s")
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": VOLUME},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": str(folder), "type": "Directory"},
            "claimRef": {"namespace": PLATFORM_NAMESPACE, "name": CLAIM},
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(volume))
    return [
        "codeStore.persistence.storageClass=-",
        f"codeStore.gc.intervalSeconds={GC_INTERVAL_SECONDS}",
        f"codeStore.gc.graceSeconds={GC_GRACE_SECONDS}",
    ]
