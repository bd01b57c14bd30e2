"""Which images the real node runs and what they are called: the pause and kfaas images come from
`services.images` (built here, ADR 015) as docker-archives; the name an archive is imported under
is the first tag its manifest.json lists.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

from services import images
from services.base import ServiceError


def image_ref(archive: Path) -> str:
    """The first tag a docker-archive's manifest.json names (what `ctr import` will call it)."""
    with tarfile.open(archive) as packed:
        member = packed.extractfile("manifest.json")
        if member is None:
            raise ServiceError(f"{archive} has no manifest.json")
        manifest = json.load(member)
    tags: list[str] = manifest[0].get("RepoTags") or []
    if not tags:
        raise ServiceError(f"{archive} names no image (RepoTags is empty)")
    return tags[0]


def pause_archive() -> Path:
    """The sandbox image's archive; KFAAS_PAUSE_ARCHIVE names one of your own instead."""
    override = os.environ.get("KFAAS_PAUSE_ARCHIVE")
    return Path(override) if override else images.pause_image().archive


def kfaas_image() -> images.Image:
    """What KFAAS_IMAGE names: the repository's Dockerfile built FROM Debian 12's Python 3.11."""
    return images.kfaas_image(python="3.11")
