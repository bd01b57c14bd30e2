"""One Kafka consumer-group member of a mapping: a lane per assigned partition.

The fetch loop hands each partition's records to that partition's lane; a lane sends one batch at
a time (so order holds per partition) and commits the offset after the next record only once every
record before it succeeded, was filtered out or is on the on-failure destination. A lane with a
full backlog pauses its partition, so a slow function does not make the poller buffer the topic.

On a rebalance a revoked lane stops taking batches, gets a short grace to finish (and commit) the
batch in flight, and is then cancelled; it commits nothing after that, so a partition's new owner
starts from the last checkpoint. Retry counts are kept by the mapping, keyed by record position,
so a partition that comes back keeps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kfaas import aiokit
from kfaas.brokers.errors import BrokerError, DestinationError
from kfaas.brokers.kafka_clients import KafkaConsumer, KafkaMessage, Partition
from kfaas.brokers.kafka_security import KafkaSecurity
from kfaas.brokers.policies import poller_consumer

from .batches import BatchLimits, read_retry_note, retry_note, should_flush, take_batch
from .delivery import BatchDelivery, DeliveryConfig, Invoke, Position
from .destinations import Destination
from .filters import RecordFilter
from .kafka_events import encode_kafka_event, kafka_stream_record
from .metrics import PollerMetrics
from .records import StreamRecord

log = logging.getLogger("kfaas.pollers.kafka")

FETCH_TIMEOUT_MS = 100
REVOKE_GRACE_SECONDS = 5.0
LAG_EVERY_SECONDS = 5.0


@dataclass
class KafkaMappingState:
    """What the consumers of one mapping in this process share."""

    attempts: dict[Position, int] = field(default_factory=dict)
    lags: dict[Partition, int] = field(default_factory=dict)


@dataclass
class KafkaSettings:
    bootstrap_servers: str
    topic: str
    group_id: str
    from_beginning: bool
    limits: BatchLimits
    client_id: str
    # TLS/SASL as the mapping's Secrets said when this consumer started (None: PLAINTEXT).
    security: KafkaSecurity | None = None


class _PartitionSource:
    """The `Source` a lane gives delivery: events, commits and the on-failure destination."""

    kind: Literal["kafka"] = "kafka"

    def __init__(self, lane: _Lane, stream_arn: str, destination: Destination | None) -> None:
        self.lane = lane
        self.stream_arn = stream_arn
        self.destination = destination

    def event(self, records: Sequence[StreamRecord]) -> bytes:
        return encode_kafka_event(self.lane.poller.settings.bootstrap_servers, records)

    async def checkpoint(self, records: Sequence[StreamRecord]) -> None:
        await self.lane.commit(records[-1].position[2] + 1)

    async def retrying(self, records: Sequence[StreamRecord], failed_attempts: int) -> None:
        # The checkpoint stays where it is, now carrying the count, so the partition's next owner
        # (another process after a rebalance or a crash) goes on counting instead of restarting.
        offset = records[0].position[2]
        await self.lane.commit(offset, retry_note(offset, failed_attempts))

    async def dead_letter(self, records: Sequence[StreamRecord], failure: dict[str, Any]) -> bool:
        if self.destination is None:
            return False
        if self.lane.revoked:
            raise DestinationError("the partition was revoked")
        await self.destination.send(records, failure)
        return True


class _Lane:
    def __init__(self, poller: KafkaPoller, partition: Partition) -> None:
        self.poller = poller
        self.partition = partition
        self.queue: deque[tuple[StreamRecord, float]] = deque()
        self.arrived = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.stopping = False
        self.revoked = False
        self.paused = False
        self.committed: int | None = None
        source = _PartitionSource(self, poller.stream_arn, poller.destination)
        self.delivery = BatchDelivery(
            invoke=poller.invoke,
            source=source,
            config=poller.delivery_config,
            metrics=poller.metrics,
            attempts=poller.state.attempts,
        )
        self.task = asyncio.create_task(
            self._run(), name=f"kafka-lane-{partition[0]}-{partition[1]}"
        )

    def feed(self, record: StreamRecord, now: float) -> None:
        self.queue.append((record, now))
        self.arrived.set()

    async def commit(self, next_offset: int, metadata: str = "") -> None:
        if self.revoked:
            return
        try:
            await self.poller.consumer.commit(self.partition, next_offset, metadata)
            self.committed = next_offset
        except BrokerError as exc:
            # The next commit covers this one; a crash before it only means redelivery.
            self.poller.metrics.source_errors.labels(*self.poller.metrics.labels).inc()
            log.warning("commit failed (records may be delivered again): %s", exc)

    async def _run(self) -> None:
        limits = self.poller.settings.limits
        loop = asyncio.get_running_loop()
        while not self.stopping:
            if not self.queue:
                self.arrived.clear()
                await self.arrived.wait()
                continue
            first_seen = self.queue[0][1]
            while not self._stopped():
                waited = loop.time() - first_seen
                count = min(len(self.queue), limits.batch_size)
                size = sum(record.size for record, _ in list(self.queue)[:count])
                following = self.queue[count][0].size if len(self.queue) > count else None
                if should_flush(
                    count=count,
                    size_bytes=size,
                    next_size=following,
                    waited_seconds=waited,
                    limits=limits,
                ):
                    break
                self.arrived.clear()
                await aiokit.wait_event(self.arrived, max(limits.window_seconds - waited, 0.001))
            if self._stopped():
                break
            taken = take_batch([record.size for record, _ in self.queue], limits)
            batch = [self.queue.popleft()[0] for _ in range(taken)]
            self.poller.resume_if_drained(self)
            self.idle.clear()
            try:
                await self.delivery.deliver(batch, self.poller.keep)
            finally:
                self.idle.set()

    def _stopped(self) -> bool:
        return self.stopping

    async def stop(self, grace: float) -> None:
        """Finish the batch in flight within `grace` seconds, then stop committing and cancel."""
        self.stopping = True
        self.queue.clear()
        self.arrived.set()
        await aiokit.wait_event(self.idle, grace)
        self.revoked = True
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class KafkaPoller:
    def __init__(
        self,
        *,
        settings: KafkaSettings,
        invoke: Invoke,
        delivery_config: DeliveryConfig,
        metrics: PollerMetrics,
        state: KafkaMappingState,
        record_filter: RecordFilter,
        destination: Destination | None,
        stream_arn: str,
    ) -> None:
        self.settings = settings
        self.invoke = invoke
        self.delivery_config = delivery_config
        self.metrics = metrics
        self.state = state
        self.filter = record_filter
        self.destination = destination
        self.stream_arn = stream_arn
        self.lanes: dict[Partition, _Lane] = {}
        self.backlog_limit = max(2 * settings.limits.batch_size, 500)
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            topics=[settings.topic],
            group_id=settings.group_id,
            policy=poller_consumer(from_beginning=settings.from_beginning),
            client_id=settings.client_id,
            max_records=max(settings.limits.batch_size, 500),
            on_assigned=self._assigned,
            on_revoked=self._revoked,
            security=settings.security,
        )

    def keep(self, record: StreamRecord) -> bool:
        return self.filter.matches(record.filter_data)

    async def run(self) -> None:
        """Consume until cancelled; a BrokerError leaves (the supervisor starts a new member)."""
        await self.consumer.start()
        loop = asyncio.get_running_loop()
        next_lag = loop.time()
        try:
            while True:
                messages = await self.consumer.fetch(FETCH_TIMEOUT_MS)
                now = loop.time()
                self._feed(messages, now)
                self._check_lanes()
                if now >= next_lag:
                    next_lag = now + LAG_EVERY_SECONDS
                    self._report_lag()
        finally:
            # Cancelled (shutdown) or failed: let batches in flight finish and commit first.
            await self._stop_lanes(list(self.lanes), grace=REVOKE_GRACE_SECONDS)
            with contextlib.suppress(Exception):
                await self.consumer.stop()

    def _feed(self, messages: list[KafkaMessage], now: float) -> None:
        with_filter_data = self.filter.active
        counted = 0
        for message in messages:
            lane = self.lanes.get((message.topic, message.partition))
            if lane is None or lane.stopping:
                continue
            counted += 1
            lane.feed(_record(message, with_filter_data), now)
            if not lane.paused and len(lane.queue) >= self.backlog_limit:
                lane.paused = True
                self.consumer.pause(lane.partition)
        if counted:
            self.metrics.records.labels(*self.metrics.labels).inc(counted)

    def resume_if_drained(self, lane: _Lane) -> None:
        if lane.paused and len(lane.queue) < self.backlog_limit // 2 and not lane.stopping:
            lane.paused = False
            self.consumer.resume(lane.partition)

    def _check_lanes(self) -> None:
        for lane in self.lanes.values():
            if lane.task.done() and not lane.task.cancelled():
                error = lane.task.exception()
                raise RuntimeError(f"partition lane {lane.partition} died: {error!r}") from error

    def _report_lag(self) -> None:
        for partition, lane in self.lanes.items():
            high = self.consumer.highwater(partition)
            if high is None:
                continue
            position = lane.committed
            if position is None:
                position = lane.queue[0][0].position[2] if lane.queue else high
            self.state.lags[partition] = max(high - position, 0)
        self.metrics.offset_lag.labels(*self.metrics.labels).set(sum(self.state.lags.values()))
        self.metrics.activity.source_reached()

    async def _assigned(self, partitions: list[Partition]) -> None:
        log.info("partitions assigned: %s", partitions)
        for partition in partitions:
            if partition not in self.lanes:
                await self._resume_retry_count(partition)
                self.lanes[partition] = _Lane(self, partition)

    async def _resume_retry_count(self, partition: Partition) -> None:
        """Take over the retry count a previous owner committed with the checkpoint."""
        try:
            committed, metadata = await self.consumer.committed(partition)
        except BrokerError as exc:
            log.warning("cannot read the checkpoint of %s: %s", partition, exc)
            return
        attempts = read_retry_note(metadata, committed)
        if attempts and committed is not None:
            position = (*partition, committed)
            self.state.attempts[position] = max(self.state.attempts.get(position, 0), attempts)
            log.info("offset %d of %s already failed %d times", committed, partition, attempts)

    async def _revoked(self, partitions: list[Partition]) -> None:
        log.info("partitions revoked: %s", partitions)
        await self._stop_lanes(partitions, grace=REVOKE_GRACE_SECONDS)

    async def _stop_lanes(self, partitions: list[Partition], grace: float) -> None:
        lanes = [self.lanes.pop(p) for p in partitions if p in self.lanes]
        for partition in partitions:
            self.state.lags.pop(partition, None)
        await asyncio.gather(*(lane.stop(grace) for lane in lanes))


def _record(message: KafkaMessage, with_filter_data: bool) -> StreamRecord:
    return kafka_stream_record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=message.timestamp_ms,
        timestamp_type=message.timestamp_type,
        key=message.key,
        value=message.value,
        headers=message.headers,
        with_filter_data=with_filter_data,
    )
