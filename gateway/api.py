"""Lambda's Invoke API (``/2015-03-31/functions/...``) as boto3 and the AWS CLI speak it.

Invoke (RequestResponse 200, Event 202, DryRun 204); every other operation is one of the
management API's routes (``MANAGEMENT_ROUTES``, ADR 024). Paths are parsed from the raw URL
because botocore percent-encodes the function name (``ns%2Fname``, ``arn%3Aaws%3A...``) and a
decoded ``/`` must not split it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import urllib.parse
from collections.abc import Callable

from aiohttp import web
from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from kfaas import jsontext
from kfaas.manifests import Function
from kfaas.names import FunctionRef, InvalidFunctionName, QualifierMismatch, parse_function_name

from . import (
    auth,
    function_settings_api,
    functions_api,
    management,
    mappings_api,
    versions_api,
)
from .asyncq import AsyncEvent, QueueFull
from .errors import (
    InvalidParameterValue,
    InvalidRequestContent,
    TooManyRequests,
)
from .invoker import ASYNC_PAYLOAD_LIMIT, SYNC_PAYLOAD_LIMIT, InvokeOptions
from .limits import CAPACITY_REASON
from .middleware import REQUEST_ID
from .services import Services

PREFIX = "/2015-03-31/functions"
CLIENT_CONTEXT_LIMIT = 3583
# Payloads past this size are checked in a thread: a deeply nested one takes the slow path.
_INLINE_CHECK_BYTES = 64 * 1024
# X-Ray's `Root=...;Parent=...;Sampled=1`: printable ASCII key=value pairs; anything else is
# ignored, as Lambda starts a new trace for a header it cannot read.
_TRACE_HEADER = re.compile(
    r"[A-Za-z0-9_.-]+=[\x21-\x3a\x3c\x3e-\x7e]*(?:; ?[A-Za-z0-9_.-]+=[\x21-\x3a\x3c\x3e-\x7e]*)*"
)
_TRACE_HEADER_LIMIT = 2048


# Lambda's management operations (ADR 024), matched after the Invoke API's own.
MANAGEMENT_ROUTES: list[management.Route] = [
    *functions_api.ROUTES,
    *function_settings_api.ROUTES,
    *versions_api.ROUTES,
    *mappings_api.ROUTES,
]


def routes(services: Callable[[], Services]) -> list[web.RouteDef]:
    async def functions(request: web.Request) -> web.StreamResponse:
        return await _dispatch(services(), request)

    async def other(request: web.Request) -> web.StreamResponse:
        return await management.dispatch(services(), request, MANAGEMENT_ROUTES)

    # Each management route's first two segments (`/2019-09-25/functions`) as one prefix.
    prefixes = {"/" + "/".join(route.segments[:2]) for route in MANAGEMENT_ROUTES} - {PREFIX}
    return [
        web.route("*", PREFIX + "{tail:.*}", functions),
        *(web.route("*", prefix + "{tail:.*}", other) for prefix in sorted(prefixes)),
    ]


async def _dispatch(services: Services, request: web.Request) -> web.StreamResponse:
    raw = request.raw_path.split("?", 1)[0][len(PREFIX) :]
    parts = [urllib.parse.unquote(part) for part in raw.strip("/").split("/")] if raw else []
    parts = [part for part in parts if part] if parts != [""] else []
    method = request.method
    if len(parts) == 2 and parts[1] == "invocations" and method == "POST":
        await _authorize(services, request, parts[0], "invoke", "InvokeFunction")
        ref = _ref(services, request, parts[0])
        # `name:N`, `name:alias`, ?Qualifier= and qualified ARNs run exactly that version; an
        # alias draws its version here, once per invocation (an async one: when accepted).
        function = services.registry.resolve(ref)
        return await _invoke(services, request, function, ref.qualifier)
    return await management.dispatch(services, request, MANAGEMENT_ROUTES)


async def _authorize(
    services: Services, request: web.Request, raw_name: str, verb: str, action: str
) -> None:
    """Refuse a caller without ``verb`` on the function, whether or not the function exists."""
    try:
        ref = parse_function_name(raw_name, services.registry.default_namespace)
    except (InvalidFunctionName, QualifierMismatch) as exc:
        raise InvalidParameterValue(str(exc)) from exc
    await auth.authorize(
        request, auth.principal_of(request), verb, ref.namespace, ref.name,
        action=action, resource=services.registry.arn(ref.namespace, ref.name),
    )  # fmt: skip


def _ref(services: Services, request: web.Request, raw_name: str) -> FunctionRef:
    try:
        return parse_function_name(
            raw_name,
            services.registry.default_namespace,
            qualifier=request.query.get("Qualifier"),
        )
    except (InvalidFunctionName, QualifierMismatch) as exc:
        raise InvalidParameterValue(str(exc)) from exc


async def _invoke(
    services: Services, request: web.Request, function: Function, qualifier: str | None = None
) -> web.StreamResponse:
    request_id: str = request[REQUEST_ID]
    invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
    if invocation_type not in ("RequestResponse", "Event", "DryRun"):
        raise InvalidParameterValue(
            f"Invalid X-Amz-Invocation-Type {invocation_type!r}: "
            "expected RequestResponse, Event or DryRun"
        )
    limit = ASYNC_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT
    payload = await _check_json(await auth.signed_body(request, limit))
    if invocation_type == "DryRun":
        return web.Response(status=204, headers={"x-amzn-RequestId": request_id})
    if invocation_type == "Event":
        # The trace is decided when the event is accepted (ADR 030) and travels with it, so
        # every attempt of the event is part of the same trace.
        carrier: dict[str, str] = {}
        with services.invoker.tracing.span(
            "kfaas.gateway.accept",
            function.spec.tracing.mode,
            kind=SpanKind.PRODUCER,
            attributes={
                "faas.invoked_name": function.metadata.name,
                "faas.invocation_id": request_id,
            },
            xray=_trace_header(request.headers.get("X-Amzn-Trace-Id")),
        ):
            propagate.inject(carrier)
            event = AsyncEvent.new(function.key, payload, request_id=request_id, carrier=carrier)
            try:
                await services.async_queue.accept(event)
            except QueueFull as exc:
                services.metrics.refusals.labels("async_queue").inc()
                services.metrics.throttles.labels(*_labels(function)).inc()
                raise TooManyRequests(f"Rate Exceeded: {exc}", reason=CAPACITY_REASON) from exc
        services.metrics.async_received.labels(*_labels(function)).inc()
        return web.Response(status=202, headers={"x-amzn-RequestId": request_id})
    options = InvokeOptions(
        request_id=request_id,
        log_tail=request.headers.get("X-Amz-Log-Type") == "Tail",
        client_context=_client_context(request.headers.get("X-Amz-Client-Context")),
        trace_id=_trace_header(request.headers.get("X-Amzn-Trace-Id")),
        qualifier=qualifier,
    )
    result = await services.invoker.invoke(function.key, payload, options)
    headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": function.version}
    if result.function_error:
        headers["X-Amz-Function-Error"] = result.function_error
    if result.log_result is not None:
        headers["X-Amz-Log-Result"] = result.log_result
    return web.Response(body=result.payload, headers=headers, content_type="application/json")


async def _check_json(payload: bytes) -> bytes:
    """The payload if it is UTF-8 JSON text of any depth, else ``InvalidRequestContent`` (400)."""
    if not payload.strip():
        return b"{}"
    try:
        text = payload.decode("utf-8")
        if len(payload) > _INLINE_CHECK_BYTES:
            await asyncio.to_thread(jsontext.check, text)
        else:
            jsontext.check(text)
    except (jsontext.InvalidJson, UnicodeDecodeError) as exc:
        raise InvalidRequestContent(f"Could not parse request body into json: {exc}") from exc
    return payload


def _client_context(raw: str | None) -> str | None:
    """The decoded client context re-encoded as compact ASCII JSON, safe in a header."""
    if raw is None:
        return None
    if len(raw) > CLIENT_CONTEXT_LIMIT:
        raise InvalidParameterValue(
            f"Client context must be at most {CLIENT_CONTEXT_LIMIT} bytes (base64), got {len(raw)}"
        )
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
        jsontext.check(text)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestContent(f"Client context must be base64-encoded JSON: {exc}") from exc
    return jsontext.compact_ascii(text)


def _trace_header(value: str | None) -> str | None:
    if value is None or len(value) > _TRACE_HEADER_LIMIT or not _TRACE_HEADER.fullmatch(value):
        return None
    return value


def _labels(function: Function) -> tuple[str, str, str]:
    return function.metadata.namespace, function.metadata.name, function.version
