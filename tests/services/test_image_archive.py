"""The docker-archive writer: what it writes is what the format says, and buildah reads it.

Also the pure pieces of the image builds: the Debian mirror read from apt's sources, the wheel
platforms, the Dockerfile's offline-install hook staying invisible to `docker build`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from services import debian, wheelhouse
from services.base import MissingDependency
from services.buildah import require_buildah, scratch
from services.image_archive import (
    DEFAULT_PATH,
    ArchiveError,
    ImageConfig,
    check_reference,
    read_archive,
    write_archive,
    write_layer,
)

ROOT = Path(__file__).resolve().parents[2]


def _rootfs(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "hello").write_text("#!/bin/sh\necho hello\n")
    (root / "bin" / "hello").chmod(0o755)
    (root / "etc").mkdir()
    (root / "etc" / "motd").write_text("kfaas\n")
    os.link(root / "etc" / "motd", root / "etc" / "motd.hard")
    (root / "etc" / "motd.link").symlink_to("motd")
    (root / "dev").mkdir()
    (root / "dev" / "stray").write_text("the runtime mounts /dev; nothing of this goes in\n")
    (root / "a-first").write_text("sorted\n")
    return root


def test_layer_is_sorted_numeric_and_digested(tmp_path: Path) -> None:
    layer = write_layer(_rootfs(tmp_path / "root"), tmp_path / "layer.tar")
    assert layer.diff_id == "sha256:" + hashlib.sha256(layer.path.read_bytes()).hexdigest()
    with tarfile.open(layer.path) as tar:
        members = tar.getmembers()
    names = [member.name for member in members]
    assert names == [
        "a-first",
        "bin",
        "dev",
        "etc",
        "bin/hello",
        "etc/motd",
        "etc/motd.hard",
        "etc/motd.link",
    ]
    by_name = {member.name: member for member in members}
    assert all(member.uname == "" and member.gname == "" for member in members)
    assert by_name["bin/hello"].mode & 0o777 == 0o755
    assert by_name["etc/motd.hard"].islnk() and by_name["etc/motd.hard"].linkname == "etc/motd"
    assert by_name["etc/motd.link"].issym() and by_name["etc/motd.link"].linkname == "motd"
    assert by_name["dev"].isdir()


def test_same_files_give_the_same_layer_and_image(tmp_path: Path) -> None:
    root = _rootfs(tmp_path / "root")
    first = write_layer(root, tmp_path / "one.tar")
    second = write_layer(root, tmp_path / "two.tar")
    assert first.diff_id == second.diff_id
    config = ImageConfig(cmd=("hello",))
    one = write_archive(tmp_path / "a.tar", [first], config, "localhost/same:1")
    two = write_archive(tmp_path / "b.tar", [second], config, "localhost/same:1")
    assert one == two
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_archive_lists_config_and_layer_by_digest(tmp_path: Path) -> None:
    layer = write_layer(_rootfs(tmp_path / "root"), tmp_path / "layer.tar")
    config = ImageConfig(entrypoint=("/bin/hello",), user="65532:65532", labels={"a": "b"})
    image_id = write_archive(tmp_path / "image.tar", [layer], config, "localhost/hello:1.0")
    assert not (tmp_path / "image.tar.partial").exists()
    with tarfile.open(tmp_path / "image.tar") as archive:
        member = archive.extractfile("manifest.json")
        assert member is not None
        manifest = json.load(member)
        assert manifest == [
            {
                "Config": f"{image_id.removeprefix('sha256:')}.json",
                "RepoTags": ["localhost/hello:1.0"],
                "Layers": [f"{layer.diff_id.removeprefix('sha256:')}/layer.tar"],
            }
        ]
    contents = read_archive(tmp_path / "image.tar")
    assert contents.reference == "localhost/hello:1.0"
    assert contents.image_id == image_id
    assert contents.config["rootfs"] == {"type": "layers", "diff_ids": [layer.diff_id]}
    assert contents.config["config"] == {
        "Env": [DEFAULT_PATH],
        "Entrypoint": ["/bin/hello"],
        "User": "65532:65532",
        "Labels": {"a": "b"},
    }
    assert contents.config["os"] == "linux"
    assert contents.layer_sizes == [layer.path.stat().st_size]


def test_a_changed_layer_is_refused(tmp_path: Path) -> None:
    layer = write_layer(_rootfs(tmp_path / "root"), tmp_path / "layer.tar")
    write_archive(tmp_path / "image.tar", [layer], ImageConfig(), "localhost/hello:1")
    with tarfile.open(tmp_path / "image.tar") as original:
        members = [(member, original.extractfile(member)) for member in original.getmembers()]
        with tarfile.open(tmp_path / "forged.tar", "w") as forged:
            for member, content in members:
                data = content.read() if content is not None else b""
                if member.name.endswith("layer.tar"):
                    data = data.replace(b"echo hello", b"rm -rf /  ")
                forged.addfile(member, __import__("io").BytesIO(data))
    with pytest.raises(ArchiveError, match="does not match its diff_id"):
        read_archive(tmp_path / "forged.tar")


@pytest.mark.parametrize(
    "reference",
    ["localhost/kfaas:3.11-0123abcd", "registry.example:5000/team/kfaas:v1.2_3", "kfaas:1"],
)
def test_references_of_the_form_name_tag_pass(reference: str) -> None:
    assert check_reference(reference) == reference


@pytest.mark.parametrize(
    "reference",
    [
        "localhost/kfaas",  # no tag: containerd would invent :latest
        "localhost/Kfaas:1",
        "localhost/kfaas:1\nRepoTags",
        "localhost/kfaas:1 ",
        "../kfaas:1",
        "localhost/kfaas@sha256:" + "0" * 64,
        "localhost/kfaas:-dash",
        "localhost/kfaas:" + "a" * 129,
        "a" * 252 + "/b:c",  # 256 characters
        "",
    ],
)
def test_other_references_are_refused(tmp_path: Path, reference: str) -> None:
    with pytest.raises(ArchiveError):
        check_reference(reference)
    with pytest.raises(ArchiveError):
        write_archive(tmp_path / "image.tar", [], ImageConfig(), reference)
    assert not (tmp_path / "image.tar").exists()


def test_buildah_reads_the_archive(tmp_path: Path) -> None:
    if shutil.which("buildah") is None or os.geteuid() != 0:
        pytest.skip("needs buildah and root")
    layer = write_layer(_rootfs(tmp_path / "root"), tmp_path / "layer.tar")
    image_id = write_archive(tmp_path / "image.tar", [layer], ImageConfig(), "localhost/hello:1")
    with scratch(tmp_path, tmp_path / "buildah.log") as buildah:
        buildah.pull(tmp_path / "image.tar")
        shown = buildah.command(
            "images", "--no-trunc", "--format", "{{.Name}}:{{.Tag}} {{.ID}}", output=True
        )
        assert shown.split() == ["localhost/hello:1", image_id]
        container = buildah.command("from", "--pull-never", "localhost/hello:1", output=True)
        mounted = Path(buildah.command("mount", container, output=True))
        assert (mounted / "etc" / "motd").read_text() == "kfaas\n"
        assert not (mounted / "dev" / "stray").exists()
        buildah.command("umount", container)


def test_the_debian_mirror_comes_from_apt_sources() -> None:
    deb822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
"""
    security = "Types: deb\nURIs: http://deb.debian.org/debian-security\n"
    one_line = "deb [signed-by=/k.gpg] https://mirror.example/debian/ bookworm main\n"
    other = "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
    assert debian.mirror_from_sources([other, security, deb822]) == "http://deb.debian.org/debian"
    assert debian.mirror_from_sources([one_line]) == "https://mirror.example/debian"
    assert debian.mirror_from_sources([other, security, "# deb http://x/debian b m\n"]) is None


