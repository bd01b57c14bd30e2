"""No request can change the framing of another (issue 8, point 1; points 3's 4xx for clients).

Three layers, each tested against the real thing: the runtime's HTTP/1.1 server (real sockets) that
must refuse anything but exactly one well-formed request; the upstream client (against scripted
servers that misbehave as a compromised or confused peer would) that must never hand one caller's
answer to another; and ``kfaas dev`` as a subprocess, where many callers each check that their own
payload and request id come back while hostile requests run alongside through every header the
gateway forwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kfaas import wire
from kfaas.runtime import http11
from kfaas.upstream import UpstreamError, UpstreamPool

FUNCTIONS = Path(__file__).parent / "framing_functions"
INVOKE = "/2015-03-31/functions/echo-id/invocations"

# -- the runtime's HTTP/1.1 server -------------------------------------------------------------


@dataclass
class Runtime:
    port: int
    seen: list[http11.Request] = field(default_factory=list)

    async def exchange(self, data: bytes, wait: float = 5.0) -> bytes:
        """Send raw bytes, read until the server closes (or ``wait`` passes)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(data)
        received = bytearray()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                while chunk := await reader.read(65536):
                    received += chunk
        writer.close()
        return bytes(received)


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    state = Runtime(sock.getsockname()[1])

    async def handler(request: http11.Request) -> http11.Response:
        state.seen.append(request)
        await asyncio.sleep(0.01)  # an answer takes a moment, as an invocation does
        return http11.Response(200, request.body, {"X-Path": request.path})

    server = await http11.serve(sock, handler, 1024 * 1024, lambda exc: None)
    yield state
    server.close()
    await server.wait_closed()


def request(head: bytes, body: bytes = b"") -> bytes:
    return b"POST /invoke HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + body


