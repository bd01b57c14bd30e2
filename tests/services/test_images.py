"""kfaas's images, built here: they run what they claim, as whom they claim, and are cached.

The builds happen before the first test (services.image_fixtures); these tests run the images with
buildah (chroot isolation), so they check the files and the run configuration a pod would get.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from services import image_cache, images
from services.base import ServiceError
from services.image_archive import read_archive
from services.image_fixtures import BuiltImages

PYTHONS = ["3.11", "3.13"]

# Every module's cached bytecode must match its source: on a read-only root filesystem a stale
# .pyc is recompiled in memory on every start of every worker.
FRESH_BYTECODE = """
import os, struct, sys, kfaas.cli, kfaas.runtime.bootstrap, aiohttp, kopf, kubernetes.client
def stale(module):
    cached, source = getattr(module, "__cached__", None), getattr(module, "__file__", None)
    if not cached or not source or not source.endswith(".py"):
        return False
    with open(cached, "rb") as pyc:
        flags, mtime, size = struct.unpack("<4xIII", pyc.read(16))
    stat = os.stat(source)
    return flags == 0 and (mtime, size) != (int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size)
print("stale:", sorted(name for name, module in list(sys.modules.items()) if stale(module))[:5])
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("python", PYTHONS)
def test_kfaas_image_runs_kfaas_on_its_python_as_65532(
    kfaas_images: BuiltImages, python: str
) -> None:
    image = kfaas_images.kfaas[python]
    assert image.ref.startswith(f"localhost/kfaas:{python}-")
    contents = read_archive(image.archive)
    assert contents.reference == image.ref
    assert contents.config["config"]["User"] == "65532:65532"
    assert contents.config["config"]["Entrypoint"] == ["kfaas"]
    assert len(contents.layer_sizes) == 2  # the Debian base and the Dockerfile's final stage
    script = 'python -c "$1"; python -c "$2"; kfaas --help | grep -q gateway && echo help'
    shown = images.run(image, ["sh", "-c", script, "sh", images.SMOKE_SCRIPT, FRESH_BYTECODE])
    assert shown.splitlines() == [f"{python} 65532", "stale: []", "help"]


def test_built_images_are_found_again_without_a_build(kfaas_images: BuiltImages) -> None:
    # The kfaas image is keyed on the working tree, which other work may change during a run;
    # the base and pause images are keyed on what does not (test_a_changed_source_changes_the_key
    # covers the kfaas image's key).
    started = time.monotonic()
    assert images.base_image("3.13") == kfaas_images.base["3.13"]
    assert images.pause_image() == kfaas_images.pause
    assert time.monotonic() - started < 10  # hashes and a stat, no build


@pytest.mark.timeout(300)
@pytest.mark.parametrize("python", PYTHONS)
def test_base_image_is_debian_with_its_python(
    kfaas_images: BuiltImages, python: str, tmp_path: Path
) -> None:
    base = kfaas_images.base[python]
    contents = read_archive(base.archive)
    assert contents.config["config"]["Env"][0].startswith("PATH=")
    shown = images.run(base, ["python", "-c", "import sys, ssl, venv; print(sys.version)"])
    assert shown.startswith(python)
    codename = images.run(base, ["sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME"])
    assert codename == {"3.11": "bookworm", "3.13": "trixie"}[python]
    # apt's package lists and the manuals stay out, and so does the host's resolver.
    listed = images.run(
        base, ["sh", "-c", "ls -A /var/lib/apt/lists; ls -A /usr/share/man | wc -l"]
    )
    assert listed.split() == ["partial", "0"]
    resolv = _layer_file(base.archive, "etc/resolv.conf", tmp_path).read_text()
    assert "nameserver" not in resolv


def _layer_file(archive: Path, name: str, folder: Path) -> Path:
    """Extract `name` from the (only) layer of a single-layer image archive into `folder`."""
    with tarfile.open(archive) as outer:
        (layer_name,) = read_archive(archive).config["rootfs"]["diff_ids"]
        member = outer.extractfile(f"{layer_name.removeprefix('sha256:')}/layer.tar")
        assert member is not None
        with tarfile.open(fileobj=member) as layer:
            layer.extract(name, folder, filter="data")
    return folder / name


