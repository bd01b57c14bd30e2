"""Lambda's Runtime API (`2018-06-01`) for one worker slot, for awslambdaric and custom runtimes.

Paths, headers and status codes are Lambda's: `next` long-polls and answers the event with the
`Lambda-Runtime-*` headers (and `Content-Type: application/json`, without which awslambdaric hands
the handler raw bytes); `response`, `error` and `init/error` answer 202, 403 when the request id is
not the invocation in progress (or init is already over), and 413 for a response over the 6 MB
limit, which also fails the invocation with `Function.ResponseSizeTooLarge`.
"""

from __future__ import annotations

import json

from kfaas.runtime import errors
from kfaas.runtime.http11 import Request, Response
from kfaas.runtime.workers import WorkerSlot

PREFIX = "/2018-06-01/runtime"
_ACCEPTED = Response(202, b'{"status":"OK"}', {"Content-Type": "application/json"})


def _error(status: int, error_type: str, message: str) -> Response:
    body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
    return Response(status, body, {"Content-Type": "application/json"})


def error_payload(body: bytes, error_type: str | None) -> bytes:
    """What the caller sees for a posted error: the runtime's JSON, or one built around it."""
    try:
        value = json.loads(body) if body else None
    except ValueError:
        value = None
    if isinstance(value, dict):
        return body
    message = body.decode("utf-8", "replace") if body else ""
    return json.dumps(errors.error_body(error_type or "Unhandled", message)).encode()


class RuntimeApi:
    def __init__(self, slot: WorkerSlot) -> None:
        self._slot = slot

    async def __call__(self, request: Request) -> Response:
        if not request.path.startswith(PREFIX):
            return _error(404, "NotFound", f"no route for {request.path}")
        route = request.path[len(PREFIX) :].strip("/").split("/")
        if route == ["invocation", "next"]:
            if request.method != "GET":
                return _error(405, "MethodNotAllowed", "next is a GET")
            return await self._next()
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", "use POST")
        if route == ["init", "error"]:
            payload = error_payload(request.body, self._error_type(request))
            if self._slot.post_init_error(payload) == 202:
                return _ACCEPTED
            return _error(403, "InvalidStateTransition", "init is already complete")
        if len(route) == 3 and route[0] == "invocation" and route[2] in ("response", "error"):
            return self._result(request, route[1], route[2] == "error")
        return _error(404, "NotFound", f"no route for {request.path}")

    @staticmethod
    def _error_type(request: Request) -> str | None:
        return request.headers.get("lambda-runtime-function-error-type")

    async def _next(self) -> Response:
        invocation = await self._slot.next_invocation()
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
        }
        for name, value in (
            ("Lambda-Runtime-Trace-Id", invocation.trace_id),
            ("Lambda-Runtime-Client-Context", invocation.client_context),
            ("Lambda-Runtime-Cognito-Identity", invocation.cognito_identity),
            ("traceparent", invocation.traceparent),
            ("tracestate", invocation.tracestate),
        ):
            if value:
                headers[name] = value
        return Response(200, invocation.event, headers)

    def _result(self, request: Request, request_id: str, failed: bool) -> Response:
        too_large = 0
        if request.body_too_large:
            too_large = int(request.headers.get("content-length") or errors.MAX_RESPONSE_BYTES + 1)
        body = error_payload(request.body, self._error_type(request)) if failed else request.body
        status = self._slot.post_result(request_id, body, failed, too_large)
        if status == 202:
            return _ACCEPTED
        if status == 413:
            return _error(
                413,
                "RequestEntityTooLarge",
                f"Exceeded maximum allowed payload size ({errors.MAX_RESPONSE_BYTES} bytes).",
            )
        return _error(403, "InvalidStateTransition", f"{request_id} is not the current invocation")
