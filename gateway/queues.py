"""Which ``AsyncQueue`` a ``--async-queue`` value names: the factory over the three queues.

Kept apart from ``asyncq`` (the seam, the in-memory queue and the pure parts the durable queues
share) so that the seam imports no queue built on it: ``redis_queue`` and ``kafka_queue`` import
``asyncq``, this module imports all three, and nothing imports back.
"""

from __future__ import annotations

from kfaas.brokers.kafka_security import KafkaSecurity

from .asyncq import AsyncQueue, MemoryQueue, parse_queue_url
from .kafka_queue import KafkaQueue
from .redis_queue import RedisQueue


def make_queue(
    raw: str,
    *,
    redelivery_seconds: float = 30.0,
    max_events: int = 10_000,
    max_bytes: int = 64 << 20,
    kafka_security: KafkaSecurity | None = None,
) -> AsyncQueue:
    """The queue a ``--async-queue`` value names, not yet started; ValueError if malformed.

    ``max_events`` and ``max_bytes`` bound the in-memory queue; the durable ones are bounded by
    their servers' own storage. A Kafka queue is the platform's: ``kafka_security`` is how the
    platform reaches its Kafka (KFAAS_KAFKA_*, ADR 027).
    """
    spec = parse_queue_url(raw)
    if spec.kind == "redis":
        return RedisQueue(spec, redelivery_seconds=redelivery_seconds)
    if spec.kind == "kafka":
        return KafkaQueue(spec, redelivery_seconds=redelivery_seconds, security=kafka_security)
    return MemoryQueue(max_events=max_events, max_bytes=max_bytes)