def test_pause_image_waits_and_exits_on_sigterm(kfaas_images: BuiltImages, tmp_path: Path) -> None:
    pause = kfaas_images.pause
    contents = read_archive(pause.archive)
    assert contents.config["config"]["Entrypoint"] == ["/pause"]
    assert contents.config["config"]["User"] == "65535:65535"
    assert pause.size < 4 << 20
    binary = _layer_file(pause.archive, "pause", tmp_path)
    assert b"ld-linux" not in binary.read_bytes()  # static: no dynamic loader named
    process = subprocess.Popen([str(binary)])
    try:
        time.sleep(0.3)
        assert process.poll() is None  # it waits
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.wait()


@pytest.mark.timeout(600)
def test_function_image_bakes_code_into_var_task(kfaas_images: BuiltImages, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("def handler(event, context):\n    return {'baked': event}\n")
    (code / "app.py").chmod(0o600)  # a checkout's private file is still readable in the image
    (code / "__pycache__").mkdir()
    (code / "__pycache__" / "junk.pyc").write_bytes(b"not copied")
    ref = "localhost/kfaas-fn-test:1"
    image = images.function_image(kfaas_images.kfaas["3.11"], code, ref)
    assert image.ref == ref and read_archive(image.archive).reference == ref
    shown = images.run(
        image,
        [
            "sh",
            "-c",
            "stat -c '%u %a' /var/task/app.py; ls -a /var/task | tr '\\n' ' '; echo;"
            "python -c 'import app; print(app.handler(1, None))';"
            "(echo x >> /var/task/app.py) 2>/dev/null && echo writable || echo read-only",
        ],
    )
    assert shown.splitlines() == ["0 644", ". .. app.py ", "{'baked': 1}", "read-only"]
    assert images.function_image(kfaas_images.kfaas["3.11"], code, ref) == image  # cached


def test_a_changed_source_changes_the_key(tmp_path: Path) -> None:
    (tmp_path / "kfaas").mkdir()
    (tmp_path / "kfaas" / "a.py").write_text("A = 1\n")
    (tmp_path / "kfaas" / "__pycache__").mkdir()
    files = image_cache.tree_files(tmp_path, ["kfaas"])
    assert [path.name for path in files] == ["a.py"]
    before = image_cache.tree_digest(tmp_path, files, "base")
    (tmp_path / "kfaas" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"ignored")
    again = image_cache.tree_files(tmp_path, ["kfaas"])
    assert image_cache.tree_digest(tmp_path, again, "base") == before
    (tmp_path / "kfaas" / "a.py").write_text("A = 2\n")
    assert image_cache.tree_digest(tmp_path, files, "base") != before
    assert image_cache.tree_digest(tmp_path, files, "other base") != image_cache.tree_digest(
        tmp_path, files, "base"
    )


def test_only_the_latest_archives_stay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = image_cache.images_dir()
    folder.mkdir(parents=True)
    for age, name in enumerate(["kfaas-3.11-a.tar", "kfaas-3.11-b.tar", "kfaas-3.11-c.tar"]):
        (folder / name).write_bytes(b"")
        os.utime(folder / name, (1000 + age, 1000 + age))
    (folder / "kfaas-3.11-d.tar").write_bytes(b"")
    (folder / "kfaas-3.13-a.tar").write_bytes(b"")
    image_cache.prune("kfaas-3.11-*.tar")
    left = sorted(path.name for path in folder.iterdir())
    assert left == ["kfaas-3.11-b.tar", "kfaas-3.11-c.tar", "kfaas-3.11-d.tar", "kfaas-3.13-a.tar"]


def test_function_image_refuses_a_reference_that_is_not_name_tag(tmp_path: Path) -> None:
    kfaas = image_cache.Image("localhost/kfaas:3.11-0", tmp_path / "absent.tar", 0)
    with pytest.raises(ValueError, match="not an image reference"):
        images.function_image(kfaas, tmp_path, "localhost/fn:1\nx")


def test_a_symbolic_link_in_function_code_is_refused(tmp_path: Path) -> None:
    """A link would copy whatever it points at on the building machine into the image."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("def handler(event, context):\n    return None\n")
    (code / "secrets").symlink_to("/etc/shadow")
    kfaas = image_cache.Image("localhost/kfaas:3.11-0", tmp_path / "absent.tar", 0)
    with pytest.raises(ServiceError, match="secrets is a symbolic link"):
        images.function_image(kfaas, code, "localhost/fn:1")
    (code / "secrets").unlink()
    (code / "lib").mkdir()
    (code / "lib" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ServiceError, match="passwd is a symbolic link"):
        images.function_image(kfaas, code, "localhost/fn:1")
