"""Where the gateway listens, and what each listener serves, with per-connection bounds.

One listener serves everything by default (``kfaas dev``). A gateway can instead serve HTTP
triggers on one address and the Invoke API on another (``--listen trigger=HOST:PORT --listen
invoke=HOST:PORT``), so a public ingress reaches triggers only and the Invoke API stays behind a
NetworkPolicy. /healthz and /readyz answer on every listener; /metrics on the Invoke API's only.

Every connection is wrapped in a ``GuardedConnection`` around aiohttp's own protocol: it enforces
the cap on open connections (answering 429 before reading anything) and the bounds of a request
head, which aiohttp does not have: complete within the header timeout of the connection opening
or of its first byte, and at most ``MAX_HEAD_BYTES``. Between requests, idle keep-alive
connections are closed by aiohttp's ``keepalive_timeout``, set on the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

from aiohttp import web
from aiohttp.typedefs import Handler

from kfaas.config import Settings

from .errors import ResourceNotFound, error_response
from .limits import (
    HEADER_TIMEOUT,
    HEADER_TOO_LARGE,
    MAX_HEAD_BYTES,
    OVER_CONNECTION_CAP,
)
from .metrics import GatewayMetrics
from .middleware import REQUEST_ID

# The app's metrics, for what happens outside any request (connections, their timers).
METRICS = web.AppKey("gateway_metrics", GatewayMetrics)
Role = Literal["all", "invoke", "trigger"]
ROLES: tuple[Role, ...] = ("all", "invoke", "trigger")
_ADDRESS = re.compile(r"(?P<role>[a-z]+)=(?P<host>\[[0-9a-fA-F:.]+\]|[^:\[\]\s]*):(?P<port>\d+)")


@dataclass(frozen=True)
class Listener:
    role: Role
    host: str
    port: int


def parse_listeners(values: Sequence[str], host: str, port: int) -> list[Listener]:
    """The listeners ``--listen ROLE=HOST:PORT`` values name; none: one for all on host:port.

    Each of the Invoke API and the HTTP triggers is served by exactly one listener. ValueError,
    naming the value, otherwise.
    """
    if not values:
        return [Listener("all", host, port)]
    listeners: list[Listener] = []
    for value in values:
        match = _ADDRESS.fullmatch(value.strip())
        role = match.group("role") if match else ""
        if match is None or role not in ROLES or int(match.group("port")) > 65535:
            raise ValueError(
                f"--listen {value!r} must be ROLE=HOST:PORT with ROLE one of {', '.join(ROLES)}"
            )
        address = match.group("host").strip("[]") or "0.0.0.0"
        listeners.append(Listener(role, address, int(match.group("port"))))
    served = [role for listener in listeners for role in _serves(listener.role)]
    if sorted(served) != ["invoke", "trigger"]:
        raise ValueError(
            "--listen must serve the Invoke API and the HTTP triggers once each "
            f"(got {', '.join(v.strip() for v in values)})"
        )
    return listeners


def _serves(role: Role) -> tuple[str, ...]:
    return ("invoke", "trigger") if role == "all" else (role,)


def path_role(path: str) -> Literal["invoke", "trigger", "both"]:
    """Which listener role a path belongs to (probes belong to both)."""
    if path.startswith("/fn/"):
        return "trigger"
    if path in ("/healthz", "/readyz"):
        return "both"
    return "invoke"


class Connections:
    """Connections open across every listener of the process, against the cap."""

    def __init__(self, limits: Settings, metrics: GatewayMetrics | None = None) -> None:
        self.limits = limits
        self.open = 0
        self.metrics = metrics
        if metrics is not None:
            metrics.open_connections.set_function(lambda: self.open)

    def refused(self, bound: str) -> None:
        if self.metrics is not None:
            self.metrics.refusals.labels(bound).inc()


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the connection cap and the head's bounds."""

    def __init__(self, server: web.Server, connections: Connections, role: Role) -> None:
        self._server = server
        self._connections = connections
        self.role = role
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._requests_running = 0
        # The request head being received: its size so far, whether its blank line was seen (what
        # follows is a body), and its last bytes, in case that blank line is split across reads.
        self._head_bytes = 0
        self._head_done = False
        self._head_tail = b""
        self._answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # uvloop's are no asyncio subclasses
        if self._connections.open >= self._connections.limits.max_connections:
            self._connections.refused("connections")
            stream.write(OVER_CONNECTION_CAP)
            stream.close()
            return
        self._connections.open += 1
        self._transport = stream
        self._inner = self._server()
        self._inner.connection_made(stream)
        # A new connection owes its first head within the header timeout, byte or no byte.
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._requests_running == 0 and not self._head_done:
            if self._head_timer is None:
                self._start_head_timer()
            if not self._count_head(data):
                self._refuse(HEADER_TOO_LARGE, "header_size")
                return
        self._inner.data_received(data)

    def _count_head(self, data: bytes) -> bool:
        """Count ``data`` into the head being received; False once it passes ``MAX_HEAD_BYTES``."""
        if self._head_bytes == 0:
            data = data.lstrip(b"\r\n")  # blank lines before a request line are allowed
        seen = self._head_tail + data
        ends = [i for i in (seen.find(b"\r\n\r\n"), seen.find(b"\n\n")) if i >= 0]
        if ends:
            self._head_done = True
            self._head_bytes += min(ends) - len(self._head_tail)
        else:
            self._head_bytes += len(data)
            self._head_tail = seen[-3:]
        return self._head_bytes <= MAX_HEAD_BYTES

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        self._connections.open -= 1
        self._stop_head_timer()
        inner, self._inner = self._inner, None
        inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def request_started(self) -> None:
        """A whole request head arrived and its handler runs: the head is no longer timed."""
        self._requests_running += 1
        self._stop_head_timer()

    def request_finished(self, body_complete: bool) -> None:
        """A handler answered; with its body not all read, aiohttp discards the rest and closes
        (at most 10 s later), so what still arrives is that body and is neither counted nor timed.
        """
        self._requests_running -= 1
        self._answered += 1
        self._head_bytes, self._head_done, self._head_tail = 0, not body_complete, b""

    def _start_head_timer(self) -> None:
        self._head_timer = asyncio.get_running_loop().call_later(
            self._connections.limits.header_timeout_seconds, self._head_too_slow
        )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._requests_running == 0:
            self._refuse(HEADER_TIMEOUT, "header_timeout")

    def _refuse(self, answer: bytes, bound: str) -> None:
        """Close the connection, with ``answer`` if nothing was answered on it before.

        After an answer, the bytes that broke the bound may be the rest of a body its handler did
        not read; a second answer there could be taken for the answer to a next request.
        """
        if self._transport is not None and not self._transport.is_closing():
            self._connections.refused(bound)
            if self._answered == 0:
                with contextlib.suppress(RuntimeError):
                    self._transport.write(answer)
            self._transport.close()


