"""Files written whole or not at all, for the folder stores of ``kfaas dev`` and the code store.

A crash or a full disk must never leave half an object or half a zip under its final name: the
bytes go to a temporary file first, are fsynced, renamed over the target, and the folder is
fsynced so the rename itself survives a power cut. A failure removes the temporary file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_whole(path: Path, data: bytes, *, temporary_folder: Path | None = None) -> None:
    """Replace ``path`` with ``data`` atomically; the temporary file is made in
    ``temporary_folder`` (same filesystem as ``path``) or, by default, beside ``path``."""
    folder = temporary_folder or path.parent
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make the entries of ``folder`` durable (a rename is written with its folder)."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
