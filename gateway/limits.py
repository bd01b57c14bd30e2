"""The gateway's resource bounds: timeouts, the connection cap and the request-body memory budget.

Everything a client sends is held in the gateway's memory until it is answered, so each way of
holding something has a bound (ADR 010): a request head must arrive within the header timeout
and be at most ``MAX_HEAD_BYTES``, a body may neither stall longer than the body idle timeout nor
take longer than the body timeout, an idle keep-alive connection is closed, the connections open
at once are capped, and the request bodies held at once (read, or waiting for an instance) share
one byte budget. Past a bound a client that sent a request gets Lambda's throttling answer, 429
``TooManyRequestsException`` with a ``Reason`` and ``Retry-After``; a client cut off for slowness
gets 408. The pure parts (the budget, the canned answers) are tested on their own; the
per-connection bounds live in ``listeners``.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import StreamReader, web
from aiohttp.typedefs import Handler, Middleware

from kfaas.config import Settings
from kfaas.events import api_error_body

from .errors import ApiError, TooManyRequests
from .metrics import GatewayMetrics

# Lambda's reason for a throttle that is not one function's own limit: the platform is at capacity.
CAPACITY_REASON = "ConcurrentInvocationLimitExceeded"
RETRY_AFTER_SECONDS = 1
# Lambda's largest request: CreateFunction or UpdateFunctionCode with a 50 MiB zip in base64 JSON.
CODE_UPLOAD_LIMIT = 70_167_211
# Code uploads hold their bodies in a budget of their own, the size of one largest upload: the
# body, its JSON text, the decoded zip and the check's buffers make ~4 times the body at peak,
# which the gateway's memory limit (512 MiB by default) holds once. Past it: 429 and Retry-After,
# which botocore retries.
CODE_UPLOAD_BUDGET = CODE_UPLOAD_LIMIT
_API_VERSION = "2015-03-31"


def code_upload(request: web.BaseRequest) -> bool:
    """Whether the request is CreateFunction or UpdateFunctionCode (the routes taking a zip)."""
    parts = request.raw_path.split("?", 1)[0].strip("/").split("/")
    if parts[:2] != [_API_VERSION, "functions"]:
        return False
    if request.method == "POST":
        return len(parts) == 2
    return request.method == "PUT" and len(parts) == 4 and parts[3] == "code"


class RequestTimeout(ApiError):
    """A request body stalled, or took longer than the body timeout; the connection closes."""

    status = 408
    error_type = "RequestTimeoutException"


class BodyBudget:
    """Bytes of request bodies the whole process may hold at once."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.held_bytes = 0

    def reserve(self, size: int) -> bool:
        """Take ``size`` bytes of the budget; False (and nothing taken) if they are not there."""
        if self.held_bytes + size > self.limit_bytes:
            return False
        self.held_bytes += size
        return True

    def release(self, size: int) -> None:
        self.held_bytes = max(0, self.held_bytes - size)


class BodyHold:
    """What one request holds of the budget; all of it goes back when the request ends."""

    def __init__(
        self, budget: BodyBudget, limits: Settings, metrics: GatewayMetrics | None = None
    ) -> None:
        self.budget = budget
        self.metrics = metrics
        self.idle_timeout_seconds = limits.body_idle_timeout_seconds
        self.timeout_seconds = limits.body_timeout_seconds
        self.held_bytes = 0
        self._deadline: float | None = None

    async def read(self, content: StreamReader) -> bytes:
        """The next bytes of the body (b"" at its end); 408 when it stalls or takes too long."""
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = loop.time() + self.timeout_seconds
        left = self._deadline - loop.time()
        try:
            async with asyncio.timeout(min(self.idle_timeout_seconds, max(left, 0))):
                return await content.readany()
        except TimeoutError:
            if left <= self.idle_timeout_seconds:
                message = f"The request body took longer than {self.timeout_seconds:g} seconds"
            else:
                message = f"No request body bytes arrived for {self.idle_timeout_seconds:g} seconds"
            self._refused("body_timeout")
            raise RequestTimeout(message) from None

    def take(self, size: int) -> None:
        """Count ``size`` more bytes of this request's body; 429 when the budget has no room."""
        if not self.budget.reserve(size):
            self._refused("body_memory")
            raise TooManyRequests(
                "Rate Exceeded. The gateway holds as many request bodies as its memory budget "
                f"allows ({self.budget.limit_bytes} bytes); retry later.",
                reason=CAPACITY_REASON,
                retry_after_seconds=RETRY_AFTER_SECONDS,
            )
        self.held_bytes += size

    def release(self) -> None:
        self.budget.release(self.held_bytes)
        self.held_bytes = 0

    def _refused(self, bound: str) -> None:
        if self.metrics is not None:
            self.metrics.refusals.labels(bound).inc()


BODY_HOLD = web.RequestKey("body_hold", BodyHold)


def body_holds(limits: Settings, metrics: GatewayMetrics | None = None) -> Middleware:
    """A middleware giving each request a ``BodyHold`` that ``read_body`` counts against.

    It must wrap every middleware that reads a body (auth does), so it is chained right after
    request ids; a request is done with its body once its handler has answered.
    """

    budget = BodyBudget(limits.body_memory_bytes)
    uploads = BodyBudget(CODE_UPLOAD_BUDGET)
    if metrics is not None:
        metrics.body_bytes_held.set_function(lambda: budget.held_bytes + uploads.held_bytes)

    @web.middleware
    async def hold_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
        hold = BodyHold(uploads if code_upload(request) else budget, limits, metrics)
        request[BODY_HOLD] = hold
        try:
            return await handler(request)
        finally:
            hold.release()

    return hold_bodies


def canned_response(status: int, phrase: str, error: ApiError) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, for moments with no request object.

    Used before a request exists (a connection over the cap) or when its head never finished.
    """
    body = json.dumps(api_error_body(error.error_type, error.message, **error.extra)).encode()
    head = [f"HTTP/1.1 {status} {phrase}", f"x-amzn-ErrorType: {error.error_type}"]
    head += [f"{name}: {value}" for name, value in error.headers.items()]
    head += ["Content-Type: application/json", f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


OVER_CONNECTION_CAP = canned_response(
    429,
    "Too Many Requests",
    TooManyRequests(
        "Rate Exceeded. The gateway has as many connections open as it allows; retry later.",
        reason=CAPACITY_REASON,
        retry_after_seconds=RETRY_AFTER_SECONDS,
    ),
)
# A request head (request line and headers) may be this large: 64 KiB, as AWS's load balancers
# allow. aiohttp alone would take 128 header lines of 8 KiB each, a megabyte per connection.
MAX_HEAD_BYTES = 64 * 1024


class HeaderTooLarge(ApiError):
    status = 431
    error_type = "RequestHeaderFieldsTooLargeException"


HEADER_TOO_LARGE = canned_response(
    431,
    "Request Header Fields Too Large",
    HeaderTooLarge(f"The request head is larger than {MAX_HEAD_BYTES} bytes."),
)
HEADER_TIMEOUT = canned_response(
    408,
    "Request Timeout",
    RequestTimeout("The request head did not arrive within the header timeout."),
)
