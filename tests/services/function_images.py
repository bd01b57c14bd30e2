"""Images with a function's code in /var/task, built FROM a kfaas image with buildah.

A Function with `code.image` runs such an image (docs/install.md, "Function images"). The tests
build them with `tests/services/function.Dockerfile`, the file users can build with docker, from
a folder of code. Re-exported as `services.images.function_image`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from services.base import build_lock, progress
from services.buildah import kept
from services.image_archive import check_reference
from services.image_cache import (
    Image,
    cached,
    fresh_log,
    images_dir,
    prune,
    tree_digest,
    tree_files,
)

FUNCTION_DOCKERFILE = Path(__file__).with_name("function.Dockerfile")


def function_image(base: Image, code_dir: Path, ref: str) -> Image:
    """`code_dir`'s files in /var/task of an image FROM `base` (tests/services/function.Dockerfile).

    For Functions with `code.image`; cached on the base, the code and `ref`.
    """
    check_reference(ref)
    files = tree_files(code_dir, sorted(path.name for path in code_dir.iterdir()))
    key = tree_digest(code_dir, files, base.ref, ref, FUNCTION_DOCKERFILE.read_text())
    archive = images_dir() / f"function-{key}.tar"
    image = cached(ref, archive)
    if image is not None:
        return image
    with build_lock("images-function"):
        image = cached(ref, archive)
        if image is None:
            image = _build_function(base, code_dir, files, ref, archive)
            prune("function-*.tar")
    return image


def _build_function(
    base: Image, code_dir: Path, files: Sequence[Path], ref: str, archive: Path
) -> Image:
    context = archive.with_name(archive.stem + ".context.partial")
    shutil.rmtree(context, ignore_errors=True)
    for path in files:
        target = context / path.relative_to(code_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        # Readable by the function's user whatever the checkout's umask was; executable stays so.
        target.chmod(0o755 if os.access(path, os.X_OK) else 0o644)
    context.mkdir(exist_ok=True)
    log = fresh_log(archive.stem)
    progress(f"building {ref} FROM {base.ref} with the code of {code_dir}")
    partial = archive.with_name(archive.name + ".partial")
    try:
        # One storage for all function builds, holding the kfaas image they start FROM: a pull
        # into vfs copies 300 MB (15 s), which only a new kfaas image needs.
        with kept(images_dir() / "buildah-functions", log) as buildah:
            buildah.command("rm", "--all")  # containers a killed build left
            present = buildah.images()
            for image_id, name in present.items():
                if name != base.ref:
                    buildah.command("rmi", "--force", image_id)
            if base.ref not in present.values():
                buildah.pull(base.archive)
            buildah.build(context, FUNCTION_DOCKERFILE, ref, {"KFAAS_IMAGE": base.ref})
            buildah.push(ref, partial)
            buildah.command("rmi", ref)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    partial.rename(archive)
    return Image(ref, archive, archive.stat().st_size)
