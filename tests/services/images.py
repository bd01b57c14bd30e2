"""kfaas's container images, built on this machine from the project's own files (ADR 015).

No registry is reachable where the tests run, so every image the real node runs is made here and
handed over as a docker-archive tar that `ctr -n k8s.io images import` reads:

- `base_image("3.11" | "3.13")`: Debian 12 or 13 from the mirror apt uses (`debootstrap
  --variant=minbase`) with its packaged Python, packed by services.image_archive;
- `kfaas_image(python)`: the repository's Dockerfile as it is, built by buildah FROM that base,
  with the dependencies' wheels fetched on the host (services.wheelhouse);
- `pause_image()`: the pod sandbox, a tiny static Go program (tests/cluster/pause);
- `function_image(kfaas, code, ref)`: handler code baked into /var/task, for `code.image`
  (services.function_images).

Archives are cached under `~/.cache/kfaas/images/`, keyed on what goes into them (the kfaas image
on the Dockerfile and the package sources), written as `*.partial` and renamed, one build of each
kind at a time per machine. `scripts/images` builds them by hand.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from services import debian, wheelhouse
from services.base import MissingDependency, ServiceError, build_lock, progress
from services.buildah import scratch
from services.cluster_build import find_go
from services.function_images import function_image
from services.image_archive import WRITER_VERSION, ImageConfig, write_archive
from services.image_archive import write_layer as pack_folder
from services.image_cache import (
    Image,
    cached,
    digest,
    fresh_log,
    images_dir,
    prune,
    tree_digest,
    tree_files,
)

__all__ = [
    "Image",
    "base_image",
    "function_image",
    "images_dir",
    "kfaas_image",
    "pause_image",
    "run",
]

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_SOURCES = (
    "pyproject.toml",
    "README.md",
    "kfaas",
    "runtime",
    "gateway",
    "operator",
    "pollers",
    "cli",
    "codestore",
    "scheduler",
)
PAUSE_SOURCE = ROOT / "tests" / "cluster" / "pause"
KFAAS_RECIPE = "1"  # bump when the way the kfaas image is built changes
USER_ID = "65532"
RunInImage = Callable[[str, list[str]], str]


def base_image(python: str = "3.11") -> Image:
    """Debian's minimal system with its python3 (3.11: bookworm, 3.13: trixie)."""
    release = debian.release_for(python)
    key = digest(
        [release.suite.encode(), *map(str.encode, debian.PACKAGES), WRITER_VERSION.encode()]
    )
    key = digest([key.encode(), debian.RECIPE_VERSION.encode()])
    ref = f"localhost/kfaas-python:{python}-{key}"
    archive = images_dir() / f"kfaas-python-{python}-{key}.tar"
    image = cached(ref, archive)
    if image is not None:
        return image
    with build_lock(f"images-base-{python}"):
        image = cached(ref, archive)
        if image is None:
            image = _build_base(release, ref, archive)
    return image


def _build_base(release: debian.Release, ref: str, archive: Path) -> Image:
    started = time.monotonic()
    rootfs = archive.with_name(archive.stem + ".rootfs.partial")
    log = fresh_log(archive.stem)
    try:
        debian.bootstrap(release, rootfs, log)
        layer = pack_folder(rootfs, archive.with_name(archive.stem + ".layer.partial"))
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    config = ImageConfig(
        cmd=("python3",),
        labels={
            "org.opencontainers.image.title": "kfaas-python",
            "org.opencontainers.image.base.name": f"debian:{release.suite}",
        },
    )
    try:
        write_archive(archive, [layer], config, ref)
    finally:
        layer.path.unlink(missing_ok=True)
    progress(f"base image {ref} built in {time.monotonic() - started:.0f} s")
    return Image(ref, archive, archive.stat().st_size)


def _kfaas_key(root: Path, base: Image) -> str:
    files = tree_files(root, PACKAGE_SOURCES)
    return tree_digest(root, [root / "Dockerfile", *files], base.ref, KFAAS_RECIPE)


def _kfaas_names(python: str, key: str) -> tuple[str, Path]:
    return f"localhost/kfaas:{python}-{key}", images_dir() / f"kfaas-{python}-{key}.tar"


def kfaas_image(python: str = "3.11") -> Image:
    """The repository's Dockerfile built FROM base_image(python); rebuilt when the code changes."""
    base = base_image(python)
    ref, archive = _kfaas_names(python, _kfaas_key(ROOT, base))
    image = cached(ref, archive)
    if image is not None:
        return image
    with build_lock(f"images-kfaas-{python}"):
        context = images_dir() / f"kfaas-{python}.context.partial"
        try:
            _stage_context(context)
            # Named after the copy, not the tree: the tree may change while the image builds.
            ref, archive = _kfaas_names(python, _kfaas_key(context, base))
            image = cached(ref, archive)
            if image is None:
                image = _build_kfaas(base, python, context, ref, archive)
                prune(f"kfaas-{python}-*.tar")
        finally:
            shutil.rmtree(context, ignore_errors=True)
    return image


