"""Function logs in Lambda's shape, and the runtime's own events as JSON lines.

Everything goes to the runtime's stdout, where a pod's log collector or `kfaas dev` picks it up.
Three kinds of line share that stream and are told apart by their first characters:

- `START RequestId: …`, `END RequestId: …`, `REPORT RequestId: …` — Lambda's platform lines;
- `<request id>\\t<text>` — one line the function wrote (`init\\t<text>` while it initialises), the
  raw text kept readable after the tab;
- `{"time": …, "event": …}` — one JSON object per runtime event (worker restarts, faults).

`Tail` keeps the last 4 KB of one invocation's log (platform lines included, untagged, as Lambda
returns it in `X-Amz-Log-Result`), and `LineBuffer` cuts a worker's pipe into lines without letting
one enormous line grow without bound.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from typing import Any, BinaryIO

TAIL_BYTES = 4096
MAX_LINE_BYTES = 64 * 1024


class Tail:
    """The last `TAIL_BYTES` of an invocation's log, trimmed lazily so appends stay cheap."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data = bytearray()

    def append(self, data: bytes) -> None:
        self._data += data
        if len(self._data) > 4 * TAIL_BYTES:
            del self._data[:-TAIL_BYTES]

    def value(self) -> bytes:
        return bytes(self._data[-TAIL_BYTES:])


class LineBuffer:
    """Cuts a byte stream into lines; a line longer than `MAX_LINE_BYTES` is cut into pieces."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        lines: list[bytes] = []
        start = 0
        while True:
            end = self._pending.find(b"\n", start)
            if end < 0:
                break
            lines.append(bytes(self._pending[start:end]))
            start = end + 1
        del self._pending[:start]
        while len(self._pending) > MAX_LINE_BYTES:
            lines.append(bytes(self._pending[:MAX_LINE_BYTES]))
            del self._pending[:MAX_LINE_BYTES]
        return lines

    def flush(self) -> list[bytes]:
        """The unterminated rest, as a line of its own (at the end of an invocation)."""
        if not self._pending:
            return []
        line = bytes(self._pending)
        self._pending.clear()
        return [line]


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def report_line(
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float | None,
) -> str:
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {max(math.ceil(duration_ms), 1)} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {max_memory_used_mb} MB",
    ]
    if init_duration_ms is not None:
        parts.append(f"Init Duration: {init_duration_ms:.2f} ms")
    return "\t".join(parts)


class LogSink:
    """The runtime's stdout. Writes are buffered and flushed once per batch of lines."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer

    def platform(self, line: str) -> None:
        self._stream.write(line.encode() + b"\n")

    def function(self, tag: str, line: bytes) -> None:
        self._stream.write(tag.encode() + b"\t" + line + b"\n")

    def event(self, event: str, level: str = "info", **fields: Any) -> None:
        record = {"time": _timestamp(), "level": level, "logger": "kfaas.runtime", "event": event}
        record.update(fields)
        self._stream.write(json.dumps(record, default=str).encode() + b"\n")
        self.flush()

    def flush(self) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):  # nobody reads our stdout
            self._stream.flush()


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
