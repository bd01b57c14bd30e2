"""Invoking a function through the gateway's Lambda Invoke API, as any other client does.

Pollers never reach instances directly: every batch passes the gateway's routing and concurrency
accounting (DESIGN, "Request paths"), so reserved concurrency and throttling hold for streams too.
Connection errors and timeouts become status 0, which the retry rules treat like a 5xx.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import aiohttp
from opentelemetry import propagate

from .delivery import InvokeAnswer

log = logging.getLogger("kfaas.pollers")
# Longer than the longest function timeout (900 s), so the gateway always answers first.
INVOKE_TIMEOUT_SECONDS = 960.0


class GatewayInvoker:
    """Calls `POST {gateway}/2015-03-31/functions/{namespace}%2F{name}/invocations`."""

    def __init__(self, gateway_url: str, namespace: str, name: str) -> None:
        function = quote(f"{namespace}/{name}", safe="")
        self.url = f"{gateway_url.rstrip('/')}/2015-03-31/functions/{function}/invocations"
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=INVOKE_TIMEOUT_SECONDS),
                connector=aiohttp.TCPConnector(limit=0, force_close=False),
            )
        return self._session

    async def __call__(self, payload: bytes) -> InvokeAnswer:
        headers = {"X-Amz-Invocation-Type": "RequestResponse", "Content-Type": "application/json"}
        # The current span is the poller's batch span: the gateway's span becomes its child.
        propagate.inject(headers)
        try:
            async with self._client().post(self.url, data=payload, headers=headers) as response:
                body = await response.read()
                return InvokeAnswer(
                    status=response.status,
                    payload=body,
                    function_error=response.headers.get("X-Amz-Function-Error"),
                    request_id=response.headers.get("x-amzn-RequestId", ""),
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("gateway unreachable at %s: %r", self.url, exc)
            return InvokeAnswer(status=0, payload=b"")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
