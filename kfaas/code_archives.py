"""Function zips as the code store takes them (ADR 025): checked before storing, unpacked safely.

A zip comes from a user (CreateFunction, UpdateFunctionCode) and ends up unpacked into a pod's
``/var/task`` or a ``kfaas dev`` folder, so every way a zip can lie is checked here, once, for the
gateway that accepts it, the init container that unpacks it and ``kfaas dev``: Lambda's size
limits (zipped, and unzipped by the declared sizes *and* by the bytes that actually come out, so a
bomb with lying headers stops at the limit), names that would land outside the folder (absolute,
``..``, a path through a symlink), symlinks pointing out, duplicates, device files, and zips that
do not unzip. The zip's content address is :class:`kfaas.code_digests.CodeDigest`. No I/O here
but reading what is handed in and writing under the folder :func:`extract_archive` is given.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Final, Literal

from kfaas.code_digests import CodeDigest, digest_stream

MIB: Final = 1024 * 1024
# Lambda's quotas: a 50 MB zip uploaded directly, 250 MB unzipped (its message says 262144000).
MAX_ZIPPED_BYTES: Final = 50 * MIB
MAX_UNZIPPED_BYTES: Final = 250 * MIB
# Lambda states no entry count; a zip of a million empty files is still a denial of service on
# the node's inodes. 100,000 leaves room for the largest node_modules seen in practice.
MAX_ENTRIES: Final = 100_000
MAX_LINK_TARGET_BYTES: Final = 4095  # PATH_MAX less its NUL
MAX_NAME_BYTES: Final = 255  # one path component, NAME_MAX
CHUNK_BYTES: Final = 256 * 1024
# What zipfile and its decompressors raise on a zip that is not one, is cut short or is corrupt
# (zlib's error is no OSError; bz2 raises OSError; an unknown method NotImplementedError).
# CodeArchiveError is none of these, so a refusal is never re-wrapped as "could not unzip".
UNZIP_ERRORS: Final = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    OSError,
    ValueError,
)


class CodeArchiveError(Exception):
    """Base of every refusal of a code zip; the message names the entry and what is wrong."""


class ArchiveTooLarge(CodeArchiveError):
    """The zip itself is over the limit. API: ``RequestEntityTooLargeException`` (413)."""


class UnzippedTooLarge(CodeArchiveError):
    """Unzipped, declared or actual, over the limit. API: ``InvalidParameterValueException``."""


class InvalidArchive(CodeArchiveError):
    """Not a zip, truncated, corrupt, encrypted. API: ``InvalidParameterValueException``."""


class UnsafeArchiveEntry(CodeArchiveError):
    """An entry that could land outside the folder. API: ``InvalidParameterValueException``."""


@dataclass(frozen=True)
class ArchiveLimits:
    zipped_bytes: int = MAX_ZIPPED_BYTES
    unzipped_bytes: int = MAX_UNZIPPED_BYTES
    entries: int = MAX_ENTRIES


LAMBDA_LIMITS: Final = ArchiveLimits()


def digest_chunks(
    chunks: Iterable[bytes], *, limit: int = MAX_ZIPPED_BYTES
) -> tuple[CodeDigest, int]:
    """The digest and size of a zip arriving in chunks; refused as soon as it passes ``limit``."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise ArchiveTooLarge(f"the zip is over {limit} bytes")
        digest.update(chunk)
    return CodeDigest(digest.hexdigest()), size


EntryKind = Literal["file", "directory", "symlink"]


@dataclass(frozen=True)
class ArchiveEntry:
    path: str  # normalised, relative, "/"-separated, no trailing slash
    kind: EntryKind
    size: int  # declared uncompressed size (a symlink's: its target's length)
    mode: int  # permissions to give it (no setuid, setgid, sticky or write for others)
    link_target: str | None = None


@dataclass(frozen=True)
class ArchiveManifest:
    digest: CodeDigest
    zipped_size: int
    unzipped_size: int  # the sum of the declared sizes, already checked against the limit
    entries: tuple[ArchiveEntry, ...]


