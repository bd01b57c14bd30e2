"""A small HTTP/1.1 server on asyncio's Protocol API, for the runtime's two listeners.

Why not aiohttp here: importing `aiohttp.web` costs ~150 ms on the reference machine, which alone
is over the cold-start budget (process start to first response ≤ 150 ms), and its per-request
machinery is a large share of the hot path. The runtime's listeners need little: keep-alive,
`Content-Length` and chunked request bodies, `Expect: 100-continue` (libcurl, which awslambdaric
uses, sends it for large bodies), a body cap that answers 413 instead of buffering, and header
blocks large enough for awslambdaric's X-Ray error-cause header (up to 1 MB). A handler still
running when its client goes away is cancelled.

A request must be exactly one well-formed HTTP/1.1 request (issue 8): heads are parsed by
`kfaas.wire` (no bare CR or LF, NUL, obs-fold or whitespace before a colon; a valid request line),
framing must be unambiguous (one plain-digit `Content-Length` or `Transfer-Encoding: chunked`,
never both; strict chunk sizes and line ends), and anything else is answered 400 and the
connection closed. One request is served at a time: bytes that arrive before its answer (a
pipelined or smuggled request) are not read, and the connection closes after that answer.
Responses are written through `kfaas.wire.encode_header`, which refuses CR, LF and NUL.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

from kfaas import wire

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
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:;[\t \x21-\x7e\x80-\xff]*)?")


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
        self._closing = False  # refused, or closing after the current answer: read nothing more
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._task is not None:
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._buffer += data
        try:
            self._parse()
        except (_BadRequest, wire.FramingError) as exc:
            self._fail(400, str(exc))

    def _fail(self, status: int, message: str) -> None:
        self._closing = True
        if self._transport is not None:
            if self._task is None:
                self._transport.write(_encode(Response(status, message.encode()), False))
                self._transport.close()
            else:
                # A request is being answered: that answer goes out, then the connection closes.
                self._keep_alive = False
        self._buffer.clear()

    def _parse(self) -> None:
        while self._transport is not None and not self._closing:
            if self._task is not None:
                if self._buffer:
                    # Bytes before the answer: a pipelined request at best, a smuggled one at
                    # worst. Not read; the connection closes once the current answer is out.
                    self._closing = True
                    self._keep_alive = False
                    self._buffer.clear()
                return
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
        start, fields = wire.parse_head(head)
        method, target, version = wire.parse_request_line(start)
        headers = dict(fields)
        length = wire.content_length(fields)
        path, _, query = target.partition("?")
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            self._keep_alive = connection == "keep-alive"
        else:
            self._keep_alive = connection != "close"
        self._request = Request(method, path, query, headers, b"")
        encodings = [value for name, value in fields if name == "transfer-encoding"]
        if encodings:
            if version == "HTTP/1.0" or len(encodings) > 1 or encodings[0].lower() != "chunked":
                raise _BadRequest("unsupported Transfer-Encoding")
            self._chunked_state = "size"
        else:
            self._remaining = length or 0
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
        """Consume body bytes; True when the request is complete and handed to the handler."""
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
        self._task = asyncio.get_running_loop().create_task(self._serve(request))
        return True

    def _read_chunks(self) -> bool:
        while True:
            if self._chunked_state in ("size", "crlf", "trailer"):
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEADER_BYTES:
                        raise _BadRequest("chunk line too long")
                    return False
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                if self._chunked_state == "crlf":
                    if line:
                        raise _BadRequest("chunk data longer than its size")
                    self._chunked_state = "size"
                elif self._chunked_state == "trailer":
                    if not line:
                        self._chunked_state = ""
                        return True
                    wire.parse_head(b"\r\n" + line)  # a trailer field, as strict as a header
                else:
                    match = _CHUNK_SIZE.fullmatch(line)
                    if match is None:
                        raise _BadRequest("bad chunk size")
                    self._remaining = int(match.group(1), 16)
                    self._chunked_state = "data" if self._remaining else "trailer"
            else:
                take = min(self._remaining, len(self._buffer))
                self._take_body(self._buffer[:take])
                del self._buffer[:take]
                self._remaining -= take
                if self._remaining:
                    return False
                self._chunked_state = "crlf"

    async def _serve(self, request: Request) -> None:
        try:
            try:
                response = await self._handler(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._on_error(exc)
                response = Response(500, b"internal error")
            if self._transport is None:
                return
            keep_alive = self._keep_alive and not self._closing
            try:
                data = _encode(response, keep_alive)
            except wire.HeaderError as exc:
                self._on_error(exc)
                keep_alive = False
                data = _encode(Response(500, b"internal error"), keep_alive)
            self._transport.write(data)
            if not keep_alive:
                self._closing = True
                self._transport.close()
        finally:
            self._task = None


def _encode(response: Response, keep_alive: bool) -> bytes:
    if not 200 <= response.status <= 599:
        raise wire.HeaderError(f"status {response.status} is not a final status")
    head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}\r\n".encode()]
    head.append(wire.encode_header("Content-Length", str(len(response.body))))
    head.extend(wire.encode_header(name, value) for name, value in response.headers.items())
    if not keep_alive:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    head.append(response.body)
    return b"".join(head)


async def serve(
    sock: socket.socket, handler: Handler, max_body: int, on_error: ErrorReporter
) -> asyncio.Server:
    """Serve `handler` on an already bound, listening socket."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HttpProtocol(handler, max_body, on_error), sock=sock)
