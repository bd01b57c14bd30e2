"""HTTP triggers: ``ANY /fn/{namespace}/{name}[/{path...}]`` as API Gateway HTTP API payload 2.0.

Only functions with ``http.enabled`` answer (like a function URL). ``rawPath`` is the part after the
function's prefix. The function's reply is mapped back with the 2.0 response format.
``/fn/{namespace}/{name}:{qualifier}`` runs a published version or an alias (drawn per request),
with that version's own ``http`` settings, as a Lambda function URL on an alias does.
``http.cors`` is applied here, around auth and the invocation (cors.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from aiohttp import web

from kfaas.events import http_api_event, http_response_from_result
from kfaas.manifests import Cors, Function
from kfaas.names import FunctionRef

from . import cors
from .errors import ApiError, ResourceNotFound, error_response
from .invoker import SYNC_PAYLOAD_LIMIT, InvokeOptions
from .middleware import REQUEST_ID, read_body
from .services import Services

log = logging.getLogger("kfaas.gateway")


def routes(services: Callable[[], Services]) -> list[web.RouteDef]:
    async def trigger(request: web.Request) -> web.StreamResponse:
        return await _trigger(services(), request)

    return [
        web.route("*", "/fn/{namespace}/{name}", trigger),
        web.route("*", "/fn/{namespace}/{name}/{path:.*}", trigger),
    ]


async def _trigger(services: Services, request: web.Request) -> web.StreamResponse:
    namespace, named = request.match_info["namespace"], request.match_info["name"]
    name, _, qualifier = named.partition(":")
    function = services.registry.resolve(FunctionRef(namespace, name, qualifier or None))
    key = function.key
    http = function.spec.http
    if not http.enabled:
        raise ResourceNotFound(f"Function {key} has no HTTP trigger (spec.http.enabled is false)")
    request_id: str = request[REQUEST_ID]
    origins = request.headers.getall("Origin", [])
    if http.cors is None:
        return await _invoke(services, request, function, qualifier or None, origins)
    # Before auth: a browser's preflight carries no credentials (ADR 029).
    request_methods = request.headers.getall("Access-Control-Request-Method", [])
    if cors.is_preflight(request.method, origins, request_methods):
        requested = request.headers.getall("Access-Control-Request-Headers", [])
        reply = web.Response(status=200)
        for header, value in cors.preflight_headers(http.cors, origins, request_methods, requested):
            reply.headers.add(header, value)
        reply.headers["x-amzn-RequestId"] = request_id
        return reply
    try:
        return await _invoke(services, request, function, qualifier or None, origins)
    except ApiError as error:
        # A throttle or an oversized body, answered so that the page can read it.
        return _with_cors(error_response(error, request_id), http.cors, origins)


async def _invoke(
    services: Services,
    request: web.Request,
    function: Function,
    qualifier: str | None,
    origins: list[str],
) -> web.Response:
    key, http = function.key, function.spec.http
    request_id: str = request[REQUEST_ID]
    # Before the body is read: an unauthenticated caller costs no buffering (trigger_auth.py).
    verdict = await services.trigger_auth.check(function, request, request_id)
    if verdict.refusal is not None:
        return _with_cors(verdict.refusal, http.cors, origins)
    body = (
        verdict.body if verdict.body is not None else await read_body(request, SYNC_PAYLOAD_LIMIT)
    )
    # After `/fn/{namespace}/{name}` as sent (a qualifier's `$` may arrive percent-encoded).
    segments = request.raw_path.split("?", 1)[0].split("/", 4)
    raw_path = "/" + segments[4] if len(segments) > 4 else "/"
    peer = request.remote or "127.0.0.1"
    event = http_api_event(
        method=request.method,
        raw_path=raw_path,
        raw_query=request.query_string,
        headers=list(request.headers.items()),
        body=body,
        source_ip=peer,
        request_id=request_id,
        domain_name=request.host,
        authorizer=verdict.authorizer,
        now_ms=int(time.time() * 1000),
    )
    payload = json.dumps(event).encode()
    options = InvokeOptions(request_id=request_id, qualifier=qualifier)
    result = await services.invoker.invoke(key, payload, options)
    if result.function_error:
        failed = web.Response(
            status=502,
            body=b'{"message":"Internal Server Error"}',
            content_type="application/json",
            headers={"x-amzn-RequestId": request_id},
        )
        return _with_cors(failed, http.cors, origins)
    response = http_response_from_result(result.payload)
    if response.problem is not None:
        # One line: `problem` quotes the function's values with repr, so CR/LF stay escaped.
        log.warning("HTTP trigger %s answered 502: %s", key, response.problem)
    reply = web.Response(status=response.status, body=response.body)
    headers = response.headers if http.cors is None else cors.without_cors(response.headers)
    for header, value in headers:
        reply.headers.add(header, value)
    reply.headers["x-amzn-RequestId"] = request_id
    return _with_cors(reply, http.cors, origins)


def _with_cors(reply: web.Response, config: Cors | None, origins: list[str]) -> web.Response:
    """Every answer through the trigger (refusals too) carries the configured CORS headers."""
    if config is not None:
        for header, value in cors.response_headers(config, origins):
            reply.headers.add(header, value)
    return reply
