"""The code store in a folder: atomic puts, checked reads, trees unpacked once, the sweep."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from codestore.zips import make_zip, symlink

from kfaas.code_archives import ArchiveTooLarge, UnsafeArchiveEntry
from kfaas.code_digests import CodeDigest, DigestMismatch
from kfaas.code_folder import DirectoryCodeStore
from kfaas.code_store import BlobMissing, CodeStorageExceeded, CodeStore, CodeStoreUnavailable
from kfaas.code_sweep import GRACE_SECONDS

HANDLER = make_zip([("app.py", "def handler(event, context):\n    return event\n")])
OTHER = make_zip([("other.py", "x = 1\n")])
HOUR = GRACE_SECONDS


@pytest.fixture
def store(tmp_path: Path) -> DirectoryCodeStore:
    return DirectoryCodeStore(tmp_path / "code")


def _age(path: Path, seconds_ago: float, now: float) -> None:
    os.utime(path, (now - seconds_ago, now - seconds_ago))


def test_it_is_a_code_store(store: DirectoryCodeStore) -> None:
    implementation: CodeStore = store
    assert implementation is store


async def test_put_keeps_the_bytes_under_their_sha256(store: DirectoryCodeStore) -> None:
    digest = await store.put(HANDLER)
    assert digest == CodeDigest.of(HANDLER)
    path = store.root / "sha256" / digest.hex[:2] / digest.hex
    assert path.read_bytes() == HANDLER
    assert await store.exists(digest)
    assert await store.read(digest) == HANDLER
    # Nothing is left of the upload but the blob.
    assert list((store.root / "tmp").iterdir()) == []


async def test_a_second_put_only_refreshes_the_time(store: DirectoryCodeStore) -> None:
    digest = await store.put(HANDLER)
    path = store.blob_path(digest)
    inode, now = path.stat().st_ino, path.stat().st_mtime
    _age(path, 2 * HOUR, now)
    assert await store.put(HANDLER) == digest
    assert path.stat().st_ino == inode  # not rewritten
    assert path.stat().st_mtime >= now - 1


async def test_put_refuses_a_zip_over_the_limit(tmp_path: Path) -> None:
    store = DirectoryCodeStore(tmp_path, max_zipped_bytes=len(HANDLER) - 1)
    with pytest.raises(ArchiveTooLarge):
        await store.put(HANDLER)
    assert not await store.exists(CodeDigest.of(HANDLER))


async def test_reading_what_is_not_there_is_blob_missing(store: DirectoryCodeStore) -> None:
    digest = CodeDigest.of(HANDLER)
    assert not await store.exists(digest)
    with pytest.raises(BlobMissing, match=digest.hex):
        await store.read(digest)
    with pytest.raises(BlobMissing):
        await store.tree(digest)


async def test_a_blob_changed_on_disk_is_a_fault_not_code(store: DirectoryCodeStore) -> None:
    digest = await store.put(HANDLER)
    store.blob_path(digest).write_bytes(OTHER)
    with pytest.raises(DigestMismatch):
        await store.read(digest)
    with pytest.raises(DigestMismatch):
        await store.tree(digest)
    assert not store.tree_path(digest).exists()


async def test_tree_unpacks_once_and_returns_the_folder(store: DirectoryCodeStore) -> None:
    digest = await store.put(HANDLER)
    tree = await store.tree(digest)
    assert tree == store.root / "trees" / digest.hex
    assert (tree / "app.py").read_text().startswith("def handler")
    inode = tree.stat().st_ino  # a second call does not unpack again
    assert await store.tree(digest) == tree
    assert tree.stat().st_ino == inode
    assert [path.name for path in (store.root / "trees").iterdir()] == [digest.hex]


async def test_a_tree_is_read_only_and_still_deleted(store: DirectoryCodeStore) -> None:
    # As Lambda's /var/task: no write bit anywhere (root ignores them; others are refused).
    digest = await store.put(make_zip([("pkg/mod.py", "x = 1\n"), ("app.py", "")]))
    tree = await store.tree(digest)
    for path in [tree, tree / "pkg", tree / "pkg" / "mod.py", tree / "app.py"]:
        assert path.stat().st_mode & 0o222 == 0, path
    await store.delete(digest)
    assert not tree.exists()


async def test_concurrent_trees_unpack_once(store: DirectoryCodeStore) -> None:
    digest = await store.put(HANDLER)
    trees = await asyncio.gather(*(store.tree(digest) for _ in range(5)))
    assert set(trees) == {store.tree_path(digest)}
    assert [path.name for path in (store.root / "trees").iterdir()] == [digest.hex]


async def test_a_zip_that_does_not_unpack_leaves_no_tree(store: DirectoryCodeStore) -> None:
    digest = await store.put(make_zip([symlink("escape", "../../etc/passwd")]))
    with pytest.raises(UnsafeArchiveEntry):
        await store.tree(digest)
    assert list((store.root / "trees").iterdir()) == []


async def test_blobs_lists_each_digest_with_its_time(store: DirectoryCodeStore) -> None:
    assert await store.blobs() == []
    first, second = await store.put(HANDLER), await store.put(OTHER)
    (store.root / "sha256" / "zz").mkdir()
    (store.root / "sha256" / "zz" / "not-a-digest").write_text("")
    blobs = {blob.digest: blob.modified for blob in await store.blobs()}
    assert set(blobs) == {first, second}
    assert blobs[first] == store.blob_path(first).stat().st_mtime


async def test_delete_removes_the_blob_and_its_tree(store: DirectoryCodeStore) -> None:
    digest = await store.put(HANDLER)
    await store.tree(digest)
    await store.delete(digest)
    assert not await store.exists(digest)
    assert not store.tree_path(digest).exists()
    await store.delete(digest)  # deleting what is gone is no error


async def test_sweep_deletes_unreferenced_blobs_past_the_grace(
    store: DirectoryCodeStore,
) -> None:
    kept, old, fresh = [await store.put(zip_) for zip_ in (HANDLER, OTHER, make_zip([]))]
    now = store.blob_path(kept).stat().st_mtime
    await store.tree(old)
    for digest in (kept, old):
        _age(store.blob_path(digest), 2 * HOUR, now)
    deleted = await store.sweep({kept.hex}, now=now)
    assert deleted == [old]
    assert await store.exists(kept)
    assert await store.exists(fresh)  # unreferenced, but put within the grace period
    assert not await store.exists(old)
    assert not store.tree_path(old).exists()


async def test_sweep_rereads_the_time_a_put_refreshed(store: DirectoryCodeStore) -> None:
    digest = await store.put(HANDLER)
    now = store.blob_path(digest).stat().st_mtime
    _age(store.blob_path(digest), 2 * HOUR, now)
    listed = store.blobs
    refreshed = False

    async def blobs_then_put() -> list[object]:
        nonlocal refreshed
        found = await listed()
        await store.put(HANDLER)  # an upload between the listing and the delete
        refreshed = True
        return list(found)

    store.blobs = blobs_then_put  # type: ignore[method-assign,assignment]
    assert await store.sweep(set(), now=now + 60) == []
    assert refreshed
    assert await store.exists(digest)


async def test_sweep_removes_leftovers_of_a_crash(store: DirectoryCodeStore) -> None:
    digest = await store.put(HANDLER)
    now = store.blob_path(digest).stat().st_mtime
    upload = store.root / "tmp" / f"{digest.hex}.abc"
    upload.write_bytes(b"half")
    unpacking = store.root / "trees" / f"{digest.hex}.tmp-abc"
    unpacking.mkdir(parents=True)
    orphan = store.root / "trees" / CodeDigest.of(b"gone").hex
    orphan.mkdir()
    recent = store.root / "tmp" / f"{digest.hex}.recent"
    recent.write_bytes(b"in flight")
    for path in (upload, unpacking, orphan):
        _age(path, 2 * HOUR, now)
    await store.sweep({digest.hex}, now=now)
    assert not upload.exists() and not unpacking.exists() and not orphan.exists()
    assert recent.exists()
    assert await store.exists(digest)


async def test_a_full_disk_is_code_storage_exceeded(
    store: DirectoryCodeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(CodeStorageExceeded, match="full"):
        await store.put(HANDLER)
    assert not await store.exists(CodeDigest.of(HANDLER))
    assert list((store.root / "tmp").iterdir()) == []


async def test_an_unusable_folder_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    store = DirectoryCodeStore(tmp_path / "file")
    with pytest.raises(CodeStoreUnavailable):
        await store.put(HANDLER)
