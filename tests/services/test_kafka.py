"""The Kafka fixture is a real broker: volume across partitions, offsets that outlive a restart."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.kafka_broker import KafkaBroker

pytestmark = pytest.mark.kafka

PARTITIONS = 3


async def _produce(bootstrap: str, topic: str, values: range) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        sent = [
            await producer.send(topic, str(n).encode(), partition=n % PARTITIONS) for n in values
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _consume(consumer: AIOKafkaConsumer, count: int) -> dict[int, list[int]]:
    """Exactly `count` records, grouped by partition in the order they arrived."""
    received: dict[int, list[int]] = defaultdict(list)
    total = 0
    async with asyncio.timeout(60):
        while total < count:
            batches = await consumer.getmany(timeout_ms=500)
            for partition, records in batches.items():
                received[partition.partition] += [int(record.value or b"") for record in records]
                total += len(records)
    return received


async def test_ten_thousand_records_across_three_partitions(kafka_service: KafkaBroker) -> None:
    topic = "services-volume"
    kafka_service.create_topic(topic, PARTITIONS)
    await _produce(kafka_service.bootstrap_servers, topic, range(10_000))

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_service.bootstrap_servers,
        group_id="services-volume",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        received = await _consume(consumer, 10_000)
    finally:
        await consumer.stop()

    assert sorted(received) == [0, 1, 2]
    for partition, values in received.items():
        # Each partition keeps the order in which its records were produced.
        assert values == list(range(partition, 10_000, PARTITIONS))


async def test_committed_offsets_survive_a_broker_restart(kafka_service: KafkaBroker) -> None:
    topic, group = "services-restart", "services-restart"
    bootstrap = kafka_service.bootstrap_servers
    kafka_service.create_topic(topic, PARTITIONS)
    await _produce(bootstrap, topic, range(300))

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        await _consume(consumer, 300)
        await consumer.commit()
    finally:
        await consumer.stop()

    await asyncio.to_thread(kafka_service.restart)
    assert kafka_service.bootstrap_servers == bootstrap

    await _produce(bootstrap, topic, range(300, 330))
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, partition) for partition in range(PARTITIONS)]
        assert [await consumer.committed(partition) for partition in partitions] == [100] * 3
        # The group resumes where it committed: only the records produced after the restart.
        received = await _consume(consumer, 30)
    finally:
        await consumer.stop()
    assert sorted(value for values in received.values() for value in values) == list(
        range(300, 330)
    )
