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
import base64
import contextlib
import http.client
import json
import socket
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from devserver import DevServer, dev_server, make_lambda_client
from runtime.instances import Starter, start

from kfaas import wire
from kfaas.gateway.api import _client_context as client_context
from kfaas.runtime import http11
from kfaas.upstream import UpstreamError, UpstreamPool

__all__ = ["start"]  # the runtime tests' fixture: real instances on free ports

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
        with pytest.raises(UpstreamError, match="carries another request id") as refused:
            await pool.post("127.0.0.1", server.port, "/invoke", b"x", {}, request_id="mine")
        assert "someone-else" not in str(refused.value)
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
    arrived, gate = asyncio.Event(), asyncio.Event()

    async def slow_first(n: int, headers: dict[str, str], body: bytes) -> bytes:
        if n == 1:
            arrived.set()
            await gate.wait()
        return answer(body, b"Connection: close\r\n" if body == b"close" else b"")

    pool = UpstreamPool()
    async with peer(slow_first) as server:
        call = asyncio.ensure_future(pool.post("127.0.0.1", server.port, "/", b"cancelled", {}))
        await arrived.wait()
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


# -- kfaas dev: many callers, hostile requests alongside ---------------------------------------


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with dev_server([FUNCTIONS]) as server:
        yield server


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send_raw(url: str, data: bytes, timeout: float = 30) -> Answer:
    """Write ``data`` as it is (no client library would) and read one HTTP answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return Answer(response.status, response.msg, response.read())


def invoke_raw(url: str, payload: bytes, headers: dict[str, bytes], path: str = INVOKE) -> Answer:
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % (path.encode(), len(payload))
    head += b"".join(b"%s: %s\r\n" % (name.encode(), value) for name, value in headers.items())
    return send_raw(url, head + b"Connection: close\r\n\r\n" + payload)


def b64(text: str | bytes) -> bytes:
    return base64.b64encode(text.encode() if isinstance(text, str) else text)


SMUGGLED = (
    "POST /invoke HTTP/1.1\r\nLambda-Runtime-Aws-Request-Id: smuggled\r\n"
    "Content-Length: 2\r\n\r\n{}"
)

# Hostile Invoke API requests: header name → raw value. Each must be refused (4xx) or, for headers
# Lambda ignores when unreadable, answered 200 with the caller's own request id.
HOSTILE_INVOKE: dict[str, dict[str, bytes]] = {
    "issue's client context": {"X-Amz-Client-Context": b64("{}\r\n\r\n" + SMUGGLED)},
    "client context, CRLF and spaces": {"X-Amz-Client-Context": b64("{}\r\n\r\n      ")},
    "client context, CRLF between tokens": {
        "X-Amz-Client-Context": b64('{"custom":\r\n{"a":\r\n\r\n1}}\r\n')
    },
    "client context, CR in a string": {"X-Amz-Client-Context": b64('{"a":"x\ry"}')},
    "client context, LF in a string": {
        "X-Amz-Client-Context": b64('{"a":"x\n\r\nGET / HTTP/1.1"}')
    },
    "client context, escaped CRLF": {"X-Amz-Client-Context": b64('{"a":"\\r\\n\\r\\nGET /"}')},
    "client context, NUL": {"X-Amz-Client-Context": b64('{"a":1}\0')},
    "client context, escaped NUL": {"X-Amz-Client-Context": b64('{"a":"\\u0000"}')},
    "client context, not UTF-8": {"X-Amz-Client-Context": b64(b'{"a":"\xff"}')},
    "client context, not base64": {"X-Amz-Client-Context": b"{}\x7f"},
    "client context, deep": {"X-Amz-Client-Context": b64("[" * 1300 + "]" * 1300)},
    "client context, too long": {"X-Amz-Client-Context": b64("[" + "1," * 2000 + "1]")},
    "trace, bare LF": {"X-Amzn-Trace-Id": b"Root=1\nLambda-Runtime-Aws-Request-Id: x"},
    "trace, bare CR": {"X-Amzn-Trace-Id": b"Root=1\rX: y"},
    "trace, NUL": {"X-Amzn-Trace-Id": b"Root=1\0"},
    "trace, not Latin-1": {"X-Amzn-Trace-Id": "Root=日本;Sampled=1".encode()},
    "trace, obs-text": {"X-Amzn-Trace-Id": b"Root=\xff\xfe"},
    "trace, junk": {"X-Amzn-Trace-Id": b"\\r\\n;;==;"},
    "log type, lower case": {"X-Amz-Log-Type": b"tail"},
    "log type, UTF-8": {"X-Amz-Log-Type": "Tail日本".encode()},
    "log type, bare LF": {"X-Amz-Log-Type": b"Tail\nX-Amz-Invocation-Type: Event"},
    "traceparent, junk": {"traceparent": b"00-zz-\xff-01", "tracestate": b"a=\x01,,=="},
    "traceparent, UTF-8": {"traceparent": "00-日本-01".encode(), "tracestate": "k=日本".encode()},
    "traceparent, long": {"traceparent": b"00-" + b"a" * 8000, "tracestate": b"k=v," * 2000},
    "invocation type": {"X-Amz-Invocation-Type": "Event日本".encode()},
}
HOSTILE_PAYLOADS = {
    "invalid JSON": b'{"a": }',
    "not UTF-8": b'{"a": "\xff"}',
    "UTF-16": '{"a": 1}'.encode("utf-16"),
    "NaN": b"[NaN]",
    "extra data": b"{}\r\n\r\n" + SMUGGLED.encode(),
}


def _own(answer: Answer) -> bool:
    """A 200 Invoke answer belongs to its caller: the handler's id is the gateway's id."""
    body = answer.json()
    if answer.headers.get("X-Amz-Function-Error"):
        # The function could not read what it was given (a client context nested past Python's
        # limit): its own error, answered to its own caller.
        return bool(body.get("errorType") == "Runtime.UnmarshalError")
    return isinstance(body, dict) and body.get("request_id") == answer.headers["x-amzn-RequestId"]


@pytest.mark.parametrize("headers", HOSTILE_INVOKE.values(), ids=HOSTILE_INVOKE.keys())
def test_hostile_invoke_headers_are_4xx_or_harmless(
    dev: DevServer, headers: dict[str, bytes]
) -> None:
    answer = invoke_raw(dev.url, b'{"who": "attacker"}', headers)
    assert answer.status < 500, answer.body
    if answer.status == 200:
        assert _own(answer)
        assert answer.headers.get("X-Amz-Function-Error") or answer.json()["event"] == {
            "who": "attacker"
        }


@pytest.mark.parametrize("payload", HOSTILE_PAYLOADS.values(), ids=HOSTILE_PAYLOADS.keys())
def test_invalid_payloads_are_invalid_request_content(dev: DevServer, payload: bytes) -> None:
    for invocation_type in (b"RequestResponse", b"Event"):
        answer = invoke_raw(dev.url, payload, {"X-Amz-Invocation-Type": invocation_type})
        assert answer.status == 400, answer.body
        assert answer.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"


def test_json_of_any_depth_is_accepted(dev: DevServer) -> None:
    """100,000 levels: valid JSON the gateway accepts; Python's parser in the handler cannot read
    it, which is the function's own documented error, not the platform's."""
    deep = b"[" * 100_000 + b"]" * 100_000
    answer = invoke_raw(dev.url, deep, {})
    assert answer.status == 200
    assert answer.headers["X-Amz-Function-Error"] == "Unhandled"
    assert answer.json()["errorType"] == "Runtime.UnmarshalError"
    assert invoke_raw(dev.url, deep, {"X-Amz-Invocation-Type": b"Event"}).status == 202
    assert invoke_raw(dev.url, deep[:-1], {}).status == 400


def test_utf8_client_context_reaches_the_handler(dev: DevServer) -> None:
    client = make_lambda_client(dev.url)
    context = '{"custom": {"user": "日本", "emoji": "😀", "line": "a\\r\\nb"}, "env": {}}'
    reply = client.invoke(
        FunctionName="echo-id",
        Payload=b'{"n": 1}',
        ClientContext=base64.b64encode(context.encode()).decode(),
    )
    body = json.loads(reply["Payload"].read())
    assert body["custom"] == {"user": "日本", "emoji": "😀", "line": "a\r\nb"}
    assert body["request_id"] == reply["ResponseMetadata"]["RequestId"]


def test_trace_header_is_passed_when_valid_and_ignored_when_not(dev: DevServer) -> None:
    valid = b"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    assert invoke_raw(dev.url, b"{}", {"X-Amzn-Trace-Id": valid}).json()["trace"] == valid.decode()
    answer = invoke_raw(dev.url, b"{}", {"X-Amzn-Trace-Id": "Root=日本".encode()})
    assert answer.status == 200 and "日本" not in (answer.json()["trace"] or "")


def test_the_issues_attack_then_a_victim(dev: DevServer) -> None:
    """The issue's reproduction: a client context of `{}`, CRLF CRLF and a smuggled request;
    then victims on every pooled connection must each get their own answer."""
    client = make_lambda_client(dev.url)
    for context in ("{}\r\n\r\n" + SMUGGLED, "{}\r\n\r\n" + " " * 64):
        attack = invoke_raw(dev.url, b'{"who": "attacker"}', {"X-Amz-Client-Context": b64(context)})
        assert attack.status in (200, 400)
        for n in range(24):
            reply = client.invoke(FunctionName="echo-id", Payload=json.dumps({"victim": n}))
            body = json.loads(reply["Payload"].read())
            assert body["event"] == {"victim": n}
            assert body["request_id"] == reply["ResponseMetadata"]["RequestId"]


def _hostile_trigger_requests() -> list[bytes]:
    get = b"GET /fn/default/web-id/ HTTP/1.1\r\nHost: x\r\n"
    post = b"POST /fn/default/web-id/ HTTP/1.1\r\nHost: x\r\n"
    return [
        b"GET /fn/default/web-id/a%0d%0aX:%20y?q=%0d%0a%00&r=\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        get + b'X-A: \xff\xfe\r\nCookie: a=\xe6\x97\xa5; b="\\r\\n"\r\n\r\n',
        get + b"X-A: 1\nX-B: 2\r\n\r\n",
        get + b"Cookie: a=1\rb=2\r\n\r\n",
        get + b"X-A: \x00\r\n\r\n",
        post + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        get + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        get + b" folded: 1\r\n\r\n",
    ]


def test_hostile_trigger_requests_are_4xx_or_harmless(dev: DevServer) -> None:
    for data in _hostile_trigger_requests():
        answer = send_raw(dev.url, data)
        assert answer.status < 500, (data, answer.body)
        if answer.status == 200:
            assert answer.json()["request_id"] == answer.headers["x-amzn-RequestId"]


class Caller(threading.Thread):
    """Makes ``calls`` invocations, each with a unique payload, and counts answers not its own."""

    def __init__(self, url: str, index: int, calls: int) -> None:
        super().__init__(name=f"caller-{index}")
        self.url, self.index, self.calls = url, index, calls
        self.mismatches: list[str] = []
        self.failures: list[BaseException] = []
        self.answered = 0

    def run(self) -> None:
        try:
            kind = self.index % 3
            client = make_lambda_client(self.url) if kind == 1 else None
            host, port = self.url.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
            for n in range(self.calls):
                nonce = f"{self.index}-{n}-{uuid.uuid4()}"
                if kind == 0:
                    self._invoke_http(connection, nonce)
                elif kind == 1:
                    assert client is not None
                    self._invoke_boto3(client, nonce)
                else:
                    self._trigger(connection, nonce)
            connection.close()
        except BaseException as exc:
            self.failures.append(exc)

    def _check(self, ok: bool, what: str) -> None:
        self.answered += 1
        if not ok:
            self.mismatches.append(what)

    def _invoke_http(self, connection: http.client.HTTPConnection, nonce: str) -> None:
        connection.request("POST", INVOKE, json.dumps({"nonce": nonce}).encode())
        reply = connection.getresponse()
        body = json.loads(reply.read())
        self._check(reply.status == 200 and body["event"] == {"nonce": nonce}, f"payload {nonce}")
        self._check(body["request_id"] == reply.headers["x-amzn-RequestId"], f"id {nonce}")

    def _invoke_boto3(self, client: Any, nonce: str) -> None:
        reply = client.invoke(FunctionName="echo-id", Payload=json.dumps({"nonce": nonce}))
        body = json.loads(reply["Payload"].read())
        self._check(body["event"] == {"nonce": nonce}, f"payload {nonce}")
        self._check(body["request_id"] == reply["ResponseMetadata"]["RequestId"], f"id {nonce}")

    def _trigger(self, connection: http.client.HTTPConnection, nonce: str) -> None:
        path = f"/fn/default/web-id/{nonce}?nonce={nonce}"
        connection.request("POST", path, nonce.encode(), {"X-Nonce": nonce, "Cookie": f"n={nonce}"})
        reply = connection.getresponse()
        body = json.loads(reply.read())
        request_id = reply.headers["x-amzn-RequestId"]
        self._check(
            reply.status == 200
            and body["rawPath"] == f"/{nonce}"
            and body["rawQueryString"] == f"nonce={nonce}"
            and body["headers"]["x-nonce"] == nonce
            and body["cookies"] == [f"n={nonce}"]
            and body["body"] == nonce,
            f"trigger payload {nonce}",
        )
        self._check(
            body["request_id"] == request_id
            and reply.headers["x-echo-request-id"] == request_id
            and reply.headers["set-cookie"] == f"seen={request_id}",
            f"trigger id {nonce}",
        )


class Attacker(threading.Thread):
    """Sends every hostile request in turn until told to stop; records any 5xx or foreign 200."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        super().__init__(name="attacker")
        self.url, self.stop = url, stop
        self.sent = 0
        self.problems: list[str] = []

    def run(self) -> None:
        requests = [
            (name, b'{"who": "attacker"}', headers) for name, headers in HOSTILE_INVOKE.items()
        ] + [(name, payload, {}) for name, payload in HOSTILE_PAYLOADS.items()]
        while not self.stop.is_set():
            for name, payload, headers in requests:
                answer = invoke_raw(self.url, payload, headers)
                self.sent += 1
                if answer.status >= 500 or (answer.status == 200 and not _own(answer)):
                    self.problems.append(f"{name}: {answer.status} {answer.body[:100]!r}")
            for data in _hostile_trigger_requests():
                answer = send_raw(self.url, data)
                self.sent += 1
                if answer.status >= 500:
                    self.problems.append(f"trigger: {answer.status} {answer.body[:100]!r}")


