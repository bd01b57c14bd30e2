"""The sweep rule: unmarked and older than the grace period, and nothing else."""

from __future__ import annotations

from kfaas.code_digests import CodeDigest
from kfaas.code_sweep import GRACE_SECONDS, StoredBlob, sweepable

NOW = 1_800_000_000.0
A, B, C, D = (CodeDigest.of(name.encode()) for name in "abcd")


def test_only_unmarked_blobs_past_the_grace_period_go() -> None:
    blobs = [
        StoredBlob(A, NOW - 2 * GRACE_SECONDS),  # unmarked, old: goes
        StoredBlob(B, NOW - 2 * GRACE_SECONDS),  # marked: stays
        StoredBlob(C, NOW - 60),  # unmarked but just uploaded (its Function is being written)
        StoredBlob(D, NOW - 3 * GRACE_SECONDS),  # unmarked, older: goes first
    ]
    assert sweepable(blobs, {B}, now=NOW) == [D, A]


def test_the_grace_period_is_inclusive_and_one_hour_by_default() -> None:
    assert GRACE_SECONDS == 3600
    at = [StoredBlob(A, NOW - GRACE_SECONDS)]
    assert sweepable(at, set(), now=NOW) == [A]
    assert sweepable([StoredBlob(A, NOW - GRACE_SECONDS + 1)], set(), now=NOW) == []
    assert sweepable(at, set(), now=NOW, grace_seconds=GRACE_SECONDS + 1) == []


def test_a_reupload_refreshes_a_blob_the_sweep_had_listed() -> None:
    listed = StoredBlob(A, NOW - 2 * GRACE_SECONDS)
    assert sweepable([listed], set(), now=NOW) == [A]
    # The store re-reads the time under its lock before deleting: a PUT in between saved it.
    assert sweepable([StoredBlob(A, NOW - 1)], set(), now=NOW) == []


def test_nothing_stored_or_everything_marked_deletes_nothing() -> None:
    assert sweepable([], {A}, now=NOW) == []
    assert sweepable([StoredBlob(A, 0.0), StoredBlob(B, 0.0)], {A, B}, now=NOW) == []
