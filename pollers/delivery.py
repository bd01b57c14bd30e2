"""Delivering one ordered batch until every record is done: succeeded, filtered or dead-lettered.

This is the loop both pollers share. It invokes the function through the gateway, asks
`batches.next_step` what the outcome means, and acts: checkpoints the records that are done,
splits the batch, waits and retries, or sends records it gives up on to the on-failure destination.
Records are only ever reported done in order (the longest finished prefix of the batch), so a Kafka
commit never passes a record that is still being retried.

Retry state lives in `attempts`, keyed by record position and owned by the poller, not the batch:
a Kafka partition that is revoked and assigned back keeps its records' counts (LAMBDA.md, "What the
peers got wrong": retries must not restart at every rebalance).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import Link

from kfaas.brokers.errors import DestinationError

from .batches import (
    BatchResponse,
    Condition,
    RetryPolicy,
    backoff_delay,
    classify_status,
    is_expired,
    next_step,
    read_batch_response,
)
from .metrics import PollerMetrics
from .records import StreamRecord, failure_record

log = logging.getLogger("kfaas.pollers")
tracer = trace.get_tracer("kfaas.pollers")
MAX_LINKS = 128

Position = tuple[str, int, int]


@dataclass(frozen=True)
class InvokeAnswer:
    """The gateway's answer; status 0 means it could not be reached."""

    status: int
    payload: bytes
    function_error: str | None = None
    request_id: str = ""


class Invoke(Protocol):
    async def __call__(self, payload: bytes) -> InvokeAnswer: ...


class Source(Protocol):
    """What delivery needs from the source a batch came from."""

    @property
    def kind(self) -> Literal["kafka", "redis"]: ...

    @property
    def stream_arn(self) -> str: ...

    def event(self, records: Sequence[StreamRecord]) -> bytes:
        """The invocation payload (JSON) for these records."""

    async def checkpoint(self, records: Sequence[StreamRecord]) -> None:
        """Records (in order, following those checkpointed before) are done."""

    async def dead_letter(self, records: Sequence[StreamRecord], failure: dict[str, Any]) -> bool:
        """Send given-up records and their failure record; False when no destination is set."""

    async def retrying(self, records: Sequence[StreamRecord], failed_attempts: int) -> None:
        """These records (the first not done first) failed that often: keep it past a restart."""


@dataclass
class DeliveryConfig:
    policy: RetryPolicy
    report_item_failures: bool
    function_arn: str


