"""Where kfaas's image archives live, how they are keyed and which of them are kept.

Every image (services.images) is a docker-archive under `~/.cache/kfaas/images/`, named by a key
that hashes what goes into it: the files of its build context, its base, the recipe's version. A
tree that did not change finds its archive; a changed one builds a new archive, and the oldest of
a kind are deleted so that a day of rebuilds does not fill the disk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.base import ServiceError, cache_root

KEEP = 3  # archives of one kind kept (the most recently used)


@dataclass(frozen=True)
class Image:
    """An image as a docker-archive: `ref` is the name inside it, `size` the archive's bytes."""

    ref: str
    archive: Path
    size: int


def images_dir() -> Path:
    return cache_root() / "images"


def fresh_log(name: str) -> Path:
    log = images_dir() / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    return log


def cached(ref: str, archive: Path) -> Image | None:
    if not archive.is_file():
        return None
    os.utime(archive)  # "recently used" for pruning
    return Image(ref, archive, archive.stat().st_size)


def prune(pattern: str) -> None:
    archives = sorted(images_dir().glob(pattern), key=lambda path: path.stat().st_mtime)
    for old in archives[:-KEEP]:
        old.unlink(missing_ok=True)
        (images_dir() / "logs" / f"{old.stem}.log").unlink(missing_ok=True)


def digest(parts: Iterable[bytes]) -> str:
    """12 hex digits of a hash of `parts`, each length-prefixed so no two lists collide."""
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(len(part).to_bytes(8, "big"))
        hashed.update(part)
    return hashed.hexdigest()[:12]


def tree_files(root: Path, names: Sequence[str]) -> list[Path]:
    """The files a build context holds, as .dockerignore lets them through, sorted.

    A symbolic link is refused: it would put whatever it points at (anywhere on this machine)
    into the image.
    """
    found: list[Path] = []
    for name in names:
        top = root / name
        candidates = [top] if top.is_file() or top.is_symlink() else sorted(top.rglob("*"))
        for path in candidates:
            if "__pycache__" in path.relative_to(root).parts or path.suffix == ".pyc":
                continue
            if path.is_symlink():
                raise ServiceError(f"{path} is a symbolic link; copy the file it points at")
            if path.is_file():
                found.append(path)
    return found


def tree_digest(root: Path, files: Sequence[Path], *extra: str) -> str:
    parts = [item.encode() for item in extra]
    for path in files:
        parts += [path.relative_to(root).as_posix().encode(), path.read_bytes()]
    return digest(parts)
