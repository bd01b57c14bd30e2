"""The durable async queue on a Kafka topic (ADR 005).

Two topics: ``<topic>`` holds accepted events, ``<topic>-retry`` holds retries, each carrying the
wall-clock time it is due. Both are produced with ``acks=all`` and an idempotent producer, and the
gateway answers 202 only once the broker has confirmed the write. All gateway replicas consume both
topics in one consumer group, so partitions are shared among them.

Kafka commits one offset per partition, while dispatchers finish records out of order; the
``OffsetTracker`` commits only below the lowest record still outstanding. A retry record that is
not yet due is held (not committed) until it is, so a crash re-reads it from the retry topic and
never loses it. A dispatcher that dies stops heartbeating; after the session timeout its
partitions move to another replica, which resumes from the committed offsets (redelivering what
was in flight — at least once). Kafka is reached through ``kfaas.brokers`` (ADR 019); its errors
become ``QueueError``/``QueueUnavailable`` here (``durable.within_outage``). Every client of the
queue (topic set-up, producer, consumer) takes the platform's Kafka security (ADR 027).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from kfaas.aiokit import wait_event
from kfaas.brokers.errors import BrokerError, CommitRefused
from kfaas.brokers.kafka_clients import (
    KafkaConsumer,
    KafkaMessage,
    KafkaProducer,
    Partition,
    ensure_topics,
)
from kfaas.brokers.kafka_security import KafkaSecurity
from kfaas.brokers.policies import async_queue_consumer

from .asyncq import (
    ABANDONED_RETRY_SECONDS,
    AsyncEvent,
    Delivery,
    OffsetTracker,
    QueueError,
    QueueSpec,
    QueueUnavailable,
    decode_event,
    encode_event,
)
from .durable import QueueLoops, within_outage

log = logging.getLogger("kfaas.gateway.kafka_queue")

_T = TypeVar("_T")
_FETCH_TIMEOUT_MS = 200
_COMMIT_SECONDS = 0.5
# Records read ahead of the dispatchers; fetching pauses above this, keeping redelivery small.
_MAX_READY = 256
# Not-yet-due retries held in memory (still uncommitted in Kafka) before the retry topic pauses.
_MAX_HELD = 10_000
# A revoked partition's in-flight records get this long to finish before the new owner reruns them.
_REVOKE_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class _Position:
    partition: Partition
    offset: int
    generation: int


class KafkaQueue:
    def __init__(
        self,
        spec: QueueSpec,
        *,
        redelivery_seconds: float = 30.0,
        unavailable_seconds: float = 10.0,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.spec = spec
        self.security = security
        self.topic = spec.name
        self.retry_topic = f"{spec.name}-retry"
        self.unavailable_seconds = unavailable_seconds
        self._producer = KafkaProducer(
            spec.bootstrap_servers,
            request_timeout_ms=max(1000, int(unavailable_seconds * 1000)),
            security=security,
        )
        self._consumer = KafkaConsumer(
            bootstrap_servers=spec.bootstrap_servers,
            topics=[self.topic, self.retry_topic],
            group_id=spec.group,
            policy=async_queue_consumer(redelivery_seconds),
            on_assigned=self.assigned,
            on_revoked=self.revoked,
            security=security,
        )
        self._trackers: dict[Partition, OffsetTracker] = {}
        self._generations: dict[Partition, int] = {}
        self._positions: dict[str, _Position] = {}
        self._in_flight: dict[Partition, set[int]] = {}
        # None wakes a taker when the queue closes.
        self._ready: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._takers = 0
        self._held: list[tuple[float, int, Delivery]] = []
        self._sequence = itertools.count()
        self._progress = asyncio.Event()
        self._commit_wanted = asyncio.Event()
        self._loops = QueueLoops(log)
        self._closing = self._loops.closing
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await ensure_topics(
                self.spec.bootstrap_servers,
                [self.topic, self.retry_topic],
                self.spec.partitions,
                security=self.security,
            )
            await self._producer.start()
            await self._consumer.start()
        except BrokerError as exc:
            await self._stop_clients()
            raise QueueUnavailable(
                f"kafka queue at {self.spec.bootstrap_servers} is unavailable: {exc}"
            ) from exc
        self._started = True
        self._loops.start(
            {
                "kfaas-async-kafka-fetcher": self._fetcher,
                "kfaas-async-kafka-committer": self._committer,
            }
        )

    async def close(self) -> None:
        self._closing.set()
        self._commit_wanted.set()
        for _ in range(self._takers):
            self._ready.put_nowait(None)
        await self._loops.stop()
        if self._started:
            with contextlib.suppress(BrokerError):
                await self._commit()
        await self._stop_clients()

    async def _stop_clients(self) -> None:
        # Leaving the group on stop hands our partitions over at once, not after a timeout.
        with contextlib.suppress(BrokerError):
            await self._consumer.stop()
        with contextlib.suppress(BrokerError):
            await self._producer.stop()

    # -- the AsyncQueue seam -------------------------------------------------------------------

    async def accept(self, event: AsyncEvent) -> None:
        # Bounded by the server's storage, not by the gateway's memory.
        await self.put(event)

    async def put(self, event: AsyncEvent, delay: float = 0.0) -> None:
        if delay <= 0:
            topic, value = self.topic, encode_event(event)
        else:
            topic, value = self.retry_topic, encode_event(event, due_at=time.time() + delay)
        await self._within_outage(f"enqueue on {topic}", lambda: self._producer.send(topic, value))

    async def take(self) -> Delivery:
        while True:
            if self._closing.is_set():
                raise QueueError(f"kafka queue {self.topic} is closed")
            self._takers += 1
            try:
                delivery = await self._ready.get()
            finally:
                self._takers -= 1
            if delivery is None:
                continue
            position = self._positions.get(delivery.handle)
            if position is not None and self._current(position):
                self._in_flight.setdefault(position.partition, set()).add(position.offset)
                return delivery
            # Its partition went to another replica, which will deliver it from there.
            self._positions.pop(delivery.handle, None)

    async def done(self, delivery: Delivery) -> None:
        position = self._positions.pop(delivery.handle, None)
        if position is None:
            return
        self._in_flight.get(position.partition, set()).discard(position.offset)
        self._progress.set()
        if self._current(position):
            self._trackers[position.partition].done(position.offset)
            self._commit_wanted.set()

    async def abandon(self, delivery: Delivery) -> None:
        # A partition has one commit point: rather than block it, store the event again as a
        # short retry, then finish this record (stored first, so nothing is lost in between).
        try:
            await self.put(delivery.event, delay=ABANDONED_RETRY_SECONDS)
        except QueueError as exc:
            log.warning(
                "kafka queue: %s stays uncommitted until redelivered: %s",
                delivery.event.request_id,
                exc,
            )
            position = self._positions.pop(delivery.handle, None)
            if position is not None:
                self._in_flight.get(position.partition, set()).discard(position.offset)
            return
        await self.done(delivery)

    def _current(self, position: _Position) -> bool:
        return self._generations.get(position.partition) == position.generation

    # -- background loops --------------------------------------------------------------------

    async def _fetcher(self) -> None:
        while not self._closing.is_set():
            self._release_due()
            self._flow_control()
            timeout_ms = _FETCH_TIMEOUT_MS
            if self._held:
                until_due = self._held[0][0] - time.time()
                timeout_ms = max(1, min(timeout_ms, int(until_due * 1000)))
            try:
                messages = await self._consumer.fetch(timeout_ms)
            except BrokerError as exc:
                log.warning("kafka queue unavailable while fetching: %s", exc)
                await asyncio.sleep(1.0)
                continue
            batches: dict[Partition, list[KafkaMessage]] = {}
            for message in messages:
                batches.setdefault((message.topic, message.partition), []).append(message)
            for partition, records in batches.items():
                self._accept(partition, records)

    def _accept(self, partition: Partition, records: list[KafkaMessage]) -> None:
        tracker = self._trackers.get(partition)
        if tracker is None:  # fetched just before a revocation
            return
        generation = self._generations[partition]
        tracker.taken(record.offset for record in records)
        now = time.time()
        for record in records:
            handle = f"{partition[0]}/{partition[1]}/{record.offset}/{generation}"
            try:
                event, due_at = decode_event(record.value or b"")
            except QueueError as exc:
                log.error(
                    "kafka queue: skipping malformed record %s/%s@%s: %s",
                    partition[0],
                    partition[1],
                    record.offset,
                    exc,
                )
                tracker.done(record.offset)
                continue
            self._positions[handle] = _Position(partition, record.offset, generation)
            delivery = Delivery(event, handle)
            if due_at > now:
                heapq.heappush(self._held, (due_at, next(self._sequence), delivery))
            else:
                self._ready.put_nowait(delivery)

    def _release_due(self) -> None:
        now = time.time()
        while self._held and self._held[0][0] <= now:
            _, _, held = heapq.heappop(self._held)
            self._ready.put_nowait(held)

    def _flow_control(self) -> None:
        assigned = self._consumer.assignment()
        ready_full = self._ready.qsize() >= _MAX_READY
        held_full = len(self._held) >= _MAX_HELD
        pause = [tp for tp in assigned if ready_full or (held_full and tp[0] == self.retry_topic)]
        resume = [tp for tp in assigned if tp not in pause]
        if pause:
            self._consumer.pause(*pause)
        if resume:
            self._consumer.resume(*resume)

    async def _committer(self) -> None:
        while not self._closing.is_set():
            await wait_event(self._commit_wanted, _COMMIT_SECONDS)
            self._commit_wanted.clear()
            try:
                await self._commit()
            except CommitRefused as exc:
                log.info("kafka queue: commit skipped during a rebalance: %s", exc)
            except BrokerError as exc:
                log.warning("kafka queue: commit failed, retrying: %s", exc)
                await asyncio.sleep(1.0)

    async def _commit(self, partitions: set[Partition] | None = None) -> None:
        offsets: dict[Partition, int] = {}
        for partition, tracker in self._trackers.items():
            if partitions is not None and partition not in partitions:
                continue
            point = tracker.committable()
            if point is not None:
                offsets[partition] = point
        if not offsets:
            return
        await self._consumer.commit_offsets(offsets)
        for partition, point in offsets.items():
            if partition in self._trackers:
                self._trackers[partition].committed(point)

    # -- rebalances --------------------------------------------------------------------------

    async def assigned(self, partitions: list[Partition]) -> None:
        for partition in partitions:
            self._generations[partition] = self._generations.get(partition, 0) + 1
            self._trackers[partition] = OffsetTracker()
            self._in_flight[partition] = set()

    async def revoked(self, revoked: list[Partition]) -> None:
        """Let in-flight records of lost partitions finish (briefly), commit, then forget them."""
        partitions = set(revoked)
        deadline = time.monotonic() + _REVOKE_GRACE_SECONDS
        while any(self._in_flight.get(p) for p in partitions):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._progress.clear()
            await wait_event(self._progress, remaining)
        try:
            await self._commit(partitions)
        except BrokerError as exc:
            log.warning("kafka queue: could not commit revoked partitions: %s", exc)
        for partition in partitions:
            self._generations[partition] = self._generations.get(partition, 0) + 1
            self._trackers.pop(partition, None)
            self._in_flight.pop(partition, None)
        self._held = [entry for entry in self._held if self._still_held(entry[2])]
        heapq.heapify(self._held)

    def _still_held(self, delivery: Delivery) -> bool:
        position = self._positions.get(delivery.handle)
        if position is None or not self._current(position):
            self._positions.pop(delivery.handle, None)
            return False
        return True

    # -- errors ----------------------------------------------------------------------------------

    async def _within_outage(self, what: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``operation``, retrying while Kafka is unavailable for ``unavailable_seconds``."""
        where = f"kafka queue at {self.spec.bootstrap_servers}"
        return await within_outage(where, what, operation, self.unavailable_seconds)
