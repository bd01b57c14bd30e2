"""The wheels of kfaas's dependencies, fetched on the host for an image build that has no network.

pip inside a buildah build cannot reach PyPI here (no registry, and the image may lack the host's
CA bundle), but the host's pip can. So the host downloads binary wheels for the image's Python and
glibc (`pip download --only-binary=:all: --python-version ... --platform manylinux_...`): the
project's dependencies, its build requirements and the tool versions the Dockerfile pins. The
Dockerfile then installs with `--no-index --find-links` (its WHEELHOUSE build argument). A folder
of wheels is cached per machine, keyed on those requirements and the target, so a code change
rebuilds the image without downloading again.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from services.base import ServiceError, progress, tail

FORMAT_VERSION = "1"  # part of the cache key
KEEP = 2  # wheelhouses kept per Python version


def requirements(pyproject: Path) -> list[str]:
    """What `pip install .` needs: the build system's requirements and the runtime dependencies."""
    project = tomllib.loads(pyproject.read_text())
    return [*project["build-system"]["requires"], *project["project"]["dependencies"]]


def pinned_tools(dockerfile: Path) -> list[str]:
    """The `pip==…`, `setuptools==…`, `wheel==…` the Dockerfile installs into its virtualenv."""
    pins = re.findall(r'"((?:pip|setuptools|wheel)==[0-9][0-9A-Za-z.]*)"', dockerfile.read_text())
    if not pins:
        raise ServiceError(f"{dockerfile} pins no pip/setuptools/wheel versions any more")
    return pins


def platforms(glibc_minor: int, machine: str = "x86_64") -> list[str]:
    """Every manylinux tag a glibc 2.<minor> system runs, newest first: pip takes only those."""
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(glibc_minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{machine}" for minor, name in legacy.items() if minor <= glibc_minor]
    return tags


def cache_key(python: str, glibc_minor: int, wanted: list[str], pins: list[str]) -> str:
    text = "\n".join([FORMAT_VERSION, python, str(glibc_minor), *wanted, "--", *pins])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _download(target: Path, python: str, glibc_minor: int, specs: list[str], log: Path) -> None:
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--dest"]
    argv += [str(target), "--only-binary=:all:", "--python-version", python]
    argv += ["--implementation", "cp"]
    for platform in platforms(glibc_minor):
        argv += ["--platform", platform]
    with log.open("a") as output:
        output.write(f"$ {' '.join(argv + specs)}\n")
        output.flush()
        done = subprocess.run([*argv, *specs], stdout=output, stderr=output)
    if done.returncode != 0:
        raise ServiceError(
            f"pip download for Python {python} failed ({done.returncode}); end of {log}:\n"
            f"{tail(log)}"
        )


def build(parent: Path, python: str, glibc_minor: int, pyproject: Path, dockerfile: Path) -> Path:
    """The cached wheelhouse for this Python and these requirements (downloaded if missing).

    The caller holds the images build lock.
    """
    wanted, pins = requirements(pyproject), pinned_tools(dockerfile)
    target = parent / f"wheels-{python}-{cache_key(python, glibc_minor, wanted, pins)}"
    if target.is_dir():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log = parent / "logs" / f"{target.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    started = time.monotonic()
    progress(f"downloading the wheels of kfaas's dependencies for Python {python} into {target}")
    # The pinned tools apart: setuptools==75.6.0 (the virtualenv's) and setuptools>=77 (the
    # build backend's, pip installs it in an isolated build environment) cannot be resolved
    # together, and both must be there.
    _download(partial, python, glibc_minor, [*pins, "--no-deps"], log)
    _download(partial, python, glibc_minor, wanted, log)
    partial.rename(target)
    progress(f"wheels for Python {python} ready in {time.monotonic() - started:.0f} s")
    kept = [path for path in parent.glob(f"wheels-{python}-*") if path.suffix != ".partial"]
    for old in sorted(kept, key=lambda path: path.stat().st_mtime)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return target
