"""Invoking a function through the gateway's Lambda Invoke API, as any other client does.

Pollers never reach instances directly: every batch passes the gateway's routing and concurrency
accounting (DESIGN, "Request paths"), so reserved concurrency and throttling hold for streams too.
Connection errors and timeouts become status 0, which the retry rules treat like a 5xx.

The request goes over the gateway's own lean keep-alive HTTP/1.1 client (`kfaas.gateway.upstream`,
a leaf module with no other gateway imports): aiohttp's client cost more CPU per batch than
encoding the batch itself. Its credential comes from ``kfaas.gateway_tokens``.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote, urlsplit

from opentelemetry import propagate

from kfaas.gateway_tokens import Authorization
from kfaas.upstream import UpstreamError, UpstreamPool

from .delivery import InvokeAnswer

log = logging.getLogger("kfaas.pollers")
# Longer than the longest function timeout (900 s), so the gateway always answers first.
INVOKE_TIMEOUT_SECONDS = 960.0


class GatewayInvoker:
    """Calls `POST {gateway}/2015-03-31/functions/{namespace}%2F{name}/invocations`."""

    def __init__(
        self,
        gateway_url: str,
        namespace: str,
        name: str,
        *,
        authorization: Authorization | None = None,
    ) -> None:
        parts = urlsplit(gateway_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"KFAAS_GATEWAY_URL={gateway_url!r} must be http://host[:port]")
        self.host = parts.hostname
        self.port = parts.port or 80
        function = quote(f"{namespace}/{name}", safe="")
        self.path = f"{parts.path.rstrip('/')}/2015-03-31/functions/{function}/invocations"
        self.url = f"{gateway_url.rstrip('/')}{self.path}"
        self._pool = UpstreamPool(max_idle_per_host=4)
        self.authorization = authorization

    async def __call__(self, payload: bytes) -> InvokeAnswer:
        headers = {"X-Amz-Invocation-Type": "RequestResponse", "Content-Type": "application/json"}
        # The current span is the poller's batch span: the gateway's span becomes its child.
        propagate.inject(headers)
        credential = self.authorization() if self.authorization else None
        if credential:
            headers["Authorization"] = credential
        try:
            async with asyncio.timeout(INVOKE_TIMEOUT_SECONDS):
                response = await self._pool.post(self.host, self.port, self.path, payload, headers)
        except (UpstreamError, TimeoutError, OSError) as exc:
            log.warning("gateway unreachable at %s: %r", self.url, exc)
            return InvokeAnswer(status=0, payload=b"")
        return InvokeAnswer(
            status=response.status,
            payload=response.body,
            function_error=response.headers.get("x-amz-function-error"),
            request_id=response.headers.get("x-amzn-requestid", ""),
        )

    async def close(self) -> None:
        self._pool.close()
