"""Length-prefixed frames for the private pipe between the runtime server and a Python worker.

The default Python bootstrap does not need HTTP to learn its next event: a pipe pair with frames of
`(JSON metadata, raw body)` costs two syscalls per direction and no parsing of headers. A frame is
`!II` (metadata length, body length), then the metadata as UTF-8 JSON, then the body bytes. The
Runtime API stays available for every other bootstrap (`runtime.py`).
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

_HEADER = struct.Struct("!II")


def encode(meta: dict[str, Any], body: bytes = b"") -> bytes:
    raw = json.dumps(meta, separators=(",", ":")).encode()
    return _HEADER.pack(len(raw), len(body)) + raw + body


class FrameDecoder:
    """Incremental decoding for a non-blocking reader: feed bytes, get whole frames back."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        self._buffer += data
        frames: list[tuple[dict[str, Any], bytes]] = []
        while len(self._buffer) >= _HEADER.size:
            meta_len, body_len = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + meta_len + body_len
            if len(self._buffer) < end:
                break
            meta = json.loads(bytes(self._buffer[_HEADER.size : _HEADER.size + meta_len]))
            frames.append((meta, bytes(self._buffer[_HEADER.size + meta_len : end])))
            del self._buffer[:end]
        return frames


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> tuple[dict[str, Any], bytes] | None:
    """Blocking read of one frame; None when the other end has gone."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    meta_len, body_len = _HEADER.unpack(header)
    payload = _read_exactly(fd, meta_len + body_len) if meta_len + body_len else b""
    if payload is None:
        return None
    meta: dict[str, Any] = json.loads(payload[:meta_len])
    return meta, payload[meta_len:]


def write_frame(fd: int, meta: dict[str, Any], body: bytes = b"") -> None:
    data = memoryview(encode(meta, body))
    while data:
        written = os.write(fd, data)
        data = data[written:]