class BatchDelivery:
    def __init__(
        self,
        *,
        invoke: Invoke,
        source: Source,
        config: DeliveryConfig,
        metrics: PollerMetrics,
        attempts: dict[Position, int],
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.invoke = invoke
        self.source = source
        self.config = config
        self.metrics = metrics
        self.attempts = attempts
        self.now_ms = now_ms
        self.sleep = sleep

    async def deliver(
        self,
        records: Sequence[StreamRecord],
        keep: Callable[[StreamRecord], bool] | None = None,
    ) -> None:
        """Return once every record is done and checkpointed (cancellation stops it anywhere).

        Records for which `keep` is false are filtered out: checkpointed, never delivered.
        """
        if not records:
            return
        progress = _Progress(list(records), self.source)
        wanted = [record for record in records if keep is None or keep(record)]
        if len(wanted) < len(records):
            kept = {id(record) for record in wanted}
            skipped = [record for record in records if id(record) not in kept]
            self.metrics.filtered.labels(*self.metrics.labels).inc(len(skipped))
            await progress.finish(skipped)
        if not wanted:
            return
        links = _links(wanted)
        # A batch whose records carry no producer's context starts no trace of its own: the
        # gateway then decides by the function's tracing.mode, as for any caller (ADR 030).
        batch_span = (
            tracer.start_as_current_span(
                f"{self.source.kind} batch",
                kind=trace.SpanKind.CONSUMER,
                links=links,
                attributes={
                    "messaging.system": self.source.kind,
                    "messaging.batch.size": len(wanted),
                },
            )
            if links
            else contextlib.nullcontext()
        )
        with batch_span:
            segments: deque[list[StreamRecord]] = deque([wanted])
            while segments:
                segment = segments.popleft()
                halves = await self._run(segment, progress)
                segments.extendleft(reversed(halves))
        for record in records:
            self.attempts.pop(record.position, None)

    async def _run(
        self, segment: list[StreamRecord], progress: _Progress
    ) -> list[list[StreamRecord]]:
        """Deliver one segment; returns halves to deliver next when it is bisected."""
        service_attempts = 0
        last: InvokeAnswer | None = None
        while True:
            segment = await self._drop_expired(segment, progress, last)
            if not segment:
                return []
            payload = self.source.event(segment)
            self._observe_age(segment)
            started = time.monotonic()
            answer = await self.invoke(payload)
            last = answer
            self.metrics.batches.labels(*self.metrics.labels).inc()
            self.metrics.batch_size.labels(*self.metrics.labels).observe(len(segment))
            self.metrics.invoke_duration.labels(*self.metrics.labels).observe(
                time.monotonic() - started
            )
            outcome = classify_status(answer.status, answer.function_error)
            response: BatchResponse | None = None
            if outcome == "success":
                response = read_batch_response(
                    answer.payload,
                    [record.item_id for record in segment],
                    report_item_failures=self.config.report_item_failures,
                )
                if response.invalid:
                    log.warning("batch failed: invalid batch response: %s", response.invalid)
            else:
                self.metrics.errors.labels(*self.metrics.labels, outcome).inc()
            service_attempts = service_attempts + 1 if outcome in _SERVICE else 0
            failed = max(self.attempts.get(record.position, 0) for record in segment)
            step = next_step(
                outcome=outcome,
                response=response,
                batch_length=len(segment),
                failed_attempts=failed,
                service_attempts=service_attempts,
                policy=self.config.policy,
            )
            if outcome == "success" and step.kind != "done":
                self.metrics.errors.labels(*self.metrics.labels, "batch_item_failures").inc()
                self.metrics.activity.batch_answered("batch_item_failures")
            else:
                self.metrics.activity.batch_answered(outcome)
            if step.kind == "done":
                await progress.finish(segment)
                return []
            if step.kind == "bisect":
                log.info("bisecting a failed batch of %d records", len(segment))
                return [segment[: step.split], segment[step.split :]]
            if step.kind == "give_up":
                await progress.finish(segment[: step.split])
                failing = segment[step.split :]
                self._count_attempt(failing)
                await self._give_up(failing, progress, step.condition, answer)
                return []
            if step.kind == "checkpoint":
                await progress.finish(segment[: step.split])
                segment = segment[step.split :]
            if step.counts_as_retry:
                self._count_attempt(segment)
                await self.source.retrying(
                    segment, max(self.attempts[record.position] for record in segment)
                )
            log.info(
                "retrying %d records in %.3fs (%s)",
                len(segment),
                step.delay,
                "batch item failures" if outcome == "success" else outcome,
                extra={"status": answer.status, "request_id": answer.request_id},
            )
            await self.sleep(step.delay)

    def _count_attempt(self, records: Sequence[StreamRecord]) -> None:
        for record in records:
            self.attempts[record.position] = self.attempts.get(record.position, 0) + 1

    def _observe_age(self, segment: Sequence[StreamRecord]) -> None:
        age = max(self.now_ms() - segment[-1].arrival_ms, 0) / 1000
        self.metrics.iterator_age.labels(*self.metrics.labels).set(age)

    async def _drop_expired(
        self, segment: list[StreamRecord], progress: _Progress, last: InvokeAnswer | None
    ) -> list[StreamRecord]:
        now = self.now_ms()
        expired = [
            record
            for record in segment
            if is_expired((now - record.arrival_ms) / 1000, self.config.policy)
        ]
        if not expired:
            return segment
        await self._give_up(expired, progress, "RecordAgeExceeded", last)
        gone = {id(record) for record in expired}
        return [record for record in segment if id(record) not in gone]

    async def _give_up(
        self,
        records: Sequence[StreamRecord],
        progress: _Progress,
        condition: Condition | None,
        answer: InvokeAnswer | None,
    ) -> None:
        failure = failure_record(
            source=self.source.kind,
            records=records,
            request_id=(answer.request_id if answer else "") or str(uuid.uuid4()),
            function_arn=self.config.function_arn,
            condition=condition or "RetryAttemptsExhausted",
            invoke_count=max(self.attempts.get(record.position, 0) for record in records),
            status_code=answer.status if answer else 0,
            function_error=answer.function_error if answer else None,
            stream_arn=self.source.stream_arn,
            now=datetime.now(UTC),
        )
        attempt = 0
        while True:
            try:
                sent = await self.source.dead_letter(records, failure)
                break
            except DestinationError as exc:
                attempt += 1
                self.metrics.destination_failures.labels(*self.metrics.labels).inc()
                delay = backoff_delay(attempt, self.config.policy.base_seconds)
                log.error(
                    "on-failure destination refused records, retrying in %.2fs: %s", delay, exc
                )
                await self.sleep(delay)
        if sent:
            self.metrics.dead_lettered.labels(*self.metrics.labels).inc(len(records))
            log.warning(
                "%d records sent to the on-failure destination (%s)",
                len(records),
                failure["requestContext"]["condition"],
            )
        else:
            self.metrics.dropped.labels(*self.metrics.labels).inc(len(records))
            log.warning("%d records dropped: no on-failure destination is set", len(records))
        await progress.finish(records)


_SERVICE = ("throttled", "service_error")


class _Progress:
    """Which records of a batch are done, and the checkpoint of the longest done prefix."""

    def __init__(self, records: list[StreamRecord], source: Source) -> None:
        self.records = records
        self.source = source
        self.done: set[int] = set()
        self.checkpointed = 0

    async def finish(self, records: Sequence[StreamRecord]) -> None:
        self.done.update(id(record) for record in records)
        end = self.checkpointed
        while end < len(self.records) and id(self.records[end]) in self.done:
            end += 1
        if end > self.checkpointed:
            newly = self.records[self.checkpointed : end]
            self.checkpointed = end
            await self.source.checkpoint(newly)


def _links(records: Sequence[StreamRecord]) -> list[Link]:
    links: list[Link] = []
    seen: set[tuple[int, int]] = set()
    for record in records:
        if not record.trace_headers:
            continue
        context = trace.get_current_span(extract(record.trace_headers)).get_span_context()
        identity = (context.trace_id, context.span_id)
        if context.is_valid and identity not in seen:
            seen.add(identity)
            links.append(Link(context))
            if len(links) >= MAX_LINKS:
                break
    return links
