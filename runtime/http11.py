"""A small HTTP/1.1 server on asyncio's Protocol API, for the runtime's two listeners.

Why not aiohttp here: importing `aiohttp.web` costs ~150 ms on the reference machine, which alone
is over the cold-start budget (process start to first response ≤ 150 ms), and its per-request
machinery is a large share of the hot path. The runtime's listeners need little: keep-alive,
`Content-Length` and chunked request bodies, `Expect: 100-continue` (libcurl, which awslambdaric
uses, sends it for large bodies), a body cap that answers 413 instead of buffering, and header
blocks large enough for awslambdaric's X-Ray error-cause header (up to 1 MB). Requests on one
connection are answered in order; a handler still running when its client goes away is cancelled.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

MAX_HEADER_BYTES = 2 * 1024 * 1024


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes
    body_too_large: bool = False


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]
ErrorReporter = Callable[[BaseException], None]

_REASONS = {status.value: status.phrase for status in HTTPStatus}


class _BadRequest(Exception):
    pass


class HttpProtocol(asyncio.Protocol):
    def __init__(self, handler: Handler, max_body: int, on_error: ErrorReporter) -> None:
        self._handler = handler
        self._max_body = max_body
        self._on_error = on_error
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._request: Request | None = None  # the one whose body is being read
        self._remaining = 0  # body bytes still to read (Content-Length), or of the current chunk
        self._chunked_state = ""  # "" (not chunked) | "size" | "data" | "crlf" | "trailer"
        self._keep_alive = True
        self._queue: deque[tuple[Request, bool]] = deque()
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._task is not None:
            self._task.cancel()
        self._queue.clear()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
        except _BadRequest as exc:
            self._fail(400, str(exc))

    def _fail(self, status: int, message: str) -> None:
        if self._transport is not None:
            self._transport.write(_encode(Response(status, message.encode()), keep_alive=False))
            self._transport.close()
        self._buffer.clear()

    def _parse(self) -> None:
        while self._transport is not None:
            if self._request is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEADER_BYTES:
                        raise _BadRequest("header block too large")
                    return
                self._start_request(bytes(self._buffer[:end]))
                del self._buffer[: end + 4]
            elif not self._read_body():
                return

    def _start_request(self, head: bytes) -> None:
        lines = head.decode("utf-8", "surrogateescape").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            raise _BadRequest("malformed request line") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest("malformed header line")
            headers[name.strip().lower()] = value.strip()
        path, _, query = target.partition("?")
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            self._keep_alive = connection == "keep-alive"
        else:
            self._keep_alive = connection != "close"
        self._request = Request(method, path, query, headers, b"")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked_state = "size"
        else:
            try:
                self._remaining = int(headers.get("content-length") or 0)
            except ValueError:
                raise _BadRequest("bad Content-Length") from None
        has_body = self._chunked_state or self._remaining
        if has_body and headers.get("expect", "").lower() == "100-continue":
            assert self._transport is not None
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _take_body(self, data: bytes | bytearray) -> None:
        request = self._request
        assert request is not None
        if request.body_too_large:
            return
        if len(request.body) + len(data) > self._max_body:
            request.body_too_large = True
            request.body = b""  # the rest is read and dropped; the handler answers 413
        else:
            request.body += data

    def _read_body(self) -> bool:
        """Consume body bytes; True when the request is complete and queued."""
        if self._chunked_state:
            if not self._read_chunks():
                return False
        else:
            take = min(self._remaining, len(self._buffer))
            if take:
                self._take_body(self._buffer[:take])
                del self._buffer[:take]
                self._remaining -= take
            if self._remaining:
                return False
        request, self._request = self._request, None
        assert request is not None
        self._queue.append((request, self._keep_alive))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve())
        return True

    def _read_chunks(self) -> bool:
        while True:
            if self._chunked_state in ("size", "crlf", "trailer"):
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    return False
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                if self._chunked_state == "crlf":
                    self._chunked_state = "size"
                elif self._chunked_state == "trailer":
                    if not line:
                        self._chunked_state = ""
                        return True
                else:
                    try:
                        self._remaining = int(line.split(b";", 1)[0], 16)
                    except ValueError:
                        raise _BadRequest("bad chunk size") from None
                    self._chunked_state = "data" if self._remaining else "trailer"
            else:
                take = min(self._remaining, len(self._buffer))
                self._take_body(self._buffer[:take])
                del self._buffer[:take]
                self._remaining -= take
                if self._remaining:
                    return False
                self._chunked_state = "crlf"

    async def _serve(self) -> None:
        try:
            while self._queue:
                request, keep_alive = self._queue.popleft()
                try:
                    response = await self._handler(request)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._on_error(exc)
                    response = Response(500, b"internal error")
                if self._transport is None:
                    return
                self._transport.write(_encode(response, keep_alive))
                if not keep_alive:
                    self._transport.close()
                    return
        finally:
            self._task = None


def _encode(response: Response, keep_alive: bool) -> bytes:
    head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}"]
    head.append(f"Content-Length: {len(response.body)}")
    head.extend(f"{name}: {value}" for name, value in response.headers.items())
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "surrogateescape") + response.body


async def serve(
    sock: socket.socket, handler: Handler, max_body: int, on_error: ErrorReporter
) -> asyncio.Server:
    """Serve `handler` on an already bound, listening socket."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HttpProtocol(handler, max_body, on_error), sock=sock)
