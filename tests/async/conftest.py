"""Queues under test: each test has its own Redis key prefix or Kafka topic on the real services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from services.kafka_broker import KafkaBroker
from services.redis_server import RedisServer

from kfaas.gateway.asyncq import AsyncQueue
from kfaas.gateway.queues import make_queue

QueueFactory = Callable[[], AsyncQueue]


def redis_queue_url(redis: RedisServer) -> str:
    return f"{redis.url}?prefix=kfaas-test:{uuid.uuid4().hex[:10]}"


def kafka_queue_url(kafka: KafkaBroker, partitions: int = 2) -> str:
    return (
        f"kafka://{kafka.bootstrap_servers}/async-{uuid.uuid4().hex[:10]}?partitions={partitions}"
    )


@pytest.fixture
def redis_queue(redis_service: RedisServer) -> str:
    return redis_queue_url(redis_service)


@pytest.fixture
def kafka_queue(kafka_service: KafkaBroker) -> str:
    return kafka_queue_url(kafka_service)


# The service is reached through getfixturevalue, out of sight of marking by fixture name: each
# parameter carries its service's marker, so `-m "not kafka"` deselects the Kafka half.
@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("kafka", marks=pytest.mark.kafka),
    ]
)
def queue_url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        return redis_queue_url(request.getfixturevalue("redis_service"))
    return kafka_queue_url(request.getfixturevalue("kafka_service"))


@pytest.fixture
async def open_queue(queue_url: str) -> AsyncIterator[Callable[..., AsyncQueue]]:
    """Start queues on one URL (the same group: like gateway replicas); all closed afterwards."""
    opened: list[AsyncQueue] = []

    async def factory(redelivery_seconds: float = 1.0) -> AsyncQueue:
        queue = make_queue(queue_url, redelivery_seconds=redelivery_seconds)
        await queue.start()
        opened.append(queue)
        return queue

    yield factory  # type: ignore[misc]
    for queue in opened:
        await queue.close()
