"""One Redis stream consumer of a mapping: XREADGROUP, one batch in flight, XACK when done.

A consumer first takes back its own pending entries (a restart under the same name resumes where
it stopped), then reads new entries with XREADGROUP, batching up to `batchSize` entries for at most
`maximumBatchingWindowSeconds`. Every `claim_idle / 2` seconds it also reclaims, with XAUTOCLAIM,
entries another consumer of the group left pending for longer than `claim_idle` (a dead poller).
While entries are held (read ahead or in flight) their idle time is reset every few seconds, so a
live consumer retrying a slow batch is never robbed of it. Entries are acknowledged only after
success, filtering or dead-lettering, and a batch is only ever one consumer's, so order holds per
consumer; entries reclaimed from a dead consumer are delivered when they are found.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kfaas import aiokit
from kfaas.brokers.policies import BLOCKING_READS
from kfaas.brokers.redis_streams import Entry, RedisStreams

from .batches import BatchLimits, take_batch
from .delivery import BatchDelivery, DeliveryConfig, Invoke, Position
from .destinations import Destination
from .filters import RecordFilter
from .metrics import PollerMetrics
from .records import StreamRecord
from .sqs_events import decode_fields, encode_sqs_event, entry_sequence, redis_stream_record

log = logging.getLogger("kfaas.pollers.redis")

IDLE_BLOCK_MS = 1000
# On shutdown, how long the batch in flight may take to finish and be acknowledged.
DRAIN_SECONDS = 5.0
# On shutdown, how long the reader and the claim keeper may take to end once cancelled.
HELPER_STOP_SECONDS = 2.0


def resumed_failures(times_delivered: int) -> int:
    """Failed attempts a redelivered entry had: its delivery count less the first delivery and
    the redelivery that just happened (a crash without failures gives 0)."""
    return max(times_delivered - 2, 0)


async def drained(work: Coroutine[Any, Any, None], grace: float) -> None:
    """Await `work`; when cancelled, give it `grace` seconds to finish before cancelling it."""
    task = asyncio.create_task(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await aiokit.stop_tasks([task], grace_seconds=grace)
        raise


@dataclass
class RedisSettings:
    url: str
    stream: str
    group: str
    consumer: str
    from_beginning: bool
    limits: BatchLimits
    region: str
    # Entries pending this long with another consumer are taken over.
    claim_idle_seconds: float


class _StreamSource:
    kind: Literal["redis"] = "redis"

    def __init__(self, poller: RedisPoller) -> None:
        self.poller = poller
        self.stream_arn = poller.stream_arn

    def event(self, records: Sequence[StreamRecord]) -> bytes:
        # ApproximateReceiveCount grows with every attempt, as an SQS receive count does.
        attempts = self.poller.attempts
        for record in records:
            tried = attempts.get(record.position, 0)
            if tried:
                base = self.poller.received.get(record.item_id, 1)
                record.delivered["attributes"]["ApproximateReceiveCount"] = str(base + tried)
                record.reencode()
        return encode_sqs_event(records)

    async def checkpoint(self, records: Sequence[StreamRecord]) -> None:
        settings = self.poller.settings
        ids = [record.item_id for record in records]
        await self.poller.client.ack(settings.stream, settings.group, ids)
        for entry_id in ids:
            self.poller.received.pop(entry_id, None)
            self.poller.held.pop(entry_id, None)

    async def retrying(self, records: Sequence[StreamRecord], failed_attempts: int) -> None:
        # The group's delivery counter keeps the count (1 + failures): a consumer that takes the
        # entries over after a crash goes on counting from it.
        s = self.poller.settings
        await self.poller.client.set_delivery_count(
            s.stream, s.group, s.consumer, [r.item_id for r in records], failed_attempts + 1
        )

    async def dead_letter(self, records: Sequence[StreamRecord], failure: dict[str, Any]) -> bool:
        if self.poller.destination is None:
            return False
        await self.poller.destination.send(records, failure)
        return True


class RedisPoller:
    def __init__(
        self,
        *,
        settings: RedisSettings,
        invoke: Invoke,
        delivery_config: DeliveryConfig,
        metrics: PollerMetrics,
        attempts: dict[Position, int],
        record_filter: RecordFilter,
        destination: Destination | None,
        stream_arn: str,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.attempts = attempts
        self.filter = record_filter
        self.destination = destination
        self.stream_arn = stream_arn
        self.client = RedisStreams(settings.url, BLOCKING_READS)
        # Receive counts of the entries in hand, as Redis reported them when they were read.
        self.received: dict[str, int] = {}
        # Entries read and not yet acknowledged: their idle time is reset while they are held.
        self.held: dict[str, None] = {}
        self.delivery = BatchDelivery(
            invoke=invoke,
            source=_StreamSource(self),
            config=delivery_config,
            metrics=metrics,
            attempts=attempts,
        )

    def keep(self, record: StreamRecord) -> bool:
        return self.filter.matches(record.filter_data)

    async def run(self) -> None:
        """Consume until cancelled; a BrokerError leaves (the supervisor reconnects).

        One batch is read ahead while the previous one is delivered, so reading and encoding
        overlap the invocation; batches are still delivered one at a time, in order.
        """
        s = self.settings
        keeper = asyncio.create_task(self._keep_claimed(), name=f"redis-keep-{s.consumer}")
        reader: asyncio.Task[None] | None = None  # started once own pending entries are done
        try:
            await self.client.ensure_group(s.stream, s.group, "0" if s.from_beginning else "$")
            await self._drain_own_pending()
            ready: asyncio.Queue[list[StreamRecord]] = asyncio.Queue(maxsize=1)
            reading = asyncio.create_task(self._read_ahead(ready), name=f"redis-read-{s.consumer}")
            reader = reading
            while True:
                getter = asyncio.create_task(ready.get())
                await asyncio.wait({getter, reading, keeper}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    for helper in (reading, keeper):
                        if helper.done():
                            helper.result()
                    raise RuntimeError("the stream reader stopped")
                await drained(self._deliver(getter.result()), DRAIN_SECONDS)
        finally:
            helpers = [keeper] if reader is None else [keeper, reader]
            # Bounded: a helper that swallowed its cancellation ends when the client closes.
            await aiokit.stop_tasks(
                helpers, grace_seconds=0, cancelled_seconds=HELPER_STOP_SECONDS, log=log
            )
            await self.client.close()

    async def _read_ahead(self, ready: asyncio.Queue[list[StreamRecord]]) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        next_claim = loop.time() + s.claim_idle_seconds / 2
        while True:
            if loop.time() >= next_claim:
                await self._reclaim(ready)
                next_claim = loop.time() + s.claim_idle_seconds / 2
            batch = await self._collect(until=next_claim)
            if batch:
                await ready.put(batch)

    async def _drain_own_pending(self) -> None:
        s = self.settings
        start = "0"
        while True:
            entries = await self.client.read(
                s.stream, s.group, s.consumer, count=s.limits.batch_size, block_ms=None, start=start
            )
            if not entries:
                return
            log.info("resuming %d entries this consumer left pending", len(entries))
            start = entries[-1][0]
            await self._deliver(await self._records(entries, redelivered=True))

    async def _reclaim(self, ready: asyncio.Queue[list[StreamRecord]]) -> None:
        """Take over entries other consumers left idle, a batch at a time, into `ready`."""
        s = self.settings
        cursor = "0-0"
        idle_ms = int(s.claim_idle_seconds * 1000)
        while True:
            claimed = await self.client.autoclaim(
                s.stream,
                s.group,
                s.consumer,
                min_idle_ms=idle_ms,
                start=cursor,
                count=s.limits.batch_size,
            )
            cursor, entries = claimed.cursor, claimed.entries
            if entries:
                log.warning("reclaimed %d entries left pending by another consumer", len(entries))
                await ready.put(await self._records(entries, redelivered=True))
            if cursor in ("0-0", "0"):
                return

    async def _collect(self, until: float) -> list[StreamRecord]:
        """Read new entries into one batch: at most batchSize, for at most the window."""
        s = self.settings
        loop = asyncio.get_running_loop()
        batch: list[StreamRecord] = []
        deadline: float | None = None
        while len(batch) < s.limits.batch_size:
            now = loop.time()
            if deadline is None:
                block_ms = max(1, min(IDLE_BLOCK_MS, int((until - now) * 1000)))
            else:
                remaining = deadline - now
                if remaining <= 0:
                    break
                block_ms = max(1, int(remaining * 1000))
            entries = await self.client.read(
                s.stream,
                s.group,
                s.consumer,
                count=s.limits.batch_size - len(batch),
                block_ms=block_ms,
                start=">",
            )
            if entries:
                batch.extend(await self._records(entries, redelivered=False))
                if deadline is None:
                    deadline = loop.time() + s.limits.window_seconds
            elif deadline is None:
                break
            if sum(record.size for record in batch) >= s.limits.payload_bytes:
                break
        return batch

    async def _records(self, entries: list[Entry], *, redelivered: bool) -> list[StreamRecord]:
        s = self.settings
        counts: dict[str, int] = {}
        if redelivered:
            counts = await self.client.delivery_counts(s.stream, s.group, [e[0] for e in entries])
        now_ms = int(time.time() * 1000)
        records = []
        for entry_id, raw in entries:
            delivered = counts.get(entry_id, 1)
            # Reading it again counted one delivery more than the failures a previous holder
            # recorded (see `retrying`): resume counting retries from there.
            failed = resumed_failures(delivered) if redelivered else 0
            position = (s.stream, *entry_sequence(entry_id))
            if failed > self.attempts.get(position, 0):
                self.attempts[position] = failed
            self.received[entry_id] = delivered - self.attempts.get(position, 0)
            self.held[entry_id] = None
            records.append(
                redis_stream_record(
                    entry_id=entry_id,
                    fields=decode_fields(raw),
                    receive_count=counts.get(entry_id, 1),
                    first_receive_ms=now_ms,
                    stream=s.stream,
                    group=s.group,
                    stream_arn=self.stream_arn,
                    region=s.region,
                    with_filter_data=self.filter.active,
                )
            )
        self.metrics.records.labels(*self.metrics.labels).inc(len(records))
        return records

    async def _deliver(self, records: list[StreamRecord]) -> None:
        # The 6 MB cap: a read may bring more than fits in one invocation.
        while records:
            taken = take_batch([record.size for record in records], self.settings.limits)
            batch, records = records[:taken], records[taken:]
            await self.delivery.deliver(batch, self.keep)

    async def _keep_claimed(self) -> None:
        s = self.settings
        every = max(s.claim_idle_seconds / 3, 0.05)
        while True:
            await asyncio.sleep(every)
            if self.held:
                await self.client.keep_claimed(s.stream, s.group, s.consumer, list(self.held))
            pending, lag = await self.client.group_backlog(s.stream, s.group)
            self.metrics.pending.labels(*self.metrics.labels).set(pending)
            if lag is not None:
                self.metrics.offset_lag.labels(*self.metrics.labels).set(lag)
            self.metrics.activity.source_reached()
