"""Names and entry types: nothing lands outside the folder, twice, or through a link."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from codestore.zips import make_zip, set_flags, symlink, unix_entry

from kfaas.code_archives import (
    InvalidArchive,
    UnsafeArchiveEntry,
    check_link,
    extract_archive,
    inspect_archive,
    normalise_name,
)


@pytest.fixture
def destination(tmp_path: Path) -> Path:
    """An empty folder with a sibling that an escaping entry would hit."""
    (tmp_path / "outside").mkdir()
    folder = tmp_path / "task"
    folder.mkdir()
    return folder


def untouched(destination: Path) -> bool:
    return not any(destination.iterdir()) and not any((destination.parent / "outside").iterdir())


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../x", "'..'"),
        ("../outside/x", "'..'"),
        ("a/../../x", "'..'"),
        ("a/../b", "'..'"),
        ("./../x", "'..'"),
        ("/etc/x", "absolute"),
        ("//etc/x", "absolute"),
        ("a\\..\\..\\x", "backslash"),
        ("./", "names no file"),
        ("a/" + "b" * 256, "over 255 bytes"),
    ],
)
def test_names_that_could_leave_the_folder_are_refused(
    name: str, why: str, destination: Path
) -> None:
    data = make_zip([("app.py", b"ok"), (name, b"x")])
    with pytest.raises(UnsafeArchiveEntry, match=why):
        inspect_archive(data)
    with pytest.raises(UnsafeArchiveEntry):
        extract_archive(data, destination)
    assert untouched(destination)


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("app.py", "app.py"),
        ("./a/b.py", "a/b.py"),
        ("a//b/", "a/b"),
        ("a/./b", "a/b"),
        ("C:/x", "C:/x"),  # a folder named "C:" on Linux, where the code runs
    ],
)
def test_harmless_spellings_are_normalised(name: str, normal: str) -> None:
    assert normalise_name(name) == normal


def test_duplicate_names_are_refused(destination: Path) -> None:
    for entries in (
        [("app.py", b"one"), ("app.py", b"two")],
        [("app.py", b"one"), ("./app.py", b"two")],
        [("lib", b"file"), ("lib/", b"")],
    ):
        with pytest.raises(UnsafeArchiveEntry, match="appears twice"):
            extract_archive(make_zip(entries), destination)
        assert untouched(destination)


def test_a_directory_listed_twice_is_harmless(destination: Path) -> None:
    extract_archive(make_zip([("lib/", b""), ("lib/", b""), ("lib/a.py", b"")]), destination)
    assert (destination / "lib" / "a.py").is_file()


def test_a_file_below_a_file_is_refused() -> None:
    with pytest.raises(UnsafeArchiveEntry, match=r"'lib/a\.py' lies below file 'lib'"):
        inspect_archive(make_zip([("lib", b"file"), ("lib/a.py", b"")]))


@pytest.mark.parametrize(
    ("mode", "what"),
    [
        (stat.S_IFCHR | 0o644, "character device"),
        (stat.S_IFBLK | 0o644, "block device"),
        (stat.S_IFIFO | 0o644, "FIFO"),
        (stat.S_IFSOCK | 0o644, "socket"),
    ],
)
def test_device_files_fifos_and_sockets_are_refused(
    mode: int, what: str, destination: Path
) -> None:
    data = make_zip([(unix_entry("dev/thing", mode), b"")])
    with pytest.raises(UnsafeArchiveEntry, match=f"'dev/thing': a {what}"):
        extract_archive(data, destination)
    assert untouched(destination)


def test_symlinks_inside_the_folder_are_kept(destination: Path) -> None:
    data = make_zip(
        [
            ("lib/pkg/tool.py", b"print(1)"),
            symlink("bin/tool", "../lib/pkg/tool.py"),
            symlink("current", "lib"),
            symlink("self", "."),
        ]
    )
    manifest = extract_archive(data, destination)
    assert [entry.kind for entry in manifest.entries] == ["file", "symlink", "symlink", "symlink"]
    assert (destination / "bin" / "tool").readlink() == Path("../lib/pkg/tool.py")
    assert (destination / "bin" / "tool").read_bytes() == b"print(1)"
    assert (destination / "current" / "pkg" / "tool.py").is_file()


@pytest.mark.parametrize(
    ("links", "why"),
    [
        ([("evil", "/etc/passwd")], "absolute"),
        ([("evil", "..")], "points outside"),
        ([("a/b/evil", "../../../outside")], "points outside"),
        ([("evil", "lib/../../outside")], "points outside"),
        ([("evil", "")], "empty"),
        # "up/.." is the folder lexically, but the kernel resolves it as the parent of "up"'s
        # target: "up" -> "lib/x/.." would be fine alone, "evil" -> "up/../.." is not.
        ([("up", "."), ("evil", "up/../x")], "through another symlink"),
        ([("deep", "a/b"), ("evil", "deep/../../..")], "through another symlink"),
    ],
)
def test_symlinks_pointing_out_are_refused(
    links: list[tuple[str, str]], why: str, destination: Path
) -> None:
    data = make_zip([("app.py", b"ok"), *(symlink(name, target) for name, target in links)])
    with pytest.raises(UnsafeArchiveEntry, match=why):
        extract_archive(data, destination)
    assert untouched(destination)


def test_nothing_is_written_through_a_symlink(destination: Path) -> None:
    data = make_zip([symlink("lib", "."), ("lib/app.py", b"x")])
    with pytest.raises(UnsafeArchiveEntry, match=r"'lib/app\.py' lies below symlink 'lib'"):
        extract_archive(data, destination)
    outward = make_zip([symlink("out", "../outside"), ("out/x", b"x")])
    with pytest.raises(UnsafeArchiveEntry):
        extract_archive(outward, destination)
    assert untouched(destination)


def test_a_link_to_a_link_is_resolved_by_each_links_own_check() -> None:
    check_link("b", "a", {"a", "b"})  # the last component may be a link
    with pytest.raises(UnsafeArchiveEntry, match="through another symlink"):
        check_link("c", "a/x", {"a", "c"})


def test_a_symlink_target_over_path_max_is_refused() -> None:
    with pytest.raises(UnsafeArchiveEntry, match="target over 4095 bytes"):
        inspect_archive(make_zip([symlink("long", "a/" * 2048)]))


def test_modes_keep_the_executable_bit_and_drop_the_rest(destination: Path) -> None:
    data = make_zip(
        [
            (unix_entry("bootstrap", stat.S_IFREG | 0o4777), b"#!/bin/sh\n"),
            (unix_entry("app.py", stat.S_IFREG | 0o666), b""),
        ]
    )
    extract_archive(data, destination)
    assert stat.S_IMODE((destination / "bootstrap").stat().st_mode) & 0o7022 == 0
    assert (destination / "bootstrap").stat().st_mode & 0o111 == 0o111
    assert stat.S_IMODE((destination / "app.py").stat().st_mode) & 0o133 == 0


def test_encrypted_entries_are_refused() -> None:
    data = set_flags(make_zip([("secret.py", b"x")]), "secret.py", 0x1)
    with pytest.raises(InvalidArchive, match=r"'secret\.py' is encrypted"):
        inspect_archive(data)


def test_the_folder_must_be_empty(destination: Path) -> None:
    (destination / "left-over").write_text("x")
    with pytest.raises(ValueError, match="is not empty"):
        extract_archive(make_zip([("app.py", b"")]), destination)
