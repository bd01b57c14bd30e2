"""One synchronous invocation: route it to an instance, run it, account for it.

Every source (the Invoke API, HTTP triggers, the async dispatcher, stream pollers) ends here, so
reserved concurrency, throttling and metrics mean the same for all of them, as in Lambda.
"""

from __future__ import annotations

import functools
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

from opentelemetry import propagate, trace

from kfaas import runtimetoken
from kfaas.manifests import Function
from kfaas.names import LATEST, function_arn, function_key
from kfaas.upstream import UpstreamError, UpstreamPool, UpstreamUnreachable
from kfaas.wire import HeaderError

from .errors import InvalidParameterValue, RequestTooLarge, ServiceError, TooManyRequests
from .metrics import GatewayMetrics, Labels
from .registry import FunctionRegistry
from .routing import FunctionPool, Router
from .tracing import FunctionTracing, handed_xray

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
# Instances tried for one invocation when they refuse the connection (nothing was sent, so trying
# another cannot run the function twice): a pod being replaced stops listening a moment before its
# endpoint is withdrawn, and a crashed one until it is.
CONNECT_ATTEMPTS = 3
ASYNC_PAYLOAD_LIMIT = 1024 * 1024


@dataclass
class InvokeOptions:
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_tail: bool = False
    client_context: str | None = None
    """The client context as JSON text (already base64-decoded)."""
    trace_id: str | None = None
    """An X-Ray trace header value to hand to the function."""
    carrier: dict[str, str] = field(default_factory=dict)
    """Propagation headers (``traceparent``) of the caller, when not taken from the current span."""
    qualifier: str | None = None
    """The qualifier the caller named (an alias, a version), for the invoked function's ARN."""


@dataclass
class InvokeResult:
    request_id: str
    payload: bytes
    function_error: str | None
    log_result: str | None
    cold_start: bool
    init_duration_seconds: float | None
    duration_seconds: float


class Invoker:
    """Routes invocations to instances through the router and records them in metrics."""

    def __init__(
        self,
        registry: FunctionRegistry,
        router: Router,
        metrics: GatewayMetrics,
        upstream: UpstreamPool,
        tracing: FunctionTracing | None = None,
    ) -> None:
        self.registry = registry
        self.router = router
        self.metrics = metrics
        self.upstream = upstream
        # Continues the caller's trace, or starts one for an Active function (ADR 030).
        self.tracing = tracing or FunctionTracing()

    async def invoke(self, key: str, payload: bytes, options: InvokeOptions) -> InvokeResult:
        """Run one invocation of ``namespace/name`` (or version ``namespace/name:N``).

        Raises ``ResourceNotFound`` for an unknown function and the other ``ApiError``s for
        throttles, oversized payloads and unreachable instances; a function error is a result.
        """
        function = self.registry.get(key)
        labels = (function.metadata.namespace, function.metadata.name, function.version)
        if len(payload) > SYNC_PAYLOAD_LIMIT:
            raise RequestTooLarge(
                f"Request must be smaller than {SYNC_PAYLOAD_LIMIT} bytes for the Invoke operation"
            )
        # Reserved concurrency is the function's (a template's is not used, ADR 024): the
        # Router's pools of one function share it, so it caps all versions together.
        latest = self.registry.find(function_key(labels[0], labels[1]))
        reserved = (latest or function).spec.concurrency.reserved
        pool = self.router.pool(key, reserved)
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                return await self._invoke_once(pool, function, payload, options)
            except UpstreamUnreachable as unreachable:
                if attempt == CONNECT_ATTEMPTS:
                    raise ServiceError(
                        f"The function instance could not be reached: {unreachable}"
                    ) from unreachable
        raise AssertionError("unreachable")

    async def _invoke_once(
        self, pool: FunctionPool, function: Function, payload: bytes, options: InvokeOptions
    ) -> InvokeResult:
        labels: Labels = (function.metadata.namespace, function.metadata.name, function.version)
        namespace, name, version = labels
        try:
            slot = await pool.acquire()
        except TooManyRequests:
            self.metrics.throttles.labels(*labels).inc()
            raise
        self.metrics.concurrent.labels(*labels).inc()
        started = time.perf_counter()
        try:
            with self.tracing.span(
                "kfaas.gateway.invoke",
                function.spec.tracing.mode,
                kind=trace.SpanKind.CLIENT,
                attributes={"faas.invoked_name": name, "faas.invocation_id": options.request_id},
                carrier=options.carrier,
                xray=options.trace_id,
            ):
                headers = self._headers(namespace, name, version, options)
                if slot.endpoint.token:  # ADR 011: only the platform reaches a runtime
                    headers[runtimetoken.HEADER] = slot.endpoint.token
                try:
                    result = await self._send(slot.endpoint.url, payload, headers, options)
                except UpstreamUnreachable:
                    # Out of routing before the slot is released, so no waiter is handed it.
                    pool.unreachable(slot)
                    raise
        finally:
            pool.release(slot)
            self.metrics.concurrent.labels(*labels).dec()
        result.duration_seconds = time.perf_counter() - started
        self.metrics.record(labels, result)
        return result

    def _headers(
        self, namespace: str, name: str, version: str, options: InvokeOptions
    ) -> dict[str, str]:
        # The ARN as invoked (Lambda's context.invoked_function_arn): with the alias or version
        # the caller named; an async event names the version its alias chose when accepted.
        qualifier = options.qualifier or (None if version == LATEST else version)
        invoked = function_arn(namespace, name, region=self.registry.region, qualifier=qualifier)
        headers = {
            "Lambda-Runtime-Aws-Request-Id": options.request_id,
            "Lambda-Runtime-Invoked-Function-Arn": invoked,
        }
        if options.log_tail:
            headers["X-Amz-Log-Type"] = "Tail"
        if options.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = options.client_context
        trace_header = handed_xray(options.trace_id)
        if trace_header:
            headers["Lambda-Runtime-Trace-Id"] = trace_header
        headers.update(options.carrier)
        propagate.inject(headers)
        return headers

    async def _send(
        self, url: str, payload: bytes, headers: dict[str, str], options: InvokeOptions
    ) -> InvokeResult:
        host, port = _host_port(url)
        try:
            reply = await self.upstream.post(
                host, port, "/invoke", payload, headers, request_id=options.request_id
            )
        except UpstreamUnreachable:
            raise
        except HeaderError as exc:
            # Callers validate what they forward; this is the boundary's own refusal, still 4xx.
            raise InvalidParameterValue(
                f"A header cannot be forwarded to the function: {exc}"
            ) from exc
        except UpstreamError as exc:
            raise ServiceError(f"The function instance could not be reached: {exc}") from exc
        if reply.status != 200:
            raise ServiceError(
                f"The function instance answered {reply.status}: {reply.body[:200]!r}"
            )
        return InvokeResult(
            request_id=options.request_id,
            payload=reply.body,
            function_error=reply.headers.get("x-amz-function-error"),
            log_result=reply.headers.get("x-amz-log-result"),
            cold_start=reply.headers.get("x-kfaas-cold-start") == "1",
            init_duration_seconds=_seconds(reply.headers.get("x-kfaas-init-duration-ms")),
            duration_seconds=0.0,
        )


@functools.lru_cache(maxsize=4096)
def _host_port(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 80


def _seconds(milliseconds: str | None) -> float | None:
    try:
        return float(milliseconds) / 1000 if milliseconds else None
    except ValueError:
        return None
