"""Function code as files: digests that change exactly when the code does, and inline code on disk.

``status.codeSha256`` and the local backend's reload both rest on :func:`code_digest`; it hashes
relative paths and contents in a fixed order so that the same code always has the same digest.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kfaas.manifests import Function

# Caches, VCS folders and `kfaas dev`'s default state folder (whose files change with every
# write: in the code's digest they would make each write a code change, and so another write).
IGNORED_PARTS = {"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache", ".kfaas"}


def files_digest(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        encoded = name.encode()
        digest.update(len(encoded).to_bytes(4, "big") + encoded)
        digest.update(len(files[name]).to_bytes(8, "big") + files[name])
    return digest.hexdigest()


def tree_files(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` by relative path, skipping caches and VCS folders."""
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not IGNORED_PARTS.intersection(relative.parts):
            files[relative.as_posix()] = path.read_bytes()
    return files


def config_map_files(config_map: Mapping[str, Any]) -> dict[str, bytes]:
    """The files a ConfigMap volume holds: ``data`` as UTF-8, ``binaryData`` base64-decoded.

    Kubernetes refuses a key present in both, so one dictionary holds them all; hashed with
    :func:`files_digest`, a ConfigMap has the digest inline code with the same files would have.
    """
    files = {name: str(text).encode() for name, text in (config_map.get("data") or {}).items()}
    for name, encoded in (config_map.get("binaryData") or {}).items():
        files[name] = base64.b64decode(str(encoded))
    return files


def code_digest(function: Function) -> str:
    """sha256 of the code a function runs (inline files or its local folder; image by name;
    an uploaded zip by the zip's bytes).

    A ``code.configMap`` is hashed by name here, since the manifest alone does not hold its
    files; the operator hashes the ConfigMap's contents instead (:func:`config_map_files`).
    """
    code = function.spec.code
    if code.inline is not None:
        return files_digest({name: text.encode() for name, text in code.inline.items()})
    if code.zip is not None:  # an uploaded zip is named by its own digest (ADR 025)
        return code.zip.sha256
    root = function.code_root()
    if root is not None:
        return files_digest(tree_files(root)) if root.is_dir() else files_digest({})
    return hashlib.sha256((code.image or code.config_map or "").encode()).hexdigest()


def write_inline(function: Function, directory: Path) -> Path:
    """Write inline code under ``directory/<digest>`` (once) and return that folder."""
    inline = function.spec.code.inline or {}
    target = directory / code_digest(function)[:16]
    if not target.is_dir():
        staging = target.with_suffix(".tmp")
        staging.mkdir(parents=True, exist_ok=True)
        for name, text in inline.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if name == "bootstrap":
                path.chmod(0o755)
        staging.rename(target)
    return target
