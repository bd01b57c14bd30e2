"""The Kafka clients kfaas uses — a consumer-group member, a producer, topic set-up.

Partitions are ``(topic, partition)`` tuples and records plain dataclasses, so the gateway's async
queue and the pollers above need none of aiokafka's types; every aiokafka error leaves as a
``kfaas.brokers.errors`` exception. The one rebalance adapter hands partitions assigned and revoked
to the member's owner as such tuples. Each client takes its cluster's ``KafkaSecurity`` and starts
through ``kafka_failures.start_explained``, so a refused password or an untrusted certificate is a
``KafkaAuthError`` saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from .errors import kafka_errors
from .kafka_failures import start_explained
from .kafka_security import KafkaSecurity, client_options
from .policies import ConsumerPolicy, open_consumer, open_producer

Partition = tuple[str, int]
PartitionsCallback = Callable[[list[Partition]], Awaitable[None]]


@dataclass(frozen=True)
class KafkaMessage:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def _partitions(tps: Any) -> list[Partition]:
    return sorted((tp.topic, tp.partition) for tp in tps)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, assigned: PartitionsCallback, revoked: PartitionsCallback) -> None:
        self.assigned = assigned
        self.revoked = revoked

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.revoked(_partitions(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.assigned(_partitions(assigned))


class KafkaConsumer:
    """A consumer-group member of ``topics`` that commits only what it is told to."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topics: Sequence[str],
        group_id: str,
        policy: ConsumerPolicy,
        on_assigned: PartitionsCallback,
        on_revoked: PartitionsCallback,
        client_id: str | None = None,
        max_records: int | None = None,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.topics = list(topics)
        self.max_records = max_records
        self.bootstrap_servers = bootstrap_servers
        self.security = security
        self._consumer = open_consumer(
            bootstrap_servers, group_id, policy, client_id=client_id, security=security
        )
        self._listener = _Rebalance(on_assigned, on_revoked)

    async def start(self) -> None:
        with kafka_errors("subscribing"):
            self._consumer.subscribe(self.topics, listener=self._listener)
        await start_explained(
            "starting the consumer",
            self.bootstrap_servers,
            self.security,
            self._consumer.start,
            self._consumer.stop,
        )

    async def stop(self) -> None:
        """Leave the group, which hands our partitions over at once, not after a timeout."""
        with kafka_errors("stopping the consumer"):
            await self._consumer.stop()

    async def fetch(self, timeout_ms: int) -> list[KafkaMessage]:
        """Records fetched within ``timeout_ms``, in offset order within each partition."""
        with kafka_errors("fetching"):
            batches = await self._consumer.getmany(
                timeout_ms=timeout_ms, max_records=self.max_records
            )
        return [
            KafkaMessage(
                topic=m.topic,
                partition=m.partition,
                offset=m.offset,
                timestamp_ms=m.timestamp,
                timestamp_type=m.timestamp_type,
                key=m.key,
                value=m.value,
                headers=tuple((name, data or b"") for name, data in m.headers or ()),
            )
            for records in batches.values()
            for m in records
        ]

    async def commit(self, partition: Partition, next_offset: int, metadata: str = "") -> None:
        """Commit ``next_offset`` (the offset of the next record to read) for one partition."""
        await self.commit_offsets({partition: (next_offset, metadata)})

    async def commit_offsets(self, offsets: Mapping[Partition, int | tuple[int, str]]) -> None:
        """Commit next offsets (with metadata, optionally) of several partitions at once."""
        with kafka_errors(f"committing {sorted(offsets)}"):
            await self._consumer.commit(
                {TopicPartition(*partition): point for partition, point in offsets.items()}
            )

    def assignment(self) -> list[Partition]:
        return _partitions(self._consumer.assignment())

    def pause(self, *partitions: Partition) -> None:
        self._consumer.pause(*(TopicPartition(*p) for p in partitions))

    def resume(self, *partitions: Partition) -> None:
        self._consumer.resume(*(TopicPartition(*p) for p in partitions))

    def highwater(self, partition: Partition) -> int | None:
        value: int | None = self._consumer.highwater(TopicPartition(*partition))
        return value

    async def committed(self, partition: Partition) -> tuple[int | None, str]:
        """The group's committed offset for a partition and the metadata committed with it."""
        tp = TopicPartition(*partition)
        with kafka_errors("reading committed offsets"):
            # The public committed() drops the metadata; the coordinator's answer keeps it.
            found = await self._consumer._coordinator.fetch_committed_offsets([tp])
        if tp not in found or found[tp].offset < 0:
            return None, ""
        return int(found[tp].offset), str(found[tp].metadata or "")


async def topic_partition_count(
    bootstrap_servers: str, topic: str, security: KafkaSecurity | None = None
) -> int | None:
    """Partitions of a topic, asked through a short-lived consumer without a group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, **client_options(security))
    await start_explained(
        "reading topic metadata", bootstrap_servers, security, consumer.start, consumer.stop
    )
    with kafka_errors("reading topic metadata"):
        try:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic)
        finally:
            await consumer.stop()
    return len(partitions) if partitions else None


async def ensure_topics(
    bootstrap_servers: str,
    topics: Sequence[str],
    partitions: int,
    security: KafkaSecurity | None = None,
) -> None:
    """Create those of ``topics`` that do not exist, replicated on up to three brokers."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_options(security))
    what = f"creating topics {', '.join(topics)}"
    await start_explained(what, bootstrap_servers, security, admin.start, admin.close)
    with kafka_errors(what):
        try:
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t not in existing]
            if not missing:
                return
            cluster = await admin.describe_cluster()
            replication = min(3, len(cluster["brokers"]))
            new = [NewTopic(t, partitions, replication) for t in missing]
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        finally:
            await admin.close()


KafkaMessageTuple = tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]]]


class KafkaProducer:
    """Writes records with ``acks=all``; opened on first use, so an unused one holds nothing."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        request_timeout_ms: int | None = None,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.request_timeout_ms = request_timeout_ms
        self.security = security
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if self._producer is None:  # checked before the lock: every send passes here
            async with self._lock:
                await self._open()

    async def _open(self) -> None:
        if self._producer is not None:
            return  # opened while we waited for the lock
        producer = open_producer(
            self.bootstrap_servers,
            request_timeout_ms=self.request_timeout_ms,
            security=self.security,
        )
        # A producer cannot be started again once stopped: the next attempt opens anew.
        await start_explained(
            "starting the producer",
            self.bootstrap_servers,
            self.security,
            producer.start,
            producer.stop,
        )
        self._producer = producer

    async def _started(self) -> AIOKafkaProducer:
        await self.start()
        assert self._producer is not None
        return self._producer

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None) -> None:
        """Write one record and wait until the broker has confirmed it."""
        producer = await self._started()
        with kafka_errors(f"producing to {topic}"):
            await producer.send_and_wait(topic, value, key=key)

    async def send_all(self, topic: str, messages: Sequence[KafkaMessageTuple]) -> None:
        """Write (key, value, headers) records and wait until the broker has them all."""
        producer = await self._started()
        with kafka_errors(f"producing to {topic}"):
            pending = [
                await producer.send(topic, value=value, key=key, headers=list(headers) or None)
                for key, value, headers in messages
            ]
            await asyncio.gather(*pending)

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with kafka_errors("stopping the producer"):
                await producer.stop()
