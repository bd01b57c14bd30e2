"""The code store in a folder (ADR 025): zips by sha256, unpacked trees, and the sweep.

``kfaas dev`` keeps uploaded zips under its state directory (``DIR/code``), and the cluster's
``kfaas code-store`` role will serve the same layout from its volume, so the folder logic lives
here once: ``sha256/<2 hex>/<64 hex>`` blobs written to a temporary file, fsynced and renamed (a
reader never sees half a zip, a crash leaves only a temporary file the sweep removes), a re-put
that only refreshes the blob's time (the sweep's grace period starts again), and a per-digest
lock that put, tree and delete share, so the sweep never deletes a blob a put is refreshing.
``tree`` unpacks a blob once, through ``code_archives.extract_archive``'s checks, into
``trees/<hex>`` (a temporary folder renamed into place): ``kfaas dev`` runs code there.

File work runs in a thread (a zip is up to 50 MiB); OS errors become the code store's errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Final, ParamSpec, TypeVar

from kfaas.code_archives import MAX_ZIPPED_BYTES, ArchiveTooLarge, extract_archive
from kfaas.code_digests import CodeDigest, check_digest
from kfaas.code_store import BlobMissing, CodeStorageExceeded, CodeStoreUnavailable
from kfaas.code_sweep import GRACE_SECONDS, StoredBlob, sweepable
from kfaas.durable_files import write_whole

BLOBS: Final = "sha256"
TREES: Final = "trees"
# Uploads in progress; on the blobs' file system so that the rename into place is atomic.
TEMPORARY: Final = "tmp"
# A full disk or quota is the store's limit (Lambda's CodeStorageExceededException), not a fault.
FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})

P = ParamSpec("P")
R = TypeVar("R")


class DirectoryCodeStore:
    """A ``kfaas.code_store.CodeStore`` in the folder ``root``, for one process."""

    def __init__(self, root: Path, *, max_zipped_bytes: int = MAX_ZIPPED_BYTES) -> None:
        self.root = root
        self.max_zipped_bytes = max_zipped_bytes
        # One lock per digest while anyone holds it; the dictionary forgets unused ones.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def blob_path(self, digest: CodeDigest) -> Path:
        return self.root / digest.storage_key

    def tree_path(self, digest: CodeDigest) -> Path:
        return self.root / TREES / digest.hex

    # -- the CodeStore seam ---------------------------------------------------------------

    async def put(self, data: bytes) -> CodeDigest:
        if len(data) > self.max_zipped_bytes:
            raise ArchiveTooLarge(
                f"the zip has {len(data)} bytes, more than the {self.max_zipped_bytes} allowed"
            )
        digest = CodeDigest.of(data)
        async with self._lock(digest):
            await _in_thread(self._put, digest, data)
        return digest

    async def read(self, digest: CodeDigest) -> bytes:
        data = await _in_thread(self._read, digest)
        check_digest(digest, data)  # DigestMismatch: a fault of the disk, never code to run
        return data

    async def exists(self, digest: CodeDigest) -> bool:
        return self.blob_path(digest).is_file()

    # -- what kfaas dev needs -------------------------------------------------------------

    async def tree(self, digest: CodeDigest) -> Path:
        """The blob unpacked (once) into ``trees/<hex>``; ``BlobMissing`` if it is not stored.

        A zip that does not unpack raises the ``code_archives`` refusal and leaves no folder.
        """
        target = self.tree_path(digest)
        if target.is_dir():
            return target
        async with self._lock(digest):
            if not target.is_dir():
                data = await self.read(digest)
                await _in_thread(self._unpack, data, target)
        return target

    async def blobs(self) -> list[StoredBlob]:
        """Every stored blob with the time of its last put."""
        return await _in_thread(self._blobs)

    async def delete(self, digest: CodeDigest) -> None:
        """The blob and its tree; nothing happens if neither is there."""
        async with self._lock(digest):
            await _in_thread(self._delete, digest)

    async def sweep(
        self,
        referenced_hex: Collection[str],
        *,
        now: float | None = None,
        grace_seconds: float = GRACE_SECONDS,
    ) -> list[CodeDigest]:
        """Delete what no object references and nobody put for ``grace_seconds``; the deleted.

        Each candidate's time is read again under its lock right before the delete, so a put
        that refreshed it after the listing keeps it. Trees without a blob and uploads left by a
        crash, older than the grace period, go too.
        """
        now = time.time() if now is None else now
        marked = {CodeDigest(value) for value in referenced_hex}
        deleted = []
        for digest in sweepable(await self.blobs(), marked, now=now, grace_seconds=grace_seconds):
            async with self._lock(digest):
                modified = await _in_thread(_modified, self.blob_path(digest))
                if modified is not None and now - modified >= grace_seconds:
                    await _in_thread(self._delete, digest)
                    deleted.append(digest)
        await _in_thread(self._remove_leftovers, now - grace_seconds)
        return deleted

    # -- in a thread ----------------------------------------------------------------------

    def _lock(self, digest: CodeDigest) -> asyncio.Lock:
        lock = self._locks.get(digest.hex)
        if lock is None:
            lock = self._locks[digest.hex] = asyncio.Lock()
        return lock

    def _put(self, digest: CodeDigest, data: bytes) -> None:
        target = self.blob_path(digest)
        if target.is_file():
            os.utime(target)
            return
        temporary_folder = self.root / TEMPORARY
        temporary_folder.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_whole(target, data, temporary_folder=temporary_folder)

    def _read(self, digest: CodeDigest) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(f"no code stored with sha256 {digest.hex}") from None

    def _unpack(self, data: bytes, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # The folder gets its final name only once complete: a tree found is a whole tree.
        staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=target.parent))
        try:
            extract_archive(data, staging)
            _read_only(staging)
            staging.rename(target)
        finally:
            if staging.exists():
                _remove_tree(staging)

    def _blobs(self) -> list[StoredBlob]:
        found = []
        for path in (self.root / BLOBS).glob("*/*"):
            with contextlib.suppress(ValueError):
                digest = CodeDigest(path.name)
                modified = _modified(path)
                if path.parent.name == digest.hex[:2] and modified is not None:
                    found.append(StoredBlob(digest, modified))
        return found

    def _delete(self, digest: CodeDigest) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.blob_path(digest).unlink()
        _remove_tree(self.tree_path(digest))

    def _remove_leftovers(self, before: float) -> None:
        for path in (self.root / TEMPORARY).glob("*"):
            if (modified := _modified(path)) is not None and modified < before:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        for path in (self.root / TREES).glob("*"):
            if (modified := _modified(path)) is None or modified >= before:
                continue
            hex_name, _, rest = path.name.partition(".")
            with contextlib.suppress(ValueError):
                digest = CodeDigest(hex_name)
                # An unpack a crash interrupted, or a tree whose blob was deleted.
                if rest or not self.blob_path(digest).is_file():
                    _remove_tree(path)


def _read_only(tree: Path) -> None:
    """No write bits under ``tree``, as Lambda's ``/var/task`` is read-only: code that writes
    beside itself fails in kfaas dev (for a user who is not root) as it would in a cluster, and
    every function running a digest runs the same files."""
    for folder, _, files in os.walk(tree, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):  # chmod would follow it
                os.chmod(path, os.stat(path).st_mode & ~0o222)
        os.chmod(folder, 0o555)


def _remove_tree(tree: Path) -> None:
    """Remove a tree made read-only: its folders get their write bit back first."""
    for folder, _, _ in os.walk(tree):
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o755)
    shutil.rmtree(tree, ignore_errors=True)


def _modified(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


async def _in_thread(function: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run file work in a thread; a full disk or an unusable folder as the code store's errors."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except OSError as exc:
        if exc.errno in FULL_ERRNOS:
            raise CodeStorageExceeded(f"the code store is full: {exc}") from exc
        raise CodeStoreUnavailable(f"the code store cannot use its folder: {exc}") from exc
