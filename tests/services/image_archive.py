"""Writes container images as docker-archive tars, the format `docker save` writes.

No registry is reachable where kfaas's tests run and no Docker engine is installed, yet the real
node's containerd (`ctr images import`) and buildah (`docker-archive:` transport) both read this
format. The base root filesystem (debootstrap) and the pause program have no other way to become
images, so these few functions pack a folder into one layer tar, describe it in an image config and
list both in `manifest.json` (docker's "Image JSON" and "Combined Image JSON + Filesystem Changeset
Format"). Entries are sorted and owned by numbers only, so the same files with the same times give
the same layer digest. File times are kept: Python's cached bytecode is checked against its
source's modification time, and a rootfs whose times were changed would recompile on every start.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

WRITER_VERSION = "1"  # part of every cache key: a change here rebuilds what it wrote
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CREATED = "1970-01-01T00:00:00Z"  # fixed, so the config (and image ID) depends on content only
# Only the folders themselves go into a layer: the runtime mounts its own /dev, /proc and /sys.
EMPTIED = frozenset({"dev", "proc", "sys"})
_CHUNK = 1 << 20

# A reference as the distribution spec and containerd accept it: lowercase path components
# separated by `/`, an optional registry host (with port), then a mandatory tag.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
_REFERENCE = re.compile(
    rf"(?:{_HOST}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*:[\w][\w.-]{{0,127}}", re.ASCII
)


class ArchiveError(ValueError):
    """A reference, a layer or an archive is not what the docker-archive format allows."""


def check_reference(reference: str) -> str:
    """Refuse anything but `name:tag` (no digest, no whitespace, at most 255 characters)."""
    if len(reference) > 255 or not _REFERENCE.fullmatch(reference):
        raise ArchiveError(f"not an image reference of the form name:tag: {reference!r}")
    return reference


@dataclass(frozen=True)
class Layer:
    """One uncompressed layer tar and its digest (the `diff_id` an image config lists)."""

    path: Path
    diff_id: str


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image's run configuration kfaas's images set."""

    env: Sequence[str] = (DEFAULT_PATH,)
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    user: str = ""
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


def architecture() -> str:
    """This machine's architecture as image configs name it (GOARCH spelling)."""
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _walk(root: Path) -> Iterator[tuple[Path, str]]:
    """Every path under root, parents first, siblings sorted by name; symlinks are not followed."""
    for folder, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(folder)
        relative = here.relative_to(root)
        if relative.as_posix() in EMPTIED:
            dirnames.clear()
            continue
        for name in sorted([*dirnames, *filenames]):
            yield here / name, (relative / name).as_posix()


def write_layer(root: Path, out: Path) -> Layer:
    """Pack everything under `root` (as `/` of the image) into the layer tar `out`."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as layer:
        for path, name in _walk(root):
            # typeshed says TarInfo, but sockets and the like give None
            info: tarfile.TarInfo | None = layer.gettarinfo(str(path), arcname=name)
            if info is None:  # sockets: nothing a layer can hold
                continue
            info.uname = info.gname = ""
            info.mtime = int(info.mtime)
            if info.isreg():
                with path.open("rb") as content:
                    layer.addfile(info, content)
            else:
                layer.addfile(info)
    return Layer(out, file_digest(out))


def image_config(layers: Sequence[Layer], config: ImageConfig) -> dict[str, Any]:
    """The image config JSON (docker's image spec v1.2, which OCI's config matches)."""
    run: dict[str, Any] = {"Env": list(config.env)}
    if config.entrypoint:
        run["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        run["Cmd"] = list(config.cmd)
    if config.user:
        run["User"] = config.user
    if config.working_dir:
        run["WorkingDir"] = config.working_dir
    if config.labels:
        run["Labels"] = dict(config.labels)
    return {
        "architecture": architecture(),
        "os": "linux",
        "created": CREATED,
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": CREATED, "created_by": f"kfaas image_archive {WRITER_VERSION}"}
            for _ in layers
        ],
    }


def _canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def write_archive(out: Path, layers: Sequence[Layer], config: ImageConfig, reference: str) -> str:
    """Write the docker-archive `out` (via `out.partial`); returns the image ID (config digest)."""
    check_reference(reference)
    config_bytes = _canonical(image_config(layers, config))
    image_id = f"sha256:{hashlib.sha256(config_bytes).hexdigest()}"
    layer_names = [f"{layer.diff_id.removeprefix('sha256:')}/layer.tar" for layer in layers]
    config_name = f"{image_id.removeprefix('sha256:')}.json"
    manifest = [{"Config": config_name, "RepoTags": [reference], "Layers": layer_names}]
    partial = out.with_name(out.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
        for layer, name in zip(layers, layer_names, strict=True):
            info = archive.gettarinfo(str(layer.path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with layer.path.open("rb") as content:
                archive.addfile(info, content)
        _add_bytes(archive, config_name, config_bytes)
        _add_bytes(archive, "manifest.json", _canonical(manifest))
    partial.rename(out)
    return image_id


@dataclass(frozen=True)
class ArchiveContents:
    """What an archive says about itself, after its digests were checked."""

    reference: str
    image_id: str
    config: dict[str, Any]
    layer_sizes: list[int]


def _member_bytes(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    member = archive.extractfile(name)
    if member is None:
        raise ArchiveError(f"{name} is not a file in the archive")
    return member


def read_archive(path: Path) -> ArchiveContents:
    """Read an archive with one image and check that every digest in it is right."""
    with tarfile.open(path) as archive:
        manifest = json.load(_member_bytes(archive, "manifest.json"))
        if not isinstance(manifest, list) or len(manifest) != 1:
            raise ArchiveError(f"{path}: manifest.json must list exactly one image")
        entry = manifest[0]
        config_bytes = _member_bytes(archive, entry["Config"]).read()
        image_id = f"sha256:{hashlib.sha256(config_bytes).hexdigest()}"
        if entry["Config"] != f"{image_id.removeprefix('sha256:')}.json":
            raise ArchiveError(f"{path}: config {entry['Config']} has digest {image_id}")
        config = json.loads(config_bytes)
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(entry["Layers"]):
            raise ArchiveError(f"{path}: {len(entry['Layers'])} layers, {len(diff_ids)} diff_ids")
        sizes = []
        for name, diff_id in zip(entry["Layers"], diff_ids, strict=True):
            digest = hashlib.sha256()
            member = _member_bytes(archive, name)
            size = 0
            while chunk := member.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
            if f"sha256:{digest.hexdigest()}" != diff_id:
                raise ArchiveError(f"{path}: layer {name} does not match its diff_id {diff_id}")
            sizes.append(size)
        (reference,) = entry["RepoTags"]
    return ArchiveContents(check_reference(reference), image_id, config, sizes)
