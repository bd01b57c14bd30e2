"""Zips for the code store's tests, honest and hostile, built in memory with zipfile and struct.

zipfile refuses to write most of what an attacker sends (sizes that lie, unknown methods), so the
hostile forms are honest zips patched in place: the offsets are those of PKWARE's APPNOTE
(local header: method at 8, uncompressed size at 22; central record: method at 10,
uncompressed size at 24, name length at 28, name at 46).
"""

from __future__ import annotations

import io
import stat
import struct
import warnings
import zipfile
from collections.abc import Iterable


def make_zip(
    entries: Iterable[tuple[str | zipfile.ZipInfo, bytes | str]],
    *,
    method: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """A zip of ``(name or ZipInfo, content)`` pairs; duplicate names are written as given."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns on duplicate names
        with zipfile.ZipFile(buffer, "w", method) as bundle:
            for name, content in entries:
                bundle.writestr(name, content)
    return buffer.getvalue()


def unix_entry(name: str, mode: int) -> zipfile.ZipInfo:
    """An entry with Unix file type and permission bits, as Info-ZIP writes them."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    return unix_entry(name, stat.S_IFLNK | 0o777), target.encode()


def zeros_zip(name: str, size: int, *, level: int = 9) -> bytes:
    """One deflated entry of ``size`` zero bytes: a few hundred bytes per MiB."""
    buffer = io.BytesIO()
    chunk, left = bytes(1 << 20), size
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as bundle,
        bundle.open(name, "w") as target,
    ):
        while left:
            piece = chunk[: min(left, len(chunk))]
            target.write(piece)
            left -= len(piece)
    return buffer.getvalue()


def _central_record(data: bytes, name: str) -> int:
    end = data.rfind(b"PK\x05\x06")
    position = struct.unpack_from("<I", data, end + 16)[0]
    encoded = name.encode()
    while data[position : position + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        if data[position + 46 : position + 46 + name_length] == encoded:
            return int(position)
        position += 46 + name_length + extra_length + comment_length
    raise KeyError(name)


def _local_header(data: bytes, name: str) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        return int(bundle.getinfo(name).header_offset)


def lie_about_size(data: bytes, name: str, declared: int) -> bytes:
    """The same zip with ``name``'s uncompressed size claimed as ``declared`` in both headers."""
    patched = bytearray(data)
    struct.pack_into("<I", patched, _local_header(data, name) + 22, declared)
    struct.pack_into("<I", patched, _central_record(data, name) + 24, declared)
    return bytes(patched)


def set_method(data: bytes, name: str, method: int) -> bytes:
    """The same zip claiming compression method ``method`` for ``name``."""
    patched = bytearray(data)
    struct.pack_into("<H", patched, _local_header(data, name) + 8, method)
    struct.pack_into("<H", patched, _central_record(data, name) + 10, method)
    return bytes(patched)


def data_offset(data: bytes, name: str) -> int:
    """Where ``name``'s (compressed) bytes start."""
    header = _local_header(data, name)
    name_length, extra_length = struct.unpack_from("<HH", data, header + 26)
    return header + 30 + int(name_length) + int(extra_length)


def set_flags(data: bytes, name: str, flags: int) -> bytes:
    """The same zip with ``name``'s general purpose flags (bit 0: encrypted) set to ``flags``."""
    patched = bytearray(data)
    struct.pack_into("<H", patched, _local_header(data, name) + 6, flags)
    struct.pack_into("<H", patched, _central_record(data, name) + 8, flags)
    return bytes(patched)
