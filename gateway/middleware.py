"""One aiohttp middleware per concern, chained in ``app.py``: request ids, errors, tracing.

Each middleware does one thing so that a new concern (auth, limits) is one more function, not an
edit across handlers.
"""

from __future__ import annotations

import logging
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry import context, propagate, trace

from .errors import ApiError, RequestTooLarge, ServiceError, error_response
from .limits import BODY_HOLD

log = logging.getLogger("kfaas.gateway")
tracer = trace.get_tracer("kfaas.gateway")
REQUEST_ID = web.RequestKey("request_id", str)


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request Lambda's request id: the handler's ``aws_request_id`` equals it."""
    request[REQUEST_ID] = str(uuid.uuid4())
    return await handler(request)


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render ``ApiError``s as Lambda does; anything unexpected becomes a logged 500."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error, request[REQUEST_ID])
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(ServiceError("Internal error in the gateway"), request[REQUEST_ID])


@web.middleware
async def tracing(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Continue the caller's W3C trace (``traceparent``) in a server span for the request.

    A request without one gets no span here: whether a trace starts depends on the function it
    invokes (``tracing.mode``), which ``gateway/tracing.py`` decides once the request is routed.
    """
    if request.path in ("/healthz", "/readyz", "/metrics"):
        return await handler(request)
    parent = propagate.extract(dict(request.headers))
    if not trace.get_current_span(parent).get_span_context().is_valid:
        return await handler(request)
    token = context.attach(parent)
    try:
        with tracer.start_as_current_span(
            f"{request.method} {request.path}",
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.path},
        ) as span:
            response = await handler(request)
            span.set_attribute("http.response.status_code", response.status)
            return response
    finally:
        context.detach(token)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole request body, refused with 413 as soon as it passes ``limit`` bytes.

    The one place bodies are read, so the bounds of ``limits`` hold for every body: the bytes count
    against the process's body budget until the request ends (429 when it is spent), and a body
    that stalls longer than the body idle timeout, or takes longer than the body timeout, gets 408.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise RequestTooLarge(_too_large(declared, limit))
    hold = request.get(BODY_HOLD)
    reserved = 0
    if hold is not None and declared:
        hold.take(declared)
        reserved = declared
    chunks: list[bytes] = []
    size = 0
    while True:
        if hold is not None:
            chunk = await hold.read(request.content)
        else:
            chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(_too_large(size, limit))
        if hold is not None and size > reserved:
            hold.take(size - reserved)
            reserved = size
        chunks.append(chunk)


def _too_large(size: int, limit: int) -> str:
    return f"{size} byte payload is too large for the Invoke operation (max {limit} bytes)"