HOSTILE_REQUESTS = {
    "bare LF in a header": request(b"A: 1\nContent-Length: 0\r\n"),
    "bare CR in a header": request(b"A: 1\rB: 2\r\n"),
    "NUL in a value": request(b"A: x\0y\r\n"),
    "obs-fold": request(b"A: 1\r\n 2\r\n"),
    "whitespace before colon": request(b"Content-Length : 5\r\n", b"hello"),
    "both CL and TE": request(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    "duplicate CL": request(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
    "conflicting CL": request(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
    "signed CL": request(b"Content-Length: +5\r\n", b"hello"),
    "hex CL": request(b"Content-Length: 0x5\r\n", b"hello"),
    "CL list": request(b"Content-Length: 5, 5\r\n", b"hello"),
    "TE not chunked": request(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
    "TE twice": request(
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"
    ),
    "chunk size with prefix": request(
        b"Transfer-Encoding: chunked\r\n", b"0x5\r\nhello\r\n0\r\n\r\n"
    ),
    "chunk size signed": request(b"Transfer-Encoding: chunked\r\n", b"+5\r\nhello\r\n0\r\n\r\n"),
    "chunk size underscore": request(
        b"Transfer-Encoding: chunked\r\n", b"0_5\r\nhello\r\n0\r\n\r\n"
    ),
    "chunk longer than size": request(
        b"Transfer-Encoding: chunked\r\n", b"3\r\nhello\r\n0\r\n\r\n"
    ),
    "chunk size bare LF": request(b"Transfer-Encoding: chunked\r\n", b"5\nhello\r\n0\r\n\r\n"),
    "method not a token": b"PO(ST /invoke HTTP/1.1\r\nHost: x\r\n\r\n",
    "two spaces": b"POST  /invoke HTTP/1.1\r\nHost: x\r\n\r\n",
    "absolute target": b"POST http://x/invoke HTTP/1.1\r\nHost: x\r\n\r\n",
    "version": b"POST /invoke HTTP/1.2\r\nHost: x\r\n\r\n",
    "space in target": b"POST /in voke HTTP/1.1\r\nHost: x\r\n\r\n",
    "leading empty line": b"\r\nPOST /invoke HTTP/1.1\r\nHost: x\r\n\r\n",
    "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
}


@pytest.mark.parametrize("data", HOSTILE_REQUESTS.values(), ids=HOSTILE_REQUESTS.keys())
async def test_runtime_refuses_anything_but_one_well_formed_request(
    runtime: Runtime, data: bytes
) -> None:
    answer = await runtime.exchange(data)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert answer.count(b"\r\n\r\n") == 1  # one answer; its body quotes the request escaped
    assert b"Connection: close\r\n" in answer
    assert runtime.seen == []


async def test_runtime_serves_one_request_per_answer(runtime: Runtime) -> None:
    """A second request written before the first is answered (pipelined or smuggled) is never
    served: one answer, then the connection closes."""
    first = request(b"Content-Length: 5\r\n", b"first")
    second = request(b"Content-Length: 6\r\n", b"second")
    answer = await runtime.exchange(first + second)
    assert answer.count(b"HTTP/1.1 ") == 1 and answer.endswith(b"first")
    assert b"Connection: close" in answer
    assert [r.body for r in runtime.seen] == [b"first"]


async def test_runtime_keeps_alive_well_formed_requests(runtime: Runtime) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", runtime.port)
    for n in range(3):
        body = f"body {n}".encode()
        chunked = request(
            b"Transfer-Encoding: chunked\r\n",
            b"%x\r\n%s\r\n0\r\nX-T: 1\r\n\r\n" % (len(body), body),
        )
        writer.write(chunked if n == 1 else request(b"Content-Length: %d\r\n" % len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" not in head
        assert await reader.readexactly(len(body)) == body
    writer.write(request(b"Expect: 100-continue\r\nContent-Length: 4\r\n"))
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"more")
    await reader.readuntil(b"\r\n\r\n")
    assert await reader.readexactly(4) == b"more"
    writer.close()
    assert [r.body for r in runtime.seen] == [b"body 0", b"body 1", b"body 2", b"more"]


async def test_runtime_refuses_response_headers_it_cannot_write() -> None:
    """A handler's header with CR/LF never reaches the wire: the answer is a 500, then close."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    errors: list[BaseException] = []

    async def handler(request: http11.Request) -> http11.Response:
        return http11.Response(200, b"x", {"X-Bad": "a\r\nInjected: yes"})

    server = await http11.serve(sock, handler, 1024, errors.append)
    try:
        answer = await Runtime(sock.getsockname()[1]).exchange(request(b"Content-Length: 0\r\n"))
    finally:
        server.close()
    assert answer.startswith(b"HTTP/1.1 500 ") and b"Injected" not in answer
    assert isinstance(errors[0], wire.HeaderError)


# -- the upstream client against peers that misbehave -----------------------------------------

Script = Callable[[int, dict[str, str], bytes], Awaitable[bytes | tuple[bytes, bytes]]]
"""Answer n to a request; a pair is (answer, bytes written unasked 50 ms later)."""


@dataclass
class Peer:
    """A scripted HTTP/1.1 server: ``script(n, headers, body)`` gives the bytes of answer n."""

    port: int
    connections: int = 0
    requests: int = 0


@contextlib.asynccontextmanager
async def peer(script: Script) -> AsyncIterator[Peer]:
    state = Peer(0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                _, fields = wire.parse_head(head[:-4])
                headers = dict(fields)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                state.requests += 1
                reply = await script(state.requests, headers, body)
                if isinstance(reply, tuple):
                    writer.write(reply[0])
                    await asyncio.sleep(0.05)
                    writer.write(reply[1])
                else:
                    writer.write(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()


def answer(body: bytes, *extra: bytes, request_id: str | None = None) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body)
    if request_id is not None:
        head += b"Lambda-Runtime-Aws-Request-Id: %s\r\n" % request_id.encode()
    return head + b"".join(extra) + b"\r\n" + body


async def echo_id(n: int, headers: dict[str, str], body: bytes) -> bytes:
    return answer(body, request_id=headers.get("lambda-runtime-aws-request-id"))


async def test_upstream_answers_each_caller_with_its_own_response() -> None:
    pool = UpstreamPool()
    async with peer(echo_id) as server:

        async def call(n: int) -> None:
            rid = f"id-{n}"
            headers = {"Lambda-Runtime-Aws-Request-Id": rid}
            reply = await pool.post(
                "127.0.0.1", server.port, "/invoke", b"%d" % n, headers, request_id=rid
            )
            assert reply.body == b"%d" % n

        for _ in range(5):
            await asyncio.gather(*(call(n) for n in range(20)))
    pool.close()
    assert server.connections <= 20


async def test_upstream_closes_a_connection_that_answers_twice() -> None:
    """The issue's desync, from the client's side: a peer that answers one request twice. The
    surplus answer must reach nobody; the next caller gets a fresh connection."""

    async def twice(n: int, headers: dict[str, str], body: bytes) -> bytes:
        rid = headers.get("lambda-runtime-aws-request-id")
        if body == b"attacker":
            return answer(body, request_id=rid) + answer(b"surplus", request_id=rid)
        return answer(body, request_id=rid)

    pool = UpstreamPool()
    async with peer(twice) as server:
        with pytest.raises(UpstreamError, match="out of step"):
            await pool.post("127.0.0.1", server.port, "/invoke", b"attacker", {}, request_id=None)
        for n in range(3):
            reply = await pool.post("127.0.0.1", server.port, "/invoke", b"victim %d" % n, {})
            assert reply.body == b"victim %d" % n
    pool.close()


async def test_upstream_closes_an_idle_connection_that_speaks() -> None:
    """Bytes arriving while no request is outstanding (a late surplus answer) close the idle
    connection before anyone can be handed them."""

    async def late_surplus(
        n: int, headers: dict[str, str], body: bytes
    ) -> bytes | tuple[bytes, bytes]:
        return (answer(body), answer(b"stray")) if n == 1 else answer(body)

    pool = UpstreamPool()
    async with peer(late_surplus) as server:
        assert (await pool.post("127.0.0.1", server.port, "/", b"one", {})).body == b"one"
        idle = pool._idle[("127.0.0.1", server.port)][0]
        async with asyncio.timeout(5):
            while not idle.closed:  # noqa: ASYNC110 - the pool has no event to wait on
                await asyncio.sleep(0.01)
        assert (await pool.post("127.0.0.1", server.port, "/", b"two", {})).body == b"two"
        assert server.connections == 2
    pool.close()


async def test_upstream_checks_the_request_id() -> None:
    async def wrong_id(n: int, headers: dict[str, str], body: bytes) -> bytes:
        return answer(body, request_id="someone-else")

    pool = UpstreamPool()
    async with peer(wrong_id) as server:
        with pytest.raises(UpstreamError, match="someone-else"):
            await pool.post("127.0.0.1", server.port, "/invoke", b"x", {}, request_id="mine")
        # Pollers use the same pool for the gateway's Invoke API and ask no check.
        assert (await pool.post("127.0.0.1", server.port, "/", b"y", {})).body == b"y"
        assert server.connections == 2
    pool.close()


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\n\r\nbody",  # no Content-Length
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nbody",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nbody",
        b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\nbody",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\nX: y\r\n\r\nbody",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n folded\r\n\r\nbody",
        b"HTTP/1.1 101 Switching Protocols\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/2 200 OK\r\nContent-Length: 4\r\n\r\nbody",
        b"garbage\r\n\r\n",
    ],
)
async def test_upstream_refuses_responses_it_cannot_frame(response: bytes) -> None:
    async def bad(n: int, headers: dict[str, str], body: bytes) -> bytes:
        return response if n == 1 else answer(body)

    pool = UpstreamPool()
    async with peer(bad) as server:
        with pytest.raises(UpstreamError):
            await pool.post("127.0.0.1", server.port, "/", b"x", {})
        assert (await pool.post("127.0.0.1", server.port, "/", b"y", {})).body == b"y"
        assert server.connections == 2
    pool.close()


async def test_upstream_does_not_reuse_a_connection_in_doubt() -> None:
    gate = asyncio.Event()

    async def slow_first(n: int, headers: dict[str, str], body: bytes) -> bytes:
        if n == 1:
            await gate.wait()
        return answer(body, b"Connection: close\r\n" if body == b"close" else b"")

    pool = UpstreamPool()
    async with peer(slow_first) as server:
        call = asyncio.ensure_future(pool.post("127.0.0.1", server.port, "/", b"cancelled", {}))
        await asyncio.sleep(0.05)
        call.cancel()  # mid-request: the answer may still come, so the connection goes
        with pytest.raises(asyncio.CancelledError):
            await call
        gate.set()
        assert (await pool.post("127.0.0.1", server.port, "/", b"close", {})).body == b"close"
        assert (await pool.post("127.0.0.1", server.port, "/", b"after", {})).body == b"after"
        assert server.connections == 3
    pool.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"Lambda-Runtime-Client-Context": "{}\r\n\r\nPOST /invoke HTTP/1.1\r\n\r\n"},
        {"Lambda-Runtime-Trace-Id": "Root=1\nX: y"},
        {"X": "nul\0"},
        {"Bad Name": "v"},
        {"Content-Length": "0"},
        {"transfer-encoding": "chunked"},
        {"Host": "elsewhere"},
    ],
)
async def test_upstream_refuses_headers_before_sending_anything(headers: dict[str, str]) -> None:
    pool = UpstreamPool()
    async with peer(echo_id) as server:
        with pytest.raises(wire.HeaderError):
            await pool.post("127.0.0.1", server.port, "/invoke", b"{}", headers)
        assert server.connections == 0
    pool.close()
