"""An instance that refuses connections (its pod is going away) is skipped, never a failed call.

A refused connection means nothing was sent, so the invocation goes to another instance; an
instance that accepted the request and then died is not retried (the function may have run).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from kfaas.backends import Endpoint
from kfaas.gateway.errors import ServiceError
from kfaas.gateway.invoker import CONNECT_ATTEMPTS, InvokeOptions, Invoker
from kfaas.gateway.metrics import GatewayMetrics
from kfaas.gateway.registry import FunctionRegistry
from kfaas.gateway.routing import Router
from kfaas.manifests import Function
from kfaas.upstream import UpstreamPool

FUNCTION = Function.model_validate({
    "metadata": {"name": "fn", "namespace": "default"},
    "spec": {"runtime": "python3.11", "handler": "app.handler", "code": {"inline": {"a.py": ""}}},
})  # fmt: skip


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    await reader.readexactly(int(fields["Content-Length"]))
    request_id = fields["Lambda-Runtime-Aws-Request-Id"]
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"
        + f"Lambda-Runtime-Aws-Request-Id: {request_id}\r\n\r\n".encode()
        + b'"ok"'
    )
    await writer.drain()
    writer.close()


async def _die(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.transport.abort()  # accepted the request, then gone: the function may have run


@pytest.fixture
async def live() -> AsyncIterator[int]:
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


def invoker(*endpoints: Endpoint) -> tuple[Invoker, Router]:
    registry = FunctionRegistry()
    registry.put(FUNCTION)
    router = Router(lambda key, value: None, max_wait_seconds=0.5)
    router.set_endpoints(FUNCTION.key, list(endpoints))
    return Invoker(registry, router, GatewayMetrics(), UpstreamPool()), router


async def test_refused_instance_is_skipped_and_dropped_from_routing(live: int) -> None:
    gone = Endpoint("gone", f"http://127.0.0.1:{closed_port()}", 1)
    up = Endpoint("up", f"http://127.0.0.1:{live}", 1)
    calls, router = invoker(gone, up)
    for _ in range(4):  # least-outstanding picks `gone` first while it is listed
        result = await calls.invoke(FUNCTION.key, b"{}", InvokeOptions())
        assert result.payload == b'"ok"'
    assert router.pool(FUNCTION.key, None).ready_instances == 1


async def test_only_refusing_instances_fail_after_bounded_attempts() -> None:
    endpoints = [
        Endpoint(f"gone-{n}", f"http://127.0.0.1:{closed_port()}", 1)
        for n in range(CONNECT_ATTEMPTS + 2)
    ]
    calls, router = invoker(*endpoints)
    with pytest.raises(ServiceError, match="could not be reached"):
        await calls.invoke(FUNCTION.key, b"{}", InvokeOptions())
    assert router.pool(FUNCTION.key, None).ready_instances == 2  # only CONNECT_ATTEMPTS tried


async def test_an_instance_that_took_the_request_and_died_is_not_retried(live: int) -> None:
    server = await asyncio.start_server(_die, "127.0.0.1", 0)
    dying = Endpoint("dying", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", 1)
    calls, _ = invoker(dying, Endpoint("up", f"http://127.0.0.1:{live}", 1))
    try:
        with pytest.raises(ServiceError, match="could not be reached"):
            await calls.invoke(FUNCTION.key, b"{}", InvokeOptions())
    finally:
        server.close()
