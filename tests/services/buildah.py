"""Debian's buildah, run the one way kfaas's image builds need: no daemon, no registry.

Every build gets a storage folder of its own (vfs driver, which needs no overlay mounts, and chroot
isolation, which needs no user namespaces), pulls its base from a docker-archive, builds with
`--pull-never` and pushes the result to a docker-archive; the storage is deleted afterwards. The
archives are what is cached (tests/services/images.py), so nothing in buildah's storage needs to
live on, and two builds never share (or corrupt) one storage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from services.base import MissingDependency, ServiceError, tail


def require_buildah() -> str:
    found = shutil.which("buildah")
    if found is None:
        raise MissingDependency("buildah is not installed (Debian package buildah; scripts/setup)")
    if os.geteuid() != 0:
        raise MissingDependency("buildah's chroot isolation and vfs storage need root here")
    return found


class Buildah:
    """One private buildah storage; every command's output is appended to `log`."""

    def __init__(self, storage: Path, log: Path) -> None:
        self.storage = storage
        self.log = log
        self._binary = require_buildah()

    def command(self, *args: str, output: bool = False) -> str:
        """Run one buildah command; its stdout is returned with `output`, else logged in order."""
        argv = [
            self._binary,
            "--storage-driver",
            "vfs",
            "--root",
            str(self.storage / "root"),
            "--runroot",
            str(self.storage / "runroot"),
            *args,
        ]
        env = dict(os.environ, BUILDAH_ISOLATION="chroot", TMPDIR=str(self.storage / "tmp"))
        (self.storage / "tmp").mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            stdout = subprocess.PIPE if output else log
            started = time.monotonic()
            done = subprocess.run(argv, env=env, stdout=stdout, stderr=log, text=True)
            log.write(f"# buildah {args[0]}: {time.monotonic() - started:.1f} s\n")
        if done.returncode != 0:
            ending = tail(self.log)
            raise ServiceError(
                f"buildah {args[0]} failed ({done.returncode}); {self.log}:\n{ending}"
            )
        return (done.stdout or "").strip()

    def pull(self, archive: Path) -> None:
        self.command("pull", "--quiet", f"docker-archive:{archive}")

    def build(
        self, context: Path, dockerfile: Path, reference: str, build_args: Mapping[str, str]
    ) -> None:
        args = [f"--build-arg={key}={value}" for key, value in build_args.items()]
        self.command(
            "bud",
            "--isolation=chroot",
            "--pull-never",
            f"--file={dockerfile}",
            f"--tag={reference}",
            *args,
            str(context),
        )

    def push(self, reference: str, archive: Path) -> None:
        """Write `reference` as a docker-archive at `archive` (replaced if present)."""
        archive.unlink(missing_ok=True)
        self.command("push", "--quiet", reference, f"docker-archive:{archive}:{reference}")

    def run(self, reference: str, argv: list[str]) -> str:
        """Run `argv` in a container of `reference` as the image's user; returns its stdout."""
        container = self.command("from", "--pull-never", "--quiet", reference, output=True)
        try:
            return self.command("run", "--isolation=chroot", container, "--", *argv, output=True)
        finally:
            self.command("rm", container)

    def images(self) -> dict[str, str]:
        """The images in this storage: ID → name:tag (`<none>:<none>` for unnamed ones)."""
        shown = self.command(
            "images", "--all", "--format", "{{.ID}} {{.Name}}:{{.Tag}}", output=True
        )
        return dict(line.split(maxsplit=1) for line in shown.splitlines() if line.strip())


def _unmount_under(folder: Path) -> None:
    """chroot isolation bind-mounts into the storage while a step runs; never delete through one."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    points = [line.split()[1] for line in mounts]
    for point in sorted(points, key=len, reverse=True):
        if point.startswith(f"{folder}/"):
            subprocess.run(["umount", "--lazy", point], check=False)


@contextmanager
def scratch(parent: Path, log: Path) -> Iterator[Buildah]:
    """A Buildah with a new storage under `parent`, deleted (even after a failure) at the end."""
    for left in parent.glob("buildah-*"):
        # A build killed mid-way (a timeout, ^C) left its storage: several GB with vfs.
        owner = left.name.removeprefix("buildah-")
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            _unmount_under(left)
            shutil.rmtree(left, ignore_errors=True)
    storage = parent / f"buildah-{os.getpid()}"
    _unmount_under(storage)
    shutil.rmtree(storage, ignore_errors=True)
    storage.mkdir(parents=True)
    try:
        yield Buildah(storage, log)
    finally:
        _unmount_under(storage)
        shutil.rmtree(storage, ignore_errors=True)


@contextmanager
def kept(storage: Path, log: Path) -> Iterator[Buildah]:
    """A Buildah whose storage stays for the next build; the caller holds a lock on it.

    After a failure the storage is deleted, so that a half-finished one never breaks the next
    build (which then starts from an empty storage, like `scratch`).
    """
    storage.mkdir(parents=True, exist_ok=True)
    try:
        yield Buildah(storage, log)
    except BaseException:
        _unmount_under(storage)
        shutil.rmtree(storage, ignore_errors=True)
        raise