def test_concurrent_callers_get_their_own_answers_while_attacked(dev: DevServer) -> None:
    """16 callers x 50 calls (raw HTTP, boto3, HTTP triggers), each checking its own payload and
    request id, with hostile requests through every forwarded header running alongside."""
    stop = threading.Event()
    attackers = [Attacker(dev.url, stop) for _ in range(3)]
    callers = [Caller(dev.url, index, 50) for index in range(16)]
    for thread in attackers + callers:
        thread.start()
    for caller in callers:
        caller.join(300)
    stop.set()
    for attacker in attackers:
        attacker.join(120)
    assert [c.failures for c in callers] == [[]] * len(callers)
    mismatches = [m for caller in callers for m in caller.mismatches]
    assert mismatches == [], mismatches[:10]
    assert sum(caller.answered for caller in callers) == 16 * 50 * 2  # payload and id, each call
    assert sum(attacker.sent for attacker in attackers) > 0
    assert [p for attacker in attackers for p in attacker.problems] == []
    # The gateway kept its log to warning lines, not a traceback per refused request.
    assert "Traceback" not in dev.output()


async def test_awslambdaric_reads_the_re_encoded_client_context(start: Starter) -> None:
    """awslambdaric parses `Lambda-Runtime-Client-Context` as raw JSON: the gateway's ASCII
    re-encoding (with `\\u` escapes) gives it the caller's UTF-8 text intact."""
    files = {
        "bootstrap": f"#!/bin/sh\nexec {sys.executable} -m awslambdaric app.handler\n",
        "app.py": (
            "def handler(event, context):\n"
            "    if event.get('fail'):\n"
            "        raise ValueError('日本 \\r\\n')\n"
            "    return context.client_context.custom\n"
        ),
    }
    instance = await start(files, KFAAS_RUNTIME="provided", _HANDLER="app.handler")
    custom = {"user": "日本", "emoji": "😀", "quote": '"\\\r\n'}
    raw = json.dumps({"custom": custom}, ensure_ascii=False, indent="\r\n")
    header = client_context(base64.b64encode(raw.encode()).decode())
    assert header is not None and wire.is_header_value(header)
    reply = await instance.invoke({}, headers={"Lambda-Runtime-Client-Context": header})
    assert reply.status == 200 and not reply.function_error, reply.body
    assert reply.json() == custom
    # Its error report carries UTF-8 in an X-Ray header (obs-text), which the runtime accepts.
    error = await instance.invoke({"fail": True})
    assert error.function_error and error.json()["errorMessage"] == "日本 \r\n"


async def test_runtime_refuses_values_its_runtime_api_could_not_pass_on(start: Starter) -> None:
    instance = await start({"app.py": "def handler(event, context):\n    return event\n"})
    for name in ("Lambda-Runtime-Trace-Id", "Lambda-Runtime-Client-Context"):
        reply = await instance.invoke({"a": 1}, headers={name: "Root=日本"})
        assert reply.status == 400, reply.body
        assert reply.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert (await instance.invoke({"a": 1})).json() == {"a": 1}