def _connection_of(request: web.Request) -> GuardedConnection | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, GuardedConnection) else None


@web.middleware
async def listener_roles(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Serve a request only on a listener of its role, and keep its connection's head bounds.

    Chained outside ``api_errors`` so that it sees every answer: when a handler answered without
    reading the whole body, the connection is closed after it (once aiohttp has discarded the
    rest), because the next head on it could not be told from that body.
    """
    connection = _connection_of(request)
    if connection is None:
        return await handler(request)
    wanted = path_role(request.path)
    if connection.role != "all" and wanted not in (connection.role, "both"):
        refusal = ResourceNotFound(f"{request.path} is not served on this listener")
        return error_response(refusal, request[REQUEST_ID])
    connection.request_started()
    body_complete = False
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        body_complete = request.content.is_eof()
        if not body_complete:
            exc.force_close()
        raise
    else:
        body_complete = request.content.is_eof()
        if not body_complete:
            response.force_close()
        return response
    finally:
        connection.request_finished(body_complete)


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections are ``GuardedConnection``s of one role."""

    def __init__(self, runner: web.AppRunner, listener: Listener, connections: Connections):
        super().__init__(runner)
        self._app_runner = runner
        self.listener = listener
        self._connections = connections
        self.port = listener.port

    @property
    def name(self) -> str:
        return f"http://{self.listener.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._app_runner.server
        assert server is not None
        role, connections = self.listener.role, self._connections
        self._server = await asyncio.get_running_loop().create_server(
            lambda: GuardedConnection(server, connections, role),
            self.listener.host,
            self.listener.port,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])


def make_runner(app: web.Application, limits: Settings) -> web.AppRunner:
    """The app's runner; aiohttp's keep-alive timer is the keep-alive idle timeout."""
    return web.AppRunner(app, access_log=None, keepalive_timeout=limits.keepalive_timeout_seconds)


async def start_listeners(
    runner: web.AppRunner, listeners: Sequence[Listener], limits: Settings
) -> list[GuardedSite]:
    """Serve ``runner``'s app on every listener, sharing one connection cap."""
    connections = Connections(limits, runner.app.get(METRICS))
    sites = [GuardedSite(runner, listener, connections) for listener in listeners]
    for site in sites:
        await site.start()
    return sites