def test_each_python_is_a_debian_release() -> None:
    assert debian.release_for("3.11").suite == "bookworm"
    assert debian.release_for("3.13").suite == "trixie"
    with pytest.raises(Exception, match=r"no Debian release packages Python '3\.12'"):
        debian.release_for("3.12")


def test_wheels_are_fetched_for_the_image_and_the_dockerfile_pins() -> None:
    tags = wheelhouse.platforms(36)
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux1_x86_64"} <= set(tags)
    pins = wheelhouse.pinned_tools(ROOT / "Dockerfile")
    assert sorted(pin.split("==")[0] for pin in pins) == ["pip", "setuptools", "wheel"]
    assert any(
        spec.startswith("setuptools") for spec in wheelhouse.requirements(ROOT / "pyproject.toml")
    )


def test_docker_build_sends_no_wheelhouse() -> None:
    """`docker build .` keeps installing from the index: the wheelhouse stays out of its context."""
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") :] and not any("wheelhouse" in line for line in ignored)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ARG WHEELHOUSE=""' in dockerfile
    assert dockerfile.count('${WHEELHOUSE:+--no-index --find-links "$WHEELHOUSE"}') == 2
    done = subprocess.run(
        [
            "sh",
            "-c",
            'WHEELHOUSE=""; echo pip ${WHEELHOUSE:+--no-index --find-links "$WHEELHOUSE"} .',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "pip .\n"


def test_builds_need_root_and_their_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not root, or a tool missing: MissingDependency (a skip, a failure under CI=true)."""
    release = debian.release_for("3.11")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(MissingDependency, match="needs root"):
        debian.bootstrap(release, tmp_path / "rootfs", tmp_path / "log")
    with pytest.raises(MissingDependency, match="need root"):
        require_buildah()
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependency, match="debootstrap is not installed"):
        debian.bootstrap(release, tmp_path / "rootfs", tmp_path / "log")
    with pytest.raises(MissingDependency, match="buildah is not installed"):
        require_buildah()
    assert not (tmp_path / "rootfs").exists()
