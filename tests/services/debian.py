"""A minimal Debian root filesystem with the Python a kfaas image runs on, from Debian's packages.

Each Python the runtimes offer is the one a Debian release packages: 3.11 in Debian 12 (bookworm),
3.13 in Debian 13 (trixie); no release packages 3.12. `debootstrap --variant=minbase` installs the
release from the mirror this machine's apt already uses (no other registry is reachable), with
python3, python3-venv (the Dockerfile runs `python -m venv`), python-is-python3 (`python`) and
ca-certificates. What an image does not need is removed afterwards: apt's package lists and
downloaded packages, manuals, translations, logs, and the host's own resolv.conf and hostname,
which debootstrap copies in and which a container runtime replaces anyway.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from services.base import MissingDependency, ServiceError, progress, tail

PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
RECIPE_VERSION = "1"  # bump when bootstrap() or slim() change what the root filesystem holds
FALLBACK_MIRROR = "http://deb.debian.org/debian"
SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


@dataclass(frozen=True)
class Release:
    suite: str
    python: str
    glibc_minor: int  # wheels are chosen for this glibc (2.<minor>)


RELEASES = {
    "3.11": Release("bookworm", "3.11", 36),
    "3.13": Release("trixie", "3.13", 41),
}


def release_for(python: str) -> Release:
    try:
        return RELEASES[python]
    except KeyError:
        known = ", ".join(RELEASES)
        raise ServiceError(
            f"no Debian release packages Python {python!r}; images exist for {known}"
        ) from None


def mirror_from_sources(texts: Iterable[str]) -> str | None:
    """The first Debian archive URI in apt sources (one-line or deb822), security archives aside."""
    for text in texts:
        uris: list[str] = []
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            one_line = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", line)
            if one_line:
                uris.append(one_line[1])
            elif line.lower().startswith("uris:"):
                uris += line.split(":", 1)[1].split()
        for uri in uris:
            if re.fullmatch(r"https?://[^\s/]+(?:/[^\s]*)?/debian/?", uri):
                return uri.rstrip("/")
    return None


def apt_mirror() -> str:
    texts = []
    for source in SOURCES:
        paths = sorted(source.glob("*.sources")) + sorted(source.glob("*.list"))
        for path in [source] if source.is_file() else paths:
            texts.append(path.read_text(errors="replace"))
    return mirror_from_sources(texts) or FALLBACK_MIRROR


def _check_served(mirror: str, suite: str) -> None:
    url = f"{mirror}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=20):
            pass
    except (urllib.error.URLError, TimeoutError) as failure:
        raise ServiceError(f"the Debian mirror does not serve {suite}: {url}: {failure}") from None


def bootstrap(release: Release, rootfs: Path, log: Path) -> None:
    """Install the release into `rootfs` (replaced if present) and slim it down."""
    if shutil.which("debootstrap") is None:
        raise MissingDependency("debootstrap is not installed (Debian package debootstrap)")
    if os.geteuid() != 0:
        raise MissingDependency("debootstrap needs root (it chroots and creates device nodes)")
    mirror = apt_mirror()
    _check_served(mirror, release.suite)
    shutil.rmtree(rootfs, ignore_errors=True)
    started = time.monotonic()
    progress(
        f"debootstrap {release.suite} (Python {release.python}) from {mirror} into {rootfs}; "
        f"about 2-3 minutes (log: {log})"
    )
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}"]
    argv += [release.suite, str(rootfs), mirror]
    with log.open("a") as output:
        done = subprocess.run(argv, stdout=output, stderr=output, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise ServiceError(f"debootstrap failed ({done.returncode}); end of {log}:\n{tail(log)}")
    slim(rootfs)
    progress(f"debootstrap {release.suite} done in {time.monotonic() - started:.0f} s")


def _empty(folder: Path, keep: Iterable[str] = ()) -> None:
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def slim(rootfs: Path) -> None:
    """Remove what no container needs, and what belongs to the host that built it."""
    _empty(rootfs / "var/lib/apt/lists", keep={"partial", "lock"})
    _empty(rootfs / "var/cache/apt", keep={"archives"})
    _empty(rootfs / "var/cache/apt/archives", keep={"partial", "lock"})
    for entry in (rootfs / "var/log").rglob("*"):
        if not entry.is_dir():
            entry.unlink()  # logs of the installation; the folders stay for whoever logs later
    _empty(rootfs / "usr/share/man")
    _empty(rootfs / "usr/share/info")
    _empty(rootfs / "usr/share/locale", keep={"locale.alias"})
    for doc in (rootfs / "usr/share/doc").glob("*"):
        if doc.is_dir() and not doc.is_symlink():
            _empty(doc, keep={"copyright"})  # licences stay with what they license
    for leftover in ("var/cache/ldconfig/aux-cache", "etc/machine-id", "etc/hostname"):
        (rootfs / leftover).unlink(missing_ok=True)
    for stale in (*rootfs.glob("var/cache/debconf/*-old"), *rootfs.glob("var/lib/dpkg/*-old")):
        stale.unlink()
    resolv = rootfs / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)  # may be the host's file or a symlink to it
    resolv.write_text("# The container runtime mounts the pod's resolv.conf here.\n")
    hosts = rootfs / "etc/hosts"
    hosts.unlink(missing_ok=True)
    hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
