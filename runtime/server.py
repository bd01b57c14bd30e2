"""The runtime instance's server: `/invoke`, `/healthz` and `/metrics` of ADR 002, over its workers.

It wires the pieces: one `WorkerSlot` and one Runtime API listener per worker, a FIFO pool that
gives each invocation the next free worker, metrics, tracing and the readiness announcement. An
invocation runs in its own task, shielded from the caller's connection: a client that goes away
does not leave a worker half-finished and handed out again. Background tasks are guarded: if one
dies the failure is logged and the process exits non-zero rather than stalling.
"""

from __future__ import annotations

import asyncio
import base64
import hmac  # noqa: F401 -- runtimetoken.matches' import, paid here while the workers start
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kfaas import aiokit, runtimetoken, wire
from kfaas.runtime import errors, http11, logs, tracing
from kfaas.runtime.config import RuntimeConfig
from kfaas.runtime.metrics import Metrics
from kfaas.runtime.pool import FifoPool
from kfaas.runtime.runtime_api import RuntimeApi
from kfaas.runtime.startup import Prepared
from kfaas.runtime.workers import Invocation, Outcome, WorkerSlot

# Lambda's synchronous request limit; the gateway enforces it first, this is the backstop.
MAX_EVENT_BYTES = 6 * 1024 * 1024
_JSON = {"Content-Type": "application/json"}
_TOKEN_HEADER = runtimetoken.HEADER.lower()


def _api_error(status: int, error_type: str, message: str) -> http11.Response:
    body = json.dumps({"Type": "User", "message": message, "__type": error_type}).encode()
    return http11.Response(status, body, {**_JSON, "x-amzn-ErrorType": error_type})


