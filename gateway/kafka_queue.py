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
was in flight — at least once). aiokafka's errors become ``QueueError``/``QueueUnavailable`` here.
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
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError

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
    guarded_task,
    stop_tasks,
    wait_event,
)

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
# The broker refuses session timeouts below group.min.session.timeout.ms (6 s by default).
_MIN_SESSION_MS = 6000


@dataclass(frozen=True)
class _Position:
    partition: TopicPartition
    offset: int
    generation: int


class KafkaQueue:
    def __init__(
        self,
        spec: QueueSpec,
        *,
        redelivery_seconds: float = 30.0,
        unavailable_seconds: float = 10.0,
    ) -> None:
        self.spec = spec
        self.topic = spec.name
        self.retry_topic = f"{spec.name}-retry"
        self.unavailable_seconds = unavailable_seconds
        session_ms = max(_MIN_SESSION_MS, int(redelivery_seconds * 1000))
        self._producer = AIOKafkaProducer(
            bootstrap_servers=spec.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=max(1000, int(unavailable_seconds * 1000)),
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=spec.bootstrap_servers,
            group_id=spec.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(500, session_ms // 4),
        )
        self._trackers: dict[TopicPartition, OffsetTracker] = {}
        self._generations: dict[TopicPartition, int] = {}
        self._positions: dict[str, _Position] = {}
        self._in_flight: dict[TopicPartition, set[int]] = {}
        # None wakes a taker when the queue closes.
        self._ready: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._takers = 0
        self._held: list[tuple[float, int, Delivery]] = []
        self._sequence = itertools.count()
        self._progress = asyncio.Event()
        self._commit_wanted = asyncio.Event()
        self._closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._create_topics()
            await self._producer.start()
            await self._consumer.start()
        except KafkaError as exc:
            await self._stop_clients()
            raise QueueUnavailable(
                f"kafka queue at {self.spec.bootstrap_servers} is unavailable: {exc}"
            ) from exc
        self._started = True
        self._consumer.subscribe([self.topic, self.retry_topic], listener=_Rebalance(self))
        self._tasks = [
            guarded_task("kfaas-async-kafka-fetcher", self._fetcher, log),
            guarded_task("kfaas-async-kafka-committer", self._committer, log),
        ]

    async def close(self) -> None:
        # The loops see the flag; cancelling alone is not enough, as a client library may
        # swallow a cancellation that lands inside one of its calls.
        self._closing.set()
        self._commit_wanted.set()
        for _ in range(self._takers):
            self._ready.put_nowait(None)
        await stop_tasks(self._tasks)
        self._tasks.clear()
        if self._started:
            with contextlib.suppress(KafkaError):
                await self._commit()
        await self._stop_clients()

    async def _stop_clients(self) -> None:
        # Leaving the group on stop hands our partitions over at once, not after a timeout.
        with contextlib.suppress(KafkaError):
            await self._consumer.stop()
        with contextlib.suppress(KafkaError):
            await self._producer.stop()

    async def _create_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.spec.bootstrap_servers)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [t for t in (self.topic, self.retry_topic) if t not in existing]
            if not missing:
                return
            cluster = await admin.describe_cluster()
            replication = min(3, len(cluster["brokers"]))
            topics = [NewTopic(t, self.spec.partitions, replication) for t in missing]
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(topics)
        finally:
            await admin.close()

    # -- the AsyncQueue seam -------------------------------------------------------------------

    async def accept(self, event: AsyncEvent) -> None:
        # Bounded by the server's storage, not by the gateway's memory.
        await self.put(event)

    async def put(self, event: AsyncEvent, delay: float = 0.0) -> None:
        if delay <= 0:
            topic, value = self.topic, encode_event(event)
        else:
            topic, value = self.retry_topic, encode_event(event, due_at=time.time() + delay)

        async def send() -> None:
            await self._producer.send_and_wait(topic, value)

        await self._retrying(f"enqueue on {topic}", send)

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
                batches = await self._consumer.getmany(timeout_ms=timeout_ms)
            except KafkaError as exc:
                log.warning("kafka queue unavailable while fetching: %s", exc)
                await asyncio.sleep(1.0)
                continue
            for partition, records in batches.items():
                self._accept(partition, records)

    def _accept(self, partition: TopicPartition, records: list[Any]) -> None:
        tracker = self._trackers.get(partition)
        if tracker is None:  # fetched just before a revocation
            return
        generation = self._generations[partition]
        tracker.taken(record.offset for record in records)
        now = time.time()
        for record in records:
            handle = f"{partition.topic}/{partition.partition}/{record.offset}/{generation}"
            try:
                event, due_at = decode_event(record.value or b"")
            except QueueError as exc:
                log.error(
                    "kafka queue: skipping malformed record %s/%s@%s: %s",
                    partition.topic,
                    partition.partition,
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
        pause = [
            tp for tp in assigned if ready_full or (held_full and tp.topic == self.retry_topic)
        ]
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
            except CommitFailedError as exc:
                log.info("kafka queue: commit skipped during a rebalance: %s", exc)
            except KafkaError as exc:
                log.warning("kafka queue: commit failed, retrying: %s", exc)
                await asyncio.sleep(1.0)

    async def _commit(self, partitions: set[TopicPartition] | None = None) -> None:
        offsets: dict[TopicPartition, int] = {}
        for partition, tracker in self._trackers.items():
            if partitions is not None and partition not in partitions:
                continue
            point = tracker.committable()
            if point is not None:
                offsets[partition] = point
        if not offsets:
            return
        await self._consumer.commit(offsets)
        for partition, point in offsets.items():
            if partition in self._trackers:
                self._trackers[partition].committed(point)

    # -- rebalances --------------------------------------------------------------------------

    def assigned(self, partitions: set[TopicPartition]) -> None:
        for partition in partitions:
            self._generations[partition] = self._generations.get(partition, 0) + 1
            self._trackers[partition] = OffsetTracker()
            self._in_flight[partition] = set()

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Let in-flight records of lost partitions finish (briefly), commit, then forget them."""
        deadline = time.monotonic() + _REVOKE_GRACE_SECONDS
        while any(self._in_flight.get(p) for p in partitions):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._progress.clear()
            await wait_event(self._progress, remaining)
        try:
            await self._commit(partitions)
        except KafkaError as exc:
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

    async def _retrying(self, what: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        deadline = time.monotonic() + self.unavailable_seconds
        delay = 0.05
        while True:
            try:
                return await operation()
            except KafkaError as exc:
                retriable = getattr(exc, "retriable", False) or "Timeout" in type(exc).__name__
                if not retriable and "Connection" not in type(exc).__name__:
                    raise QueueError(
                        f"kafka queue at {self.spec.bootstrap_servers} could not {what}: {exc!r}"
                    ) from exc
                if time.monotonic() + delay > deadline:
                    raise QueueUnavailable(
                        f"kafka queue at {self.spec.bootstrap_servers} could not {what} within "
                        f"{self.unavailable_seconds:g} s: {exc!r}"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, queue: KafkaQueue) -> None:
        self.queue = queue

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.queue.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.queue.assigned(set(assigned))
