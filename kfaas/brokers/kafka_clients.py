"""The Kafka consumer and producer the pollers use, with aiokafka's errors translated.

The only module of the pollers that imports aiokafka. Partitions are `(topic, partition)` tuples
and messages plain dataclasses, so the poller above needs none of aiokafka's types; every aiokafka
error becomes a `SourceError`, `CommitError` or (when producing to an on-failure topic)
`DestinationError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from kfaas.pollers.errors import CommitError, DestinationError, SourceError

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


@contextmanager
def _translated(what: str, error: type[Exception] = SourceError) -> Iterator[None]:
    try:
        yield
    except (KafkaError, IllegalStateError, OSError) as exc:
        raise error(f"kafka: {what}: {exc!r}") from exc


def _partitions(tps: Any) -> list[Partition]:
    return sorted((tp.topic, tp.partition) for tp in tps)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, assigned: PartitionsCallback, revoked: PartitionsCallback) -> None:
        self.assigned = assigned
        self.revoked = revoked

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.revoked(_partitions(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.assigned(_partitions(assigned))


class KafkaConsumer:
    """A consumer-group member that commits only what it is told to."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        group_id: str,
        from_beginning: bool,
        client_id: str,
        max_records: int,
        on_assigned: PartitionsCallback,
        on_revoked: PartitionsCallback,
    ) -> None:
        self.topic = topic
        self.max_records = max_records
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            # Lambda's poller fetches up to 6 MB; the per-partition default (1 MB) is the bottleneck
            # for big batches.
            max_partition_fetch_bytes=6 * 1024 * 1024,
            fetch_max_bytes=50 * 1024 * 1024,
            # Batches may retry for a long time; processing happens outside poll, so the only
            # limit that matters is the heartbeat's session timeout.
            max_poll_interval_ms=24 * 3600 * 1000,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )
        self._listener = _Listener(on_assigned, on_revoked)

    async def start(self) -> None:
        with _translated("starting the consumer"):
            self._consumer.subscribe([self.topic], listener=self._listener)
            await self._consumer.start()

    async def stop(self) -> None:
        with _translated("stopping the consumer"):
            await self._consumer.stop()

    async def fetch(self, timeout_ms: int) -> list[KafkaMessage]:
        with _translated("fetching"):
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
        """Commit `next_offset` (the offset of the next record to read) for one partition."""
        try:
            await self._consumer.commit({TopicPartition(*partition): (next_offset, metadata)})
        except (CommitFailedError, IllegalStateError) as exc:
            raise CommitError(f"kafka: commit refused for {partition}: {exc!r}") from exc
        except (KafkaError, OSError) as exc:
            raise CommitError(f"kafka: commit failed for {partition}: {exc!r}") from exc

    def assignment(self) -> list[Partition]:
        return _partitions(self._consumer.assignment())

    def pause(self, partition: Partition) -> None:
        self._consumer.pause(TopicPartition(*partition))

    def resume(self, partition: Partition) -> None:
        self._consumer.resume(TopicPartition(*partition))

    def highwater(self, partition: Partition) -> int | None:
        value: int | None = self._consumer.highwater(TopicPartition(*partition))
        return value

    async def committed(self, partition: Partition) -> tuple[int | None, str]:
        """The group's committed offset for a partition and the metadata committed with it."""
        tp = TopicPartition(*partition)
        with _translated("reading committed offsets"):
            # The public committed() drops the metadata; the coordinator's answer keeps it.
            found = await self._consumer._coordinator.fetch_committed_offsets([tp])
        if tp not in found or found[tp].offset < 0:
            return None, ""
        return int(found[tp].offset), str(found[tp].metadata or "")


async def topic_partition_count(bootstrap_servers: str, topic: str) -> int | None:
    """Partitions of a topic, asked through a short-lived consumer without a group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)
    with _translated("reading topic metadata"):
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic)
        finally:
            await consumer.stop()
    return len(partitions) if partitions else None


class KafkaProducer:
    """Writes given-up records and failure records to an on-failure topic (acks=all)."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True
        )
        self._started = False
        self._lock = asyncio.Lock()

    async def _ensure_started(self) -> None:
        async with self._lock:
            if not self._started:
                with _translated("starting the producer", DestinationError):
                    await self._producer.start()
                self._started = True

    async def send(
        self,
        topic: str,
        messages: Sequence[tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]]]],
    ) -> None:
        """Send (key, value, headers) messages and wait until the broker has them all."""
        await self._ensure_started()
        with _translated(f"producing to {topic}", DestinationError):
            pending = [
                await self._producer.send(topic, value=value, key=key, headers=list(headers))
                for key, value, headers in messages
            ]
            await asyncio.gather(*pending)

    async def stop(self) -> None:
        if self._started:
            with _translated("stopping the producer", DestinationError):
                await self._producer.stop()
