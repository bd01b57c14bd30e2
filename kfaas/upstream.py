"""A lean HTTP/1.1 client for the requests made on every invocation.

``POST /invoke`` to a runtime instance is the gateway's hot path, and the Invoke API call to the
gateway is the pollers'. aiohttp's client spent more time per request than the rest of the gateway
together (cProfile under ``bench/invoke.py``), so this module keeps a pool of keep-alive
connections per host and speaks just what those calls need: a request with ``Content-Length``, a
response with ``Content-Length``. A reused connection that breaks before any response byte arrived
is retried once on a fresh one: servers close only idle kept-alive connections, so a break then
means the request was not taken.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast


class UpstreamError(Exception):
    """The instance could not be reached or answered something that is not HTTP/1.1."""


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
        self._head: tuple[int, dict[str, str], int] | None = None
        self.received_any = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, so no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(UpstreamError(f"connection closed: {exc or 'by peer'}"))

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        self._buffer += data
        try:
            self._parse()
        except UpstreamError as exc:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(exc)
            self.close()

    def _parse(self) -> None:
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._head = _parse_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
        status, headers, length = self._head
        if len(self._buffer) < length:
            return
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._head = None
        if headers.get("connection", "").lower() == "close":
            self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(UpstreamResponse(status, headers, body))

    def request(self, data: bytes) -> asyncio.Future[UpstreamResponse]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.received_any = False
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _parse_head(head: bytes) -> tuple[int, dict[str, str], int]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise UpstreamError(f"not an HTTP/1.1 response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    try:
        return int(parts[1]), headers, int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise UpstreamError(f"malformed response head: {exc}") from exc


class UpstreamPool:
    """Keep-alive connections per ``host:port``; one request at a time on each connection."""

    def __init__(self, max_idle_per_host: int = 64) -> None:
        self.max_idle_per_host = max_idle_per_host
        self._idle: dict[tuple[str, int], collections.deque[_Connection]] = {}

    async def post(
        self, host: str, port: int, path: str, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamResponse:
        head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
        head.extend(f"{name}: {value}" for name, value in headers.items())
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (1, 2):
            connection, reused = await self._connection(host, port)
            try:
                response = await connection.request(data)
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
            raise UpstreamError(f"cannot connect to {host}:{port}: {exc}") from exc
        return connection, False

    def _release(self, host: str, port: int, connection: _Connection) -> None:
        if connection.closed:
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
