"""One claimed tick of a Schedule: delivered with retries, or given up and dead-lettered (ADR 026).

The engine (``engine.py``) decides which Schedule has a tick due and runs a worker for it; this
is what the worker does with one ``ticks.Fire``: claim the tick, invoke the target (each attempt
bounded inside the claim's lease, at most ``max_deliveries`` in flight per replica), retry as
``ticks.after_failure`` says while renewing the claim, and finally write ``lastTick`` — after the
failure record is stored, or the tick is counted as missed when there is no dead-letter
destination. Every status write goes through the ``ClaimWriter``, with the resourceVersion read.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Callable
from typing import Any

from kfaas.brokers.errors import DestinationError
from kfaas.object_store import Body
from kfaas.schedule_manifests import Schedule

from . import ticks
from .claims import ClaimWriter
from .dead_letters import DeadLetters
from .delivery import Delivery, DeliveryError, RetryableDelivery, failure_reason
from .metrics import ScheduleMetrics
from .records import failure_record, missed_line, payload_of
from .settings import SchedulerSettings

log = logging.getLogger("kfaas.scheduler")

Clock = Callable[[], datetime.datetime]
TOO_OLD = "older than maximumEventAgeInSeconds before it was delivered"


class TickFiring:
    """Fires claimed ticks through ``delivery``, dead-letters them through ``dead_letters``."""

    def __init__(
        self,
        claims: ClaimWriter,
        delivery: Delivery,
        dead_letters: DeadLetters,
        *,
        region: str,
        settings: SchedulerSettings,
        metrics: ScheduleMetrics,
        clock: Clock,
        draw: Callable[[], float],
    ) -> None:
        self.claims = claims
        self.delivery = delivery
        self.dead_letters = dead_letters
        self.region = region
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.draw = draw
        self._deliveries = asyncio.Semaphore(settings.max_deliveries)
        # One attempt (a delivery, a dead-letter write) ends well inside the claim's lease.
        self.attempt_seconds = min(settings.claim_seconds / 3, 30.0)

    async def fire(
        self, body: Body, schedule: Schedule, timeline: ticks.Timeline, fire: ticks.Fire
    ) -> Body:
        """Claim ``fire.tick``, deliver it (or give it up), and record it done."""
        uid = str(body["metadata"]["uid"])
        generation = int(body["metadata"].get("generation") or 1)
        labels = schedule_labels(schedule)
        if fire.too_old and schedule.spec.dead_letter_config is None:
            # Nothing to send: the run of too-old ticks is given up in one write (no claim).
            last, count = ticks.too_old_run(schedule, timeline, fire.tick, self.clock())
            body = await self.claims.write(body, ticks.done_status(timeline, last, generation))
            self._missed(schedule, last, "EventAgeExceeded", fire.attempts, TOO_OLD, count)
            return body
        # The race: of the replicas that read the same resourceVersion one claim is written.
        attempts = fire.attempts + (0 if fire.too_old else 1)
        body = await self.claims.write(body, self.claims.claim(fire.tick, attempts))
        if fire.takeover:
            self.metrics.redeliveries.labels(*labels).inc()
        condition: ticks.Condition = "EventAgeExceeded"
        error, status_code = TOO_OLD, 0
        while not fire.too_old:
            try:
                await self._deliver(schedule, uid, fire.tick)
            except DeliveryError as exc:
                self.metrics.failures.labels(*labels, failure_reason(exc)).inc()
                step = ticks.after_failure(
                    schedule, tick=fire.tick, attempts=attempts,
                    retryable=isinstance(exc, RetryableDelivery), now=self.clock(),
                    base_seconds=self.settings.retry_base_seconds, draw=self.draw(),
                )  # fmt: skip
                if isinstance(step, ticks.GiveUp):
                    condition, error, status_code = step.condition, str(exc), exc.status
                    break
                body = await self.claims.pause(body, fire.tick, attempts, step.delay)
                attempts += 1  # counted in the claim before it is made: a takeover knows of it
                body = await self.claims.write(
                    body, self.claims.claim(fire.tick, attempts), keep=fire.tick
                )
                continue
            self.metrics.fires.labels(*labels).inc()
            late = (self.clock() - fire.due).total_seconds()
            self.metrics.delay.labels(*labels).observe(max(0.0, late))
            return await self.claims.write(
                body, ticks.done_status(timeline, fire.tick, generation), keep=fire.tick
            )
        if schedule.spec.dead_letter_config is None:
            self._missed(schedule, fire.tick, condition, attempts, error)
        else:
            record = failure_record(
                schedule, uid, fire.tick, region=self.region, condition=condition,
                attempts=attempts, status_code=status_code, error=error, now=self.clock(),
            )  # fmt: skip
            body = await self._dead_letter(body, schedule, record, fire.tick, attempts)
        return await self.claims.write(
            body, ticks.done_status(timeline, fire.tick, generation), keep=fire.tick
        )

    async def _deliver(self, schedule: Schedule, uid: str, tick: datetime.datetime) -> None:
        target = schedule.spec.target
        payload = payload_of(schedule, uid, tick, region=self.region)
        try:
            # The wait for a slot counts as the attempt's time: an attempt never outlasts its
            # share of the claim's lease, however many ticks came due together.
            async with asyncio.timeout(self.attempt_seconds), self._deliveries:
                await self.delivery.invoke_async(
                    schedule.metadata.namespace, target.function_name, target.qualifier, payload
                )
        except TimeoutError:
            raise RetryableDelivery(f"no answer within {self.attempt_seconds:g} s", 0) from None

    async def _dead_letter(
        self, body: Body, schedule: Schedule, record: dict[str, Any], tick: datetime.datetime,
        attempts: int,
    ) -> Body:  # fmt: skip
        """Write the failure record, trying until it is stored (the claim kept meanwhile)."""
        destination = schedule.spec.dead_letter_config
        assert destination is not None
        failures = 0
        while True:
            try:
                async with asyncio.timeout(self.attempt_seconds):
                    await self.dead_letters.send(
                        destination, record, namespace=schedule.metadata.namespace
                    )
            except (DestinationError, TimeoutError) as exc:
                failures += 1
                self.metrics.failures.labels(*schedule_labels(schedule), "dead_letter").inc()
                log.warning("%s: dead-letter write failed, retrying: %s", schedule.key, exc)
                delay = ticks.backoff_delay(failures, self.settings.retry_base_seconds, self.draw())
                body = await self.claims.pause(body, tick, attempts, delay)
                continue
            self.metrics.dead_letters.labels(*schedule_labels(schedule)).inc()
            return body

    def _missed(
        self,
        schedule: Schedule,
        tick: datetime.datetime,
        condition: str,
        attempts: int,
        error: str,
        count: int = 1,
    ) -> None:
        """Ticks given up with no dead-letter destination: counted and logged, never silent."""
        self.metrics.missed.labels(*schedule_labels(schedule)).inc(count)
        line = missed_line(schedule, tick, condition, attempts, error, count)
        log.warning("%s", json.dumps(line))


def schedule_labels(schedule: Schedule) -> tuple[str, str, str]:
    return schedule.metadata.namespace, schedule.metadata.name, schedule.spec.target.function_name
