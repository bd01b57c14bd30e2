"""Which stored zips the code store may delete: the sweep half of its mark and sweep (ADR 025).

The store marks every digest a Function, a FunctionVersion or a kfaas Deployment/ReplicaSet pod
template names, from fresh lists, and skips the sweep when any list failed. What is left is this
rule: a blob goes only when nothing marks it *and* it has not been written for the grace period,
because an upload is stored before the Function naming it is written (and a re-upload of a blob
already there refreshes its time). The store checks the time again, under the lock its uploads
take, right before it deletes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final

from kfaas.code_digests import CodeDigest

# Longer than any upload followed by the write of the object that names it.
GRACE_SECONDS: Final = 3600.0


@dataclass(frozen=True)
class StoredBlob:
    digest: CodeDigest
    modified: float  # Unix seconds of its last upload


def sweepable(
    blobs: Iterable[StoredBlob],
    marked: Collection[CodeDigest],
    *,
    now: float,
    grace_seconds: float = GRACE_SECONDS,
) -> list[CodeDigest]:
    """The blobs to delete, oldest first: unmarked and untouched for ``grace_seconds``."""
    old = [blob for blob in blobs if blob.digest not in marked]
    old = [blob for blob in old if now - blob.modified >= grace_seconds]
    return [blob.digest for blob in sorted(old, key=lambda blob: (blob.modified, blob.digest.hex))]
