"""The ``Delivery`` of the ``kfaas scheduler`` process: the gateway's Invoke API, type ``Event``.

EventBridge invokes Lambda asynchronously, and so does the scheduler: each tick is one
`POST {gateway}/2015-03-31/functions/{namespace}%2F{name}/invocations[?Qualifier=…]` with
`X-Amz-Invocation-Type: Event`, done once the gateway answers 202 (the event is in its queue;
the function's own failures are the gateway's to retry, as Lambda's are). Going through the
gateway, as the pollers do, keeps its routing, reserved concurrency and RBAC in the path: with
`--auth sigv4` the scheduler presents its ServiceAccount token (``kfaas.gateway_tokens``) and
needs `invoke` on the functions (the chart grants it).

The answer is translated here, once, into the engine's two failures (STYLE 9): 429, 408, a 5xx,
or no answer at all may pass and are ``RetryableDelivery``; any other 4xx (404 no such function,
400 a payload the gateway refuses, 413 too large, 401/403 not allowed) cannot change by trying
again and is ``RefusedDelivery``.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

from kfaas import wire
from kfaas.gateway_tokens import Authorization
from kfaas.upstream import UpstreamError, UpstreamPool

from .delivery import DeliveryError, RefusedDelivery, RetryableDelivery

INVOCATIONS = "/2015-03-31/functions/{function}/invocations"
# Statuses worth another attempt besides every 5xx: throttled, and the gateway's request timeout.
RETRYABLE = frozenset({408, 429})
# How much of a refusal's body is quoted in the message (a Lambda error is a small JSON object).
QUOTED_BYTES = 300


def invocation_path(base: str, namespace: str, function: str, qualifier: str | None) -> str:
    """The Invoke API path of ``namespace/function[:qualifier]`` under the gateway's ``base``."""
    path = base.rstrip("/") + INVOCATIONS.format(function=quote(f"{namespace}/{function}", safe=""))
    return path + (f"?Qualifier={quote(qualifier, safe='')}" if qualifier else "")


def answer_error(status: int, body: bytes, what: str) -> DeliveryError | None:
    """The failure an Invoke API answer means, or None when the event was accepted."""
    if 200 <= status < 300:
        return None
    message = f"{what}: the gateway answered {status} {_reason(body)}".rstrip()
    if status in RETRYABLE or status >= 500:
        return RetryableDelivery(message, status)
    return RefusedDelivery(message, status)


def _reason(body: bytes) -> str:
    """A Lambda error's type and message (``{"Type": …, "message": …}``), else the body's start."""
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    if isinstance(error, dict):
        parts = [error.get("Type") or error.get("__type"), error.get("message")]
        text = ": ".join(str(part) for part in parts if part)
        if text:
            return text[:QUOTED_BYTES]
    return body[:QUOTED_BYTES].decode("utf-8", "replace")


class HttpDelivery:
    """Invokes through the gateway at ``gateway_url`` (``http://host[:port][/prefix]``)."""

    def __init__(self, gateway_url: str, *, authorization: Authorization | None = None) -> None:
        parts = urlsplit(gateway_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"KFAAS_GATEWAY_URL={gateway_url!r} must be http://host[:port]")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.base = parts.path
        self.authorization = authorization
        self._pool = UpstreamPool(max_idle_per_host=4)

    async def invoke_async(
        self, namespace: str, function: str, qualifier: str | None, payload: bytes
    ) -> None:
        what = f"{namespace}/{function}" + (f":{qualifier}" if qualifier else "")
        path = invocation_path(self.base, namespace, function, qualifier)
        headers = {"X-Amz-Invocation-Type": "Event", "Content-Type": "application/json"}
        credential = self.authorization() if self.authorization else None
        if credential:
            headers["Authorization"] = credential
        try:
            # No deadline of its own: the engine bounds (cancels) each attempt.
            response = await self._pool.post(self.host, self.port, path, payload, headers)
        except (UpstreamError, OSError) as exc:
            raise RetryableDelivery(
                f"{what}: the gateway at {self.host}:{self.port} cannot be reached: {exc}", 0
            ) from exc
        except wire.HeaderError as exc:  # a token file holding a line break: nothing was sent
            raise RetryableDelivery(
                f"{what}: the gateway credential is unusable: {exc}", 0
            ) from exc
        error = answer_error(response.status, response.body, what)
        if error is not None:
            raise error

    async def close(self) -> None:
        self._pool.close()
