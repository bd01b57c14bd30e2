"""What the framing checks cost on the gateway → runtime hot path (issue 8, points 1-3).

Measures, in one process on uvloop: encoding a gateway → runtime request head through
`kfaas.wire` next to the unchecked string join it replaced; parsing a runtime response head; and
CPU time per round trip of `kfaas.upstream.UpstreamPool` against the runtime's own HTTP/1.1 server
(`kfaas.runtime.http11`), client and server together. CPU time (not wall time) so other processes
on a shared machine move the figures less. Run: `.venv/bin/python bench/framing.py`.
"""

from __future__ import annotations

import asyncio
import platform
import socket
import time
import timeit
import uuid

from kfaas import upstream, wire
from kfaas.runtime import http11

HEADERS = {
    "Host": "10.0.0.7:8080",
    "Content-Length": "18",
    "Lambda-Runtime-Aws-Request-Id": str(uuid.uuid4()),
    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:ns/fn",
    "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
}
RESPONSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\nContent-Type: application/json\r\n"
    b"Lambda-Runtime-Aws-Request-Id: 8a4b2c1e-3f5d-4e6a-9b7c-1d2e3f4a5b6c\r\n"
    b"X-Kfaas-Duration-Ms: 0.123"
)


def joined_head() -> bytes:
    """The string join the encoder replaced (no checks), for comparison."""
    head = ["POST /invoke HTTP/1.1", *(f"{name}: {value}" for name, value in HEADERS.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")


def per_call_us(function: object, number: int = 50_000) -> float:
    return timeit.timeit(function, number=number) / number * 1e6  # type: ignore[arg-type]


async def round_trips(concurrency: int, requests: int) -> float:
    """CPU microseconds per POST /invoke round trip, client and server in this process."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    async def handler(request: http11.Request) -> http11.Response:
        request_id = request.headers.get("lambda-runtime-aws-request-id", "")
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "X-Kfaas-Duration-Ms": "0.123",
        }
        return http11.Response(200, request.body, headers)

    server = await http11.serve(sock, handler, 1 << 23, print)
    port = sock.getsockname()[1]
    pool = upstream.UpstreamPool()
    extra = {name: value for name, value in HEADERS.items() if name.startswith(("L", "t"))}

    async def caller() -> None:
        for _ in range(requests // concurrency):
            request_id = str(uuid.uuid4())
            headers = {**extra, "Lambda-Runtime-Aws-Request-Id": request_id}
            await pool.post(
                "127.0.0.1", port, "/invoke", b'{"hello": "world"}', headers, request_id=request_id
            )

    await caller()  # warm-up: connections, caches
    started = time.process_time()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.process_time() - started
    pool.close()
    server.close()
    return elapsed / requests * 1e6


def main() -> int:
    import uvloop

    encode = per_call_us(lambda: wire.encode_request_head("POST", "/invoke", HEADERS))
    parse = per_call_us(lambda: upstream._parse_head(RESPONSE_HEAD))
    print(f"# framing costs, {time.strftime('%Y-%m-%d')}, {platform.node()}, Python "
          f"{platform.python_version()}")  # fmt: skip
    print(f"encode request head (kfaas.wire)   {encode:6.2f} us")
    print(f"join request head (unchecked)      {per_call_us(joined_head):6.2f} us")
    print(f"parse response head (upstream)     {parse:6.2f} us")
    for concurrency in (1, 16):
        figure = uvloop.run(round_trips(concurrency, 6000))
        print(f"round trip, c={concurrency:<2} (CPU, both sides)  {figure:6.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