def _stage_context(context: Path) -> None:
    """Only what the Dockerfile copies (as .dockerignore lets it through), and the Dockerfile."""
    shutil.rmtree(context, ignore_errors=True)
    for path in [ROOT / "Dockerfile", *tree_files(ROOT, PACKAGE_SOURCES)]:
        target = context / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _build_kfaas(base: Image, python: str, context: Path, ref: str, archive: Path) -> Image:
    started = time.monotonic()
    release = debian.release_for(python)
    dockerfile = context / "Dockerfile"
    wheels = wheelhouse.build(
        images_dir(), python, release.glibc_minor, context / "pyproject.toml", dockerfile
    )
    # The Dockerfile's WHEELHOUSE argument points pip at these (and nothing else: --no-index).
    shutil.copytree(wheels, context / "wheelhouse")
    log = fresh_log(archive.stem)
    partial = archive.with_name(archive.name + ".partial")
    progress(f"building {ref} from the Dockerfile with buildah (log: {log})")
    with scratch(images_dir(), log) as buildah:
        buildah.pull(base.archive)
        build_args = {"PYTHON_IMAGE": base.ref, "WHEELHOUSE": "/src"}
        buildah.build(context, dockerfile, ref, build_args)
        _smoke(buildah.run, ref, python)
        buildah.push(ref, partial)
    partial.rename(archive)
    size = archive.stat().st_size
    progress(f"built {ref} in {time.monotonic() - started:.0f} s ({size >> 20} MiB)")
    return Image(ref, archive, size)


def _smoke(run: RunInImage, ref: str, python: str) -> None:
    """The image starts kfaas on the Python it claims, as the unprivileged user."""
    shown = run(ref, ["python", "-c", SMOKE_SCRIPT])
    expected = f"{python} {USER_ID}"
    if shown.splitlines()[-1:] != [expected]:
        raise ServiceError(f"{ref}: expected '{expected}' from the smoke check, got {shown!r}")
    run(ref, ["kfaas", "--help"])


SMOKE_SCRIPT = (
    "import os, sys, aiohttp, kfaas.cli; "
    "print(f'{sys.version_info[0]}.{sys.version_info[1]} {os.getuid()}')"
)


def pause_image() -> Image:
    """The pod sandbox image: tests/cluster/pause, a static Go program that waits and reaps."""
    files = sorted(path for path in PAUSE_SOURCE.iterdir() if path.is_file())
    key = tree_digest(PAUSE_SOURCE, files, WRITER_VERSION)
    ref = f"localhost/kfaas-pause:{key}"
    archive = images_dir() / f"kfaas-pause-{key}.tar"
    image = cached(ref, archive)
    if image is not None:
        return image
    go = find_go()
    with build_lock("images-pause"):
        image = cached(ref, archive)
        if image is None:
            image = _build_pause(go, ref, archive)
            prune("kfaas-pause-*.tar")
    return image


def _build_pause(go: Path, ref: str, archive: Path) -> Image:
    rootfs = archive.with_name(archive.stem + ".rootfs.partial")
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.mkdir(parents=True)
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-trimpath -buildvcs=false")
    env["PATH"] = f"{go.parent}{os.pathsep}{env.get('PATH', '')}"
    progress(f"building the pause program ({PAUSE_SOURCE}) into {ref}")
    try:
        done = subprocess.run(
            [str(go), "build", "-ldflags=-s -w", "-o", str(rootfs / "pause"), "."],
            cwd=PAUSE_SOURCE,
            env=env,
            stdout=2,
            stderr=2,
        )
        if done.returncode != 0:
            raise ServiceError(f"go build of {PAUSE_SOURCE} failed ({done.returncode})")
        os.utime(rootfs / "pause", (0, 0))  # the same source gives the same layer
        os.utime(rootfs, (0, 0))
        layer = pack_folder(rootfs, archive.with_name(archive.stem + ".layer.partial"))
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    # The user of Kubernetes' own pause image: nobody, with no group.
    config = ImageConfig(entrypoint=("/pause",), user="65535:65535")
    try:
        write_archive(archive, [layer], config, ref)
    finally:
        layer.path.unlink(missing_ok=True)
    return Image(ref, archive, archive.stat().st_size)


def run(image: Image, argv: list[str]) -> str:
    """Run `argv` in a fresh container of `image` (buildah, chroot isolation); its stdout."""
    with scratch(images_dir(), fresh_log("run")) as buildah:
        buildah.pull(image.archive)
        return buildah.run(image.ref, argv)


def build_all(pythons: Sequence[str]) -> list[Image]:
    built = [pause_image()]
    for python in pythons:
        built += [base_image(python), kfaas_image(python)]
    return built


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/images",
        description="Build kfaas's images here (cached in ~/.cache/kfaas/images) and list them.",
    )
    parser.add_argument(
        "--python",
        action="append",
        choices=sorted(debian.RELEASES),
        help="the image's Python (repeatable; default: all)",
    )
    options = parser.parse_args(argv)
    try:
        for image in build_all(options.python or sorted(debian.RELEASES)):
            print(f"{image.ref}\t{image.archive}\t{image.size >> 20} MiB")
    except MissingDependency as missing:
        print(f"images: missing dependency: {missing}", file=sys.stderr)
        return 2
    except ServiceError as failure:
        print(f"images: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
