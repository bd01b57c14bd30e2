"""Zips that do not unzip, and the happy path: what comes out is what went in, digest included."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from codestore.zips import data_offset, make_zip, set_method

from kfaas.code_archives import InvalidArchive, extract_archive, inspect_archive, verify_archive
from kfaas.code_digests import CodeDigest

HANDLER = b"def handler(event, context):\n    return {'ok': True}\n"


def test_a_zip_unpacks_to_its_files(tmp_path: Path) -> None:
    data = make_zip([("app.py", HANDLER), ("pkg/__init__.py", b""), ("pkg/data.bin", bytes(255))])
    manifest = extract_archive(io.BytesIO(data), tmp_path)
    assert (tmp_path / "app.py").read_bytes() == HANDLER
    assert (tmp_path / "pkg" / "data.bin").read_bytes() == bytes(255)
    assert [entry.path for entry in manifest.entries] == [
        "app.py",
        "pkg/__init__.py",
        "pkg/data.bin",
    ]
    assert manifest.zipped_size == len(data)
    assert manifest.unzipped_size == len(HANDLER) + 255
    assert manifest.digest == CodeDigest(hashlib.sha256(data).hexdigest())
    assert inspect_archive(data) == manifest


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_every_method_zipfile_reads_is_taken(method: int, tmp_path: Path) -> None:
    extract_archive(make_zip([("app.py", HANDLER)], method=method), tmp_path)
    assert (tmp_path / "app.py").read_bytes() == HANDLER


@pytest.mark.parametrize(
    "data",
    [b"", b"not a zip at all", b"PK\x03\x04" + bytes(100), b"PK\x05\x06" + bytes(18)[:10]],
    ids=["empty", "text", "local-header-only", "cut-end-record"],
)
def test_what_is_not_a_zip_is_refused(data: bytes, tmp_path: Path) -> None:
    with pytest.raises(InvalidArchive, match="could not unzip"):
        inspect_archive(data)
    with pytest.raises(InvalidArchive):
        extract_archive(data, tmp_path)


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.9, 0.99])
def test_a_truncated_zip_is_refused(keep: float, tmp_path: Path) -> None:
    data = make_zip([("app.py", HANDLER * 50), ("lib.py", HANDLER)])
    with pytest.raises(InvalidArchive, match="could not unzip"):
        extract_archive(data[: int(len(data) * keep)], tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_corrupt_data_is_refused_while_unpacking_and_leaves_nothing(
    method: int, tmp_path: Path
) -> None:
    data = bytearray(make_zip([("first.py", HANDLER), ("app.py", HANDLER * 50)], method=method))
    data[data_offset(bytes(data), "app.py") + 20] ^= 0xFF
    # The central directory is intact: only unpacking finds the damage (a CRC or inflate error).
    inspect_archive(bytes(data))
    with pytest.raises(InvalidArchive, match="could not unzip"):
        verify_archive(bytes(data))
    with pytest.raises(InvalidArchive, match="could not unzip"):
        extract_archive(bytes(data), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_compression_method_is_refused(tmp_path: Path) -> None:
    data = set_method(make_zip([("app.py", HANDLER)]), "app.py", 99)
    with pytest.raises(InvalidArchive, match="could not unzip"):
        verify_archive(data)
    with pytest.raises(InvalidArchive, match="could not unzip"):
        extract_archive(data, tmp_path)
    assert list(tmp_path.iterdir()) == []
