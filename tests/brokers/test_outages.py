"""How the broker package's users ride out an outage and give up on a mistake (ADR 019).

A port nobody listens on stands in for a broker that is down: no services are started here.
"""

from __future__ import annotations

import time

import pytest

from kfaas.brokers.destinations import DestinationWriter, platform_kafka, platform_redis
from kfaas.brokers.errors import BrokerError, BrokerUnavailable, DestinationError
from kfaas.brokers.policies import BLOCKING_READS, BOUNDED_CALLS
from kfaas.gateway.asyncq import QueueError, QueueUnavailable
from kfaas.gateway.durable import within_outage

# Nothing listens on port 1 of the loopback address: every connection is refused at once.
DOWN_REDIS = "redis://127.0.0.1:1/0"
DOWN_KAFKA = "127.0.0.1:1"


class Flaky:
    """Raises the given errors in turn, then answers "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


async def test_a_queue_call_is_retried_while_its_broker_is_unavailable() -> None:
    flaky = Flaky(BrokerUnavailable("redis: XADD: refused"), BrokerUnavailable("again"))
    assert await within_outage("redis queue", "enqueue", flaky, 5.0) == "done"
    assert flaky.calls == 3


async def test_a_refusal_is_a_queue_error_at_once() -> None:
    flaky = Flaky(BrokerError("redis: XADD: WRONGTYPE"))
    with pytest.raises(QueueError, match="redis queue could not enqueue: ") as raised:
        await within_outage("redis queue", "enqueue", flaky, 5.0)
    assert not isinstance(raised.value, QueueUnavailable)
    assert flaky.calls == 1


async def test_an_outage_past_the_deadline_makes_the_queue_unavailable() -> None:
    async def down() -> None:
        raise BrokerUnavailable("kafka: producing: refused")

    with pytest.raises(QueueUnavailable, match=r"within 0\.3 s") as raised:
        await within_outage("kafka queue", "enqueue", down, 0.3)
    assert isinstance(raised.value.__cause__, BrokerUnavailable)


async def test_the_gateway_s_sender_retries_a_down_redis_until_its_deadline() -> None:
    sender = DestinationWriter(redis_policy=BOUNDED_CALLS, retry_seconds=0.6)
    started = time.monotonic()
    try:
        with pytest.raises(DestinationError, match=r"not delivered within 0\.6 s") as raised:
            await sender.to_stream(DOWN_REDIS, "on-failure", [{"body": b"{}"}])
    finally:
        await sender.close()
    assert time.monotonic() - started >= 0.3  # retried, not given up on the first refusal
    assert isinstance(raised.value.__cause__, BrokerUnavailable)


async def test_the_pollers_sender_tries_once_and_leaves_the_retrying_to_its_caller() -> None:
    sender = DestinationWriter(redis_policy=BLOCKING_READS)
    try:
        with pytest.raises(DestinationError, match="redis stream 'dlq' at ") as raised:
            await sender.to_stream(DOWN_REDIS, "dlq", [{"a": "1"}, {"b": "2"}])
    finally:
        await sender.close()
    assert isinstance(raised.value.__cause__, BrokerUnavailable)


async def test_a_down_kafka_is_a_destination_error_naming_the_topic() -> None:
    sender = DestinationWriter(redis_policy=BLOCKING_READS)
    try:
        with pytest.raises(DestinationError, match=r"kafka topic 'dlq' at 127\.0\.0\.1:1"):
            await sender.to_topic(DOWN_KAFKA, "dlq", [(None, b"{}", ())])
    finally:
        await sender.close()


def test_a_destination_s_own_server_wins_over_the_platform_s() -> None:
    assert platform_kafka("mine:9092", "platform:9092", what="kafka destination 't'") == "mine:9092"
    assert platform_kafka(None, "platform:9092", what="kafka destination 't'") == "platform:9092"
    assert platform_redis(None, "redis://platform", what="redis destination 's'") == (
        "redis://platform"
    )


def test_without_either_the_message_names_what_to_set() -> None:
    with pytest.raises(DestinationError, match=r"needs bootstrapServers.*KFAAS_KAFKA_BOOTSTRAP"):
        platform_kafka(None, None, what="kafka destination 't'")
    with pytest.raises(DestinationError, match=r"needs a url.*KFAAS_REDIS_URL"):
        platform_redis("", None, what="redis destination 's'")