class RuntimeServer:
    def __init__(
        self, prepared: Prepared, sink: logs.LogSink | None = None, started: float | None = None
    ) -> None:
        self.config: RuntimeConfig = prepared.config
        self.port = prepared.port
        self.ready = asyncio.Event()
        self.failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self.metrics = Metrics(self.config.namespace, self.config.function_name)
        self._prepared = prepared
        self._started = time.monotonic() if started is None else started
        self._sink = sink or logs.LogSink()
        self._pool: FifoPool[WorkerSlot] = FifoPool()
        self._slots: list[WorkerSlot] = []
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._in_flight = 0
        self._refused = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        prepared = self._prepared
        for index, (api, process) in enumerate(
            zip(prepared.api_sockets, prepared.processes, strict=True)
        ):
            address = f"127.0.0.1:{api.getsockname()[1]}"
            slot = WorkerSlot(
                index, self.config, address, prepared.private_pipe, self._sink, self.metrics
            )
            slot.adopt(process)
            self._slots.append(slot)
            self._pool.release(slot)
            self._servers.append(
                await http11.serve(api, RuntimeApi(slot), errors.MAX_RESPONSE_BYTES, self._error)
            )
        self._servers.append(
            await http11.serve(prepared.listener, self._route, MAX_EVENT_BYTES, self._error)
        )
        self.background(self._announce_ready, "announce-ready")

    def background(self, run: Callable[[], Awaitable[None]], name: str) -> None:
        """Run a task that must not fail silently: if it dies, the whole instance stops."""
        # log=None: the runtime reports through its own sink, on the function's log stream.
        task = aiokit.guarded_task(name, run, log=None, on_fatal=self._task_failed)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _task_failed(self, name: str, exc: BaseException) -> None:
        self._sink.event("task_failed", level="error", task=name, error=repr(exc))
        if not self.failed.done():
            self.failed.set_result(exc)

    def _error(self, exc: BaseException) -> None:
        self._sink.event("request_failed", level="error", error=repr(exc))

    async def _announce_ready(self) -> None:
        exporter = None
        if self.config.trace_service is not None:
            # OTLP export asked for (ADR 030): the SDK's imports (~0.4 s) run in a thread while
            # the workers initialise, and the first invocation's span is exported too.
            service = self.config.trace_service
            exporter = asyncio.ensure_future(asyncio.to_thread(tracing.install_exporter, service))
        await asyncio.gather(*(slot.initialised.wait() for slot in self._slots))
        if exporter is not None:
            await exporter
        self.ready.set()
        elapsed_ms = round((time.monotonic() - self._started) * 1000, 2)
        self._sink.event("ready", port=self.port, workers=len(self._slots), after_ms=elapsed_ms)
        if self.config.ready_fd is not None:
            os.write(self.config.ready_fd, json.dumps({"port": self.port}).encode() + b"\n")
            os.close(self.config.ready_fd)

    async def close(self, grace_seconds: float | None = None) -> None:
        """Stop accepting, let in-flight invocations finish (up to the timeout), stop workers."""
        for server in self._servers:
            server.close()
        grace = self.config.timeout_seconds + 1 if grace_seconds is None else grace_seconds
        if not await aiokit.wait_event(self._idle, grace):
            self._sink.event("shutdown_with_invocations_running", level="warning")
        await asyncio.gather(*(slot.close() for slot in self._slots))
        await aiokit.stop_tasks(list(self._tasks), grace_seconds=0)

    # -- HTTP ------------------------------------------------------------------------------

    async def _route(self, request: http11.Request) -> http11.Response:
        if request.path == "/invoke":
            if request.method != "POST":
                return _api_error(405, "MethodNotAllowed", "POST /invoke")
            if not self._from_platform(request):
                return _api_error(403, "AccessDeniedException", "only the platform may invoke")
            return await self._invoke(request)
        if request.path == "/healthz":
            if self.ready.is_set():
                return http11.Response(200, b'{"status":"ok"}', _JSON)
            return http11.Response(503, b'{"status":"initialising"}', _JSON)
        if request.path == "/metrics":
            body, content_type = self.metrics.render()
            return http11.Response(200, body, {"Content-Type": content_type})
        return _api_error(404, "NotFound", f"no route for {request.path}")

    def _from_platform(self, request: http11.Request) -> bool:
        """Whether the caller presented this function's runtime token (ADR 011)."""
        expected = self.config.runtime_token
        if expected is None:
            return True
        presented = request.headers.get(_TOKEN_HEADER)
        if runtimetoken.matches(expected, presented):
            return True
        self._refused += 1
        if self._refused & (self._refused - 1) == 0:  # 1st, 2nd, 4th, 8th…: bounded logging
            self._sink.event(
                "invoke_refused",
                level="warning",
                reason="no valid runtime token",
                count=self._refused,
            )
        return False

    async def _invoke(self, request: http11.Request) -> http11.Response:
        if request.body_too_large:
            return _api_error(
                413, "RequestTooLargeException", "Request must be smaller than 6291456 bytes."
            )
        headers = request.headers
        request_id = headers.get("lambda-runtime-aws-request-id") or Invocation.new_request_id()
        invocation = Invocation(
            request_id=request_id,
            event=request.body,
            function_arn=headers.get("lambda-runtime-invoked-function-arn")
            or self.config.function_arn,
            trace_id=headers.get("lambda-runtime-trace-id"),
            client_context=headers.get("lambda-runtime-client-context"),
            cognito_identity=headers.get("lambda-runtime-cognito-identity"),
        )
        if not _writable(invocation):
            return _api_error(
                400,
                "InvalidRequestContentException",
                "Lambda-Runtime-* headers must be printable ASCII: the Runtime API passes them on",
            )
        span = None
        traceparent = headers.get("traceparent")
        parsed = tracing.parse_traceparent(traceparent) if traceparent else None
        if traceparent and parsed is not None:
            if parsed[2]:  # sampled: the runtime's span, under the caller's
                span, invocation.traceparent, invocation.tracestate = tracing.start_invoke_span(
                    traceparent,
                    headers.get("tracestate"),
                    {"faas.invocation_id": request_id, "faas.name": self.config.function_name},
                )
            else:
                # Nothing is recorded for an unsampled trace (every PassThrough invocation
                # without context has one, ADR 030): handed on as is, OpenTelemetry not imported.
                invocation.traceparent = traceparent
                invocation.tracestate = headers.get("tracestate")
            invocation.trace_id = invocation.trace_id or tracing.xray_trace_header(
                invocation.traceparent
            )
        # Shielded: the invocation finishes (and its worker is freed) even if the caller leaves.
        task = asyncio.get_running_loop().create_task(self._run(invocation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        outcome = await asyncio.shield(task)
        if span is not None:
            span.set_attribute("faas.coldstart", outcome.init_duration_ms is not None)
            tracing.end_invoke_span(span, outcome.function_error, _error_type(outcome))
        return self._response(request_id, outcome, headers.get("x-amz-log-type") == "Tail")

    async def _run(self, invocation: Invocation) -> Outcome:
        self._in_flight += 1
        self._idle.clear()
        try:
            slot = await self._pool.acquire()
            self.metrics.concurrent += 1
            try:
                outcome = await slot.invoke(invocation)
            finally:
                self.metrics.concurrent -= 1
                self._recycle(slot)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        cold = outcome.init_duration_ms is not None
        self.metrics.invocation(outcome.duration_ms / 1000, outcome.function_error, cold)
        return outcome

    def _recycle(self, slot: WorkerSlot) -> None:
        """Give the worker back once it can take work: now, or when its replacement is ready."""
        if slot.initialised.is_set():
            self._pool.release(slot)
            return

        async def when_ready() -> None:
            await slot.initialised.wait()
            self._pool.release(slot)

        self.background(when_ready, f"recycle-worker-{slot.index}")

    @staticmethod
    def _response(request_id: str, outcome: Outcome, tail: bool) -> http11.Response:
        headers = {
            **_JSON,
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "X-Kfaas-Duration-Ms": f"{outcome.duration_ms:.3f}",
        }
        if outcome.function_error:
            headers["X-Amz-Function-Error"] = "Unhandled"
        if outcome.init_duration_ms is not None:
            headers["X-Kfaas-Cold-Start"] = "1"
            headers["X-Kfaas-Init-Duration-Ms"] = f"{outcome.init_duration_ms:.3f}"
        if tail:
            headers["X-Amz-Log-Result"] = base64.b64encode(outcome.log_tail).decode()
        return http11.Response(200, outcome.body, headers)


def _writable(invocation: Invocation) -> bool:
    """Whether the Runtime API can hand the invocation's values on as headers (`kfaas.wire`)."""
    values = (
        invocation.request_id,
        invocation.function_arn,
        invocation.trace_id,
        invocation.client_context,
        invocation.cognito_identity,
    )
    return all(value is None or wire.is_header_value(value) for value in values)


def _error_type(outcome: Outcome) -> str | None:
    if not outcome.function_error:
        return None
    try:
        value = json.loads(outcome.body)
    except ValueError:
        return None
    return value.get("errorType") if isinstance(value, dict) else None


async def serve_forever(prepared: Prepared, started: float) -> int:
    server = RuntimeServer(prepared, started=started)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    stopping: asyncio.Future[Any] = loop.create_task(stop.wait())
    failed: asyncio.Future[Any] = server.failed
    await asyncio.wait([stopping, failed], return_when=asyncio.FIRST_COMPLETED)
    await server.close()
    stopping.cancel()
    return 1 if server.failed.done() else 0


def serve(prepared: Prepared, started: float) -> int:
    """Run the instance until SIGTERM/SIGINT (0) or a failed background task (1)."""
    return aiokit.run(serve_forever(prepared, started), use_uvloop=prepared.config.uvloop)