_REFUSED_TYPES: Final = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def normalise_name(name: str) -> str:
    """The entry's path inside the folder, or UnsafeArchiveEntry saying why it has none."""
    shown = repr(name)
    if "\x00" in name or "\\" in name:
        raise UnsafeArchiveEntry(f"entry {shown}: NUL or backslash in the name (zip with '/')")
    if name.startswith("/"):
        raise UnsafeArchiveEntry(f"entry {shown}: an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveEntry(f"entry {shown}: a '..' component")
    if not parts:
        raise UnsafeArchiveEntry(f"entry {shown}: names no file")
    if any(len(part.encode()) > MAX_NAME_BYTES for part in parts):
        raise UnsafeArchiveEntry(f"entry {shown}: a component over {MAX_NAME_BYTES} bytes")
    return "/".join(parts)


def _kind(info: zipfile.ZipInfo, path: str) -> tuple[EntryKind, int]:
    unix = info.external_attr >> 16 if info.create_system == 3 else 0
    file_type = stat.S_IFMT(unix)
    if file_type in _REFUSED_TYPES:
        raise UnsafeArchiveEntry(f"entry {path!r}: {_REFUSED_TYPES[file_type]}")
    executable = bool(unix & 0o111)
    if file_type == stat.S_IFLNK:
        return "symlink", 0o777
    if file_type == stat.S_IFDIR or info.filename.endswith("/"):
        return "directory", 0o755
    return "file", 0o755 if executable else 0o644


def check_link(path: str, target: str, symlinks: set[str]) -> None:
    """A symlink must resolve inside the folder, and never through another of the zip's links.

    Resolving lexically is exact only when no component on the way is itself a symlink (the
    kernel takes ``link/..`` as the link target's parent), so such chains are refused.
    """
    shown = f"symlink {path!r} -> {target!r}"
    if not target or "\x00" in target or target.startswith("/"):
        raise UnsafeArchiveEntry(f"{shown}: an empty or absolute target")
    stack = path.split("/")[:-1]
    parts = [part for part in target.split("/") if part not in ("", ".")]
    for index, part in enumerate(parts):
        if part == "..":
            if not stack:
                raise UnsafeArchiveEntry(f"{shown}: points outside the folder")
            stack.pop()
            continue
        stack.append(part)
        if index < len(parts) - 1 and "/".join(stack) in symlinks:
            raise UnsafeArchiveEntry(f"{shown}: resolves through another symlink")


def _open_zip(archive: BinaryIO, limits: ArchiveLimits) -> tuple[zipfile.ZipFile, int]:
    size = archive.seek(0, io.SEEK_END)
    archive.seek(0)
    if size > limits.zipped_bytes:
        raise ArchiveTooLarge(f"the zip is {size} bytes, over the limit of {limits.zipped_bytes}")
    try:
        return zipfile.ZipFile(archive), size
    except UNZIP_ERRORS as exc:
        raise InvalidArchive(f"could not unzip the file: {exc}") from exc


def _read_small(bundle: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> str:
    if info.file_size > MAX_LINK_TARGET_BYTES:
        raise UnsafeArchiveEntry(f"symlink {path!r}: a target over {MAX_LINK_TARGET_BYTES} bytes")
    target = io.BytesIO()
    with bundle.open(info) as source:
        copy_bounded(source, target, budget=info.file_size, what=f"symlink {path!r}")
    try:
        return target.getvalue().decode()
    except UnicodeDecodeError as exc:
        raise UnsafeArchiveEntry(f"symlink {path!r}: a target that is not UTF-8") from exc


def _inspect(bundle: zipfile.ZipFile, limits: ArchiveLimits) -> tuple[list[ArchiveEntry], int]:
    infos = bundle.infolist()
    if len(infos) > limits.entries:
        raise UnzippedTooLarge(
            f"the zip has {len(infos)} entries, over the limit of {limits.entries}"
        )
    declared = sum(info.file_size for info in infos)
    if declared > limits.unzipped_bytes:
        raise UnzippedTooLarge(
            f"unzipped size must be at most {limits.unzipped_bytes} bytes; "
            f"the zip declares {declared}"
        )
    entries: list[ArchiveEntry] = []
    seen: dict[str, EntryKind] = {}
    for info in infos:
        if info.flag_bits & 0x1:
            raise InvalidArchive(f"entry {info.filename!r} is encrypted")
        path = normalise_name(info.filename)
        kind, mode = _kind(info, path)
        if path in seen and not (kind == seen[path] == "directory"):
            raise UnsafeArchiveEntry(f"entry {path!r} appears twice")
        seen[path] = kind
        target = _read_small(bundle, info, path) if kind == "symlink" else None
        entries.append(ArchiveEntry(path, kind, info.file_size, mode, target))
    symlinks = {path for path, kind in seen.items() if kind == "symlink"}
    for path in seen:
        # A parent that is a file or a symlink: writing below it would fail or leave the folder.
        parents = path.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            parent = "/".join(parents[:depth])
            if seen.get(parent, "directory") != "directory":
                raise UnsafeArchiveEntry(f"entry {path!r} lies below {seen[parent]} {parent!r}")
    for entry in entries:
        if entry.link_target is not None:
            check_link(entry.path, entry.link_target, symlinks)
    return entries, declared


def _as_stream(archive: BinaryIO | bytes) -> BinaryIO:
    return io.BytesIO(archive) if isinstance(archive, (bytes, bytearray)) else archive


def _digest(archive: BinaryIO) -> CodeDigest:
    archive.seek(0)
    digest, _ = digest_stream(archive)
    archive.seek(0)
    return digest


def inspect_archive(
    archive: BinaryIO | bytes, limits: ArchiveLimits = LAMBDA_LIMITS
) -> ArchiveManifest:
    """Everything that can be checked without unpacking: sizes (declared), names, entry types."""
    stream = _as_stream(archive)
    bundle, size = _open_zip(stream, limits)
    with bundle:
        try:
            entries, declared = _inspect(bundle, limits)
        except UNZIP_ERRORS as exc:
            raise InvalidArchive(f"could not unzip the file: {exc}") from exc
    return ArchiveManifest(_digest(stream), size, declared, tuple(entries))


def copy_bounded(source: IO[bytes], target: IO[bytes] | None, *, budget: int, what: str) -> int:
    """Copy ``source`` to ``target`` (or only count it, when None); the bytes copied.

    Refuses past ``budget`` bytes whatever the zip's headers claimed: it counts what actually
    comes out, and reads at most one chunk beyond the budget before refusing.
    """
    total = 0
    while chunk := source.read(min(CHUNK_BYTES, budget - total + 1)):
        total += len(chunk)
        if total > budget:
            raise UnzippedTooLarge(f"{what}: unzips to more than {budget} bytes")
        if target is not None:
            target.write(chunk)
    return total


def _unpack(
    bundle: zipfile.ZipFile, info: zipfile.ZipInfo, entry: ArchiveEntry, target: IO[bytes] | None
) -> int:
    """One file's bytes, bounded by its declared size (the total is checked against the limit)."""
    with bundle.open(info) as source:
        written = copy_bounded(source, target, budget=entry.size, what=f"entry {entry.path!r}")
    if written != entry.size:
        raise InvalidArchive(
            f"entry {entry.path!r} declares {entry.size} bytes and holds {written}"
        )
    return written


def verify_archive(
    archive: BinaryIO | bytes, limits: ArchiveLimits = LAMBDA_LIMITS
) -> ArchiveManifest:
    """:func:`inspect_archive`, then unzip every file without writing it (sizes, CRCs).

    For whoever accepts an upload: a zip whose headers lie, or whose data is corrupt, is refused
    at the API, not later in a pod's init container.
    """
    stream = _as_stream(archive)
    bundle, size = _open_zip(stream, limits)
    with bundle:
        try:
            entries, declared = _inspect(bundle, limits)
            for info, entry in zip(bundle.infolist(), entries, strict=True):
                if entry.kind == "file":
                    _unpack(bundle, info, entry, None)
        except UNZIP_ERRORS as exc:
            raise InvalidArchive(f"could not unzip the file: {exc}") from exc
    return ArchiveManifest(_digest(stream), size, declared, tuple(entries))


def extract_archive(
    archive: BinaryIO | bytes, destination: Path, limits: ArchiveLimits = LAMBDA_LIMITS
) -> ArchiveManifest:
    """Unpack into the empty folder ``destination``, checking again while writing.

    On any refusal the folder is emptied again, so a half-written tree is never run.
    """
    if any(destination.iterdir()):
        raise ValueError(f"{destination} is not empty")
    stream = _as_stream(archive)
    bundle, size = _open_zip(stream, limits)
    try:
        with bundle:
            entries, declared = _inspect(bundle, limits)
            # O_EXCL and O_NOFOLLOW: never write through anything already there.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            for info, entry in zip(bundle.infolist(), entries, strict=True):
                path = destination / entry.path
                path.parent.mkdir(parents=True, exist_ok=True)
                if entry.kind == "directory":
                    path.mkdir(exist_ok=True)
                elif entry.kind == "file":
                    with os.fdopen(os.open(path, flags, entry.mode), "wb") as target:
                        _unpack(bundle, info, entry, target)
            for entry in entries:  # last, so that nothing is ever written through one
                if entry.link_target is not None:
                    (destination / entry.path).parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(entry.link_target, destination / entry.path)
    except CodeArchiveError:
        empty_folder(destination)
        raise
    except UNZIP_ERRORS as exc:
        empty_folder(destination)
        raise InvalidArchive(f"could not unzip the file: {exc}") from exc
    return ArchiveManifest(_digest(stream), size, declared, tuple(entries))


def empty_folder(folder: Path) -> None:
    """Remove what ``folder`` holds; the folder itself stays (it may be a volume's mount point)."""
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
