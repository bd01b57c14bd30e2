"""A raw-socket HTTP/1.1 client for hostile requests: sends bytes as given, reads what comes back.

HTTP libraries refuse to send what the fuzz and abuse suites need to send (CR/LF in values,
conflicting framing, a request line of garbage), and they hide what the server answered (a close,
a garbled status line, a second response nobody asked for). This client writes the bytes, half-
closes after a malformed request so the server sees where it ends, and reads exactly one answer:
interim 1xx answers are skipped, the body is delimited by ``Content-Length``, chunks or the close.
Connections are kept alive for the next request when both sides allow it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

READ_LIMIT = 16 * 1024 * 1024


@dataclass
class Answer:
    outcome: str  # "answered" | "closed" (no answer) | "timeout" | "garbled"
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    reusable: bool = False
    detail: str = ""


class Garbled(Exception):
    pass


async def read_answer(reader: asyncio.StreamReader, head: bool) -> Answer:
    """One response: raises ``asyncio.IncompleteReadError`` if the peer closes before its end."""
    while True:
        block = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = block[:-4].split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if (
            version not in (b"HTTP/1.1", b"HTTP/1.0")
            or not code.isdigit()
            or rest[3:4]
            not in (
                b"",
                b" ",
            )
        ):
            raise Garbled(f"status line {status_line[:100]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise Garbled(f"header line {line[:100]!r}")
            headers[name.decode("latin-1").lower()] = value.strip().decode("latin-1")
        if 100 <= status < 200 and status != 101:
            continue
        break
    keep = version == b"HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if head or status in (101, 204, 304):
        body = b""
        keep = keep and status != 101
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunks(reader)
    elif "content-length" in headers:
        length = headers["content-length"]
        if not length.isdigit():
            raise Garbled(f"content-length {length!r}")
        body = await reader.readexactly(int(length))
    else:
        body = await reader.read()
        keep = False
    return Answer("answered", status, headers, body, reusable=keep)


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = (await reader.readuntil(b"\r\n"))[:-2].split(b";", 1)[0]
        try:
            size = int(size_line, 16)
        except ValueError as exc:
            raise Garbled(f"chunk size {size_line[:40]!r}") from exc
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class Connection:
    """One client connection to ``host:port``, opened on demand and reopened after a close."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.opened = 0

    async def exchange(
        self,
        data: bytes,
        *,
        head: bool = False,
        half_close: bool = False,
        answer_within: float = 30.0,
    ) -> Answer:
        """Send ``data`` and read one answer; a kept-alive connection the server had closed
        before reading anything is retried once on a new one."""
        reused = self.writer is not None
        answer = await self._exchange(data, head, half_close, answer_within)
        if reused and answer.outcome == "closed" and not half_close:
            answer = await self._exchange(data, head, half_close, answer_within)
        if not answer.reusable or half_close:
            await self.close()
        return answer

    async def _exchange(
        self, data: bytes, head: bool, half_close: bool, answer_within: float
    ) -> Answer:
        try:
            async with asyncio.timeout(answer_within):
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(
                        self.host, self.port, limit=READ_LIMIT
                    )
                    self.opened += 1
                assert self.reader is not None
                writer = self.writer
                writer.write(data)
                with contextlib.suppress(OSError):
                    # The server may answer (413, 400) and close before reading everything.
                    await writer.drain()
                    if half_close and writer.can_write_eof():
                        writer.write_eof()
                return await read_answer(self.reader, head)
        except TimeoutError:
            await self.close()
            return Answer("timeout", detail=f"no answer within {answer_within}s")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            partial = getattr(exc, "partial", b"")
            if partial:
                return Answer("garbled", detail=f"closed mid-answer after {partial[:100]!r}")
            return Answer("closed", detail=type(exc).__name__)
        except (Garbled, asyncio.LimitOverrunError, ValueError) as exc:
            await self.close()
            return Answer("garbled", detail=str(exc))
        except asyncio.CancelledError:
            if self.writer is not None:
                self.writer.close()
            self.reader = self.writer = None
            raise

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
