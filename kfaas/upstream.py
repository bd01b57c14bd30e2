"""A lean HTTP/1.1 client for the requests made on every invocation.

``POST /invoke`` to a runtime instance is the gateway's hot path, and the Invoke API call to the
gateway is the pollers'. aiohttp's client spent more time per request than the rest of the gateway
together (cProfile under ``bench/invoke.py``), so this module keeps a pool of keep-alive
connections per host and speaks just what those calls need: a request with ``Content-Length``, a
response with ``Content-Length``. A reused connection that breaks before any response byte arrived
is retried once on a fresh one: servers close only idle kept-alive connections, so a break then
means the request was not taken.

Pooled connections are shared by every caller, so one caller's request must never decide what the
next one reads (issue 8). Heads are written by ``kfaas.wire`` (which refuses CR, LF and NUL) and
read back strictly; a connection is closed, never reused, as soon as its state is in doubt: bytes
nobody asked for (after a complete response, or while no request is outstanding), a response that
is not framed by exactly one ``Content-Length``, ``Connection: close``, an error or a cancellation.
The gateway also names the request id it sent, and a response carrying another id is refused.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from kfaas import wire

MAX_HEAD_BYTES = 1024 * 1024
REQUEST_ID_HEADER = "lambda-runtime-aws-request-id"
# Framing is this module's business; a caller naming these would write a second, conflicting one.
_RESERVED = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class UpstreamError(Exception):
    """The instance could not be reached or answered something that is not HTTP/1.1."""


class UpstreamUnreachable(UpstreamError):
    """No connection could be made: nothing was sent, so the request may go elsewhere."""


@dataclass
class UpstreamResponse:
    status: int
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._head: _Head | None = None
        self._request_id: str | None = None
        self.received_any = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, so no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(UpstreamError(f"connection closed: {exc or 'by peer'}"))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Nobody asked for these bytes: whatever they answer, no caller may read them.
            self.close()
            return
        self.received_any = True
        self._buffer += data
        try:
            self._parse()
        except UpstreamError as exc:
            if not self._waiter.done():
                self._waiter.set_exception(exc)
            self.close()

    def _parse(self) -> None:
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise UpstreamError("response head too large")
                return
            self._head = _parse_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
        head = self._head
        if len(self._buffer) < head.length:
            return
        if len(self._buffer) > head.length:
            raise UpstreamError("bytes after the response: the connection is out of step")
        body = bytes(self._buffer)
        self._buffer.clear()
        self._head = None
        if not head.keep_alive:
            self.close()
        if self._request_id is not None:
            answered = head.headers.get(REQUEST_ID_HEADER)
            if answered != self._request_id and (answered is not None or head.status < 300):
                # Not quoted: the caller must not learn another request's id either.
                raise UpstreamError(
                    f"the response to request {self._request_id} carries another request id: "
                    "the connection is out of step"
                )
        assert self._waiter is not None
        self._waiter.set_result(UpstreamResponse(head.status, head.headers, body))

    def request(self, data: bytes, request_id: str | None) -> asyncio.Future[UpstreamResponse]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._request_id = request_id
        self.received_any = False
        self.transport.write(data)
        return self._waiter

    @property
    def reusable(self) -> bool:
        return not self.closed and self._head is None and not self._buffer

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass(slots=True)
class _Head:
    status: int
    headers: dict[str, str]
    length: int
    keep_alive: bool


def _parse_head(head: bytes) -> _Head:
    try:
        start, fields = wire.parse_head(head)
        status, http11 = wire.parse_status_line(start)
        length = wire.content_length(fields)
    except wire.FramingError as exc:
        raise UpstreamError(f"malformed response: {exc}") from exc
    headers = dict(fields)
    if "transfer-encoding" in headers:
        raise UpstreamError("Transfer-Encoding in a response: only Content-Length is spoken here")
    if status < 200:
        raise UpstreamError(f"interim response {status} to a request that did not ask for one")
    if length is None:
        if status not in (204, 304):
            raise UpstreamError(f"response {status} without Content-Length")
        length = 0
    tokens = headers.get("connection", "").lower()
    keep_alive = "close" not in tokens if http11 else "keep-alive" in tokens
    return _Head(status, headers, length, keep_alive)


class UpstreamPool:
    """Keep-alive connections per ``host:port``; one request at a time on each connection."""

    def __init__(self, max_idle_per_host: int = 64) -> None:
        self.max_idle_per_host = max_idle_per_host
        self._idle: dict[tuple[str, int], collections.deque[_Connection]] = {}

    async def post(
        self,
        host: str,
        port: int,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        request_id: str | None = None,
    ) -> UpstreamResponse:
        """POST ``body``; ``request_id``, when given, must be the id the response carries.

        ``wire.HeaderError`` (nothing sent) when a header cannot be written as it is.
        """
        framing = {"Host": f"{host}:{port}", "Content-Length": str(len(body))}
        for name in headers:
            if name.lower() in _RESERVED:
                raise wire.HeaderError(f"{name} is set by the client itself")
        data = wire.encode_request_head("POST", path, {**framing, **headers}) + body
        for attempt in (1, 2):
            connection, reused = await self._connection(host, port)
            try:
                response = await connection.request(data, request_id)
            except UpstreamError:
                connection.close()
                if reused and not connection.received_any and attempt == 1:
                    continue
                raise
            except BaseException:
                connection.close()  # cancelled mid-request: the connection's state is unknown
                raise
            self._release(host, port, connection)
            return response
        raise AssertionError("unreachable")

    async def _connection(self, host: str, port: int) -> tuple[_Connection, bool]:
        idle = self._idle.get((host, port))
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection, True
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(_Connection, host, port)
        except OSError as exc:
            raise UpstreamUnreachable(f"cannot connect to {host}:{port}: {exc}") from exc
        return connection, False

    def _release(self, host: str, port: int, connection: _Connection) -> None:
        if not connection.reusable:
            connection.close()
            return
        idle = self._idle.setdefault((host, port), collections.deque())
        if len(idle) >= self.max_idle_per_host:
            connection.close()
        else:
            idle.append(connection)

    def forget(self, host: str, port: int) -> None:
        """Close the idle connections of an instance that went away."""
        for connection in self._idle.pop((host, port), ()):
            connection.close()

    def close(self) -> None:
        for key in list(self._idle):
            self.forget(*key)
