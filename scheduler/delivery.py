"""How a tick reaches its function: the ``Delivery`` seam and its two failures (ADR 026).

The engine decides when to deliver, retry or give up; what a delivery is differs by role: the
``kfaas scheduler`` process calls the gateway's Invoke API over HTTP, ``kfaas dev`` hands the
event to its own gateway's asynchronous queue in process. Both are asynchronous invocations (the
Lambda ``Event`` type, as EventBridge invokes Lambda): a delivery is done once the event is
accepted, and the function's own errors are the gateway's to retry, as Lambda's are.

An implementation translates its failures (STYLE 9) into exactly these two, so the engine's retry
policy reads one vocabulary: ``RetryableDelivery`` for what may pass (throttled, a server error,
unreachable, the queue unavailable), ``RefusedDelivery`` for what trying again cannot change (no
such function, a payload refused).
"""

from __future__ import annotations

from typing import Protocol


class DeliveryError(Exception):
    """A delivery that failed; ``status`` is the HTTP status it maps to (0: no answer)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RetryableDelivery(DeliveryError):
    """Not delivered, and worth trying again: 429, 5xx, unreachable, the queue unavailable."""


class RefusedDelivery(DeliveryError):
    """Not delivered, and never will be as it stands: 404 (no such function), 400, 413."""


class Delivery(Protocol):
    async def invoke_async(
        self, namespace: str, function: str, qualifier: str | None, payload: bytes
    ) -> None:
        """Invoke ``namespace/function[:qualifier]`` asynchronously with ``payload``.

        Returns once the invocation is accepted; raises ``RetryableDelivery`` or
        ``RefusedDelivery``. It may be cancelled at any point (the engine bounds each attempt).
        """
        ...


def failure_reason(error: DeliveryError) -> str:
    """The ``reason`` label of ``kfaas_schedule_failures_total`` for a failed delivery."""
    if isinstance(error, RefusedDelivery):
        return "not_found" if error.status == 404 else "refused"
    if error.status == 429:
        return "throttled"
    return "unavailable"
