"""Where a given-up tick's failure record goes: the schedule's ``deadLetterConfig`` (ADR 026).

A Schedule's dead-letter destination is a Kafka topic or a Redis stream, as a mapping's
``onFailure`` is (``StreamDestination``); without a server of its own it is the platform's Kafka or
Redis. The record is written exactly as the gateway writes an asynchronous invocation's
``onFailure`` record, through the gateway's own sender (``ClientDestinations``), so one consumer
reads both and there is one copy of the encoding. A write that fails raises ``DestinationError``;
the engine keeps the tick claimed and tries again: a given-up tick is never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from kfaas.brokers.destinations import ClientDestinations
from kfaas.brokers.kafka_security import KafkaSecurity, SecretReader
from kfaas.manifests import Destination, StreamDestination


class DeadLetters(Protocol):
    async def send(
        self, destination: StreamDestination, record: dict[str, Any], *, namespace: str
    ) -> None:
        """Write ``record`` to ``destination``; ``DestinationError`` if it was not stored.

        ``namespace`` is the Schedule's: a destination's Kafka ``tls``/``auth`` Secrets are there.
        """
        ...


class BrokerDeadLetters:
    """``DeadLetters`` over ``ClientDestinations`` (the gateway's, in ``kfaas dev``)."""

    def __init__(self, destinations: ClientDestinations) -> None:
        self.destinations = destinations

    @classmethod
    def to_platform(
        cls,
        *,
        redis_url: str | None,
        kafka_bootstrap_servers: str | None,
        deadline_seconds: float,
        kafka_security: KafkaSecurity | None = None,
        secrets: Callable[[str], SecretReader] | None = None,
    ) -> BrokerDeadLetters:
        """Writers of their own; destinations naming no server use the platform's, reached with
        the platform's Kafka security (KFAAS_KAFKA_*, ADR 027); ``secrets`` reads a namespace's
        Secrets, for a Kafka destination's own ``tls``/``auth``."""
        return cls(
            ClientDestinations(
                redis_url=redis_url,
                kafka_bootstrap_servers=kafka_bootstrap_servers,
                deadline_seconds=deadline_seconds,
                kafka_security=kafka_security,
                secrets=secrets,
            )
        )

    async def send(
        self, destination: StreamDestination, record: dict[str, Any], *, namespace: str
    ) -> None:
        # The same targets as an async invocation's destination (a function is not one here).
        target = Destination(kafka=destination.kafka, redis=destination.redis)
        await self.destinations.send(target, record, namespace=namespace)

    async def close(self) -> None:
        await self.destinations.close()
