"""The scheduler's loop: list Schedules, claim each due tick, deliver, retry, dead-letter (ADR 026).

Every replica runs the same loop over the same Schedules; none is a leader. A replica that finds
a tick due writes a claim into the Schedule's status with the resourceVersion it read as the
precondition: of replicas racing for one tick exactly one write succeeds, the others read a
Conflict and see the claim. The holder delivers, renews the claim while it retries, and finally
writes ``lastTick`` (also with the precondition, so a replica that lost its claim cannot write
over the one that took it). A replica that dies leaves its claim to expire; another takes the
tick over and delivers it again — counted, with the same event id — so no tick is lost across a
restart. What to do when is ``ticks.decide``/``after_failure``; this module only acts on it, and
what a worker does with one due tick (deliver, retry, dead-letter) is ``firing.py``'s.

Each Schedule with work gets a task of its own (one retrying with backoff must not hold up the
others); the loop lists every ``poll_seconds`` and sleeps until the earliest due time.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from collections.abc import Callable

from kfaas import aiokit
from kfaas.manifests import ManifestError
from kfaas.object_store import (
    SCHEDULES,
    Body,
    ObjectNotFound,
    ObjectStore,
    StoreError,
)
from kfaas.schedule_manifests import Schedule, ScheduleStatus, parse_date_time, parse_schedule

from . import ticks
from .claims import ClaimLost, ClaimWriter, Stale, status_of
from .dead_letters import DeadLetters
from .delivery import Delivery
from .firing import TickFiring
from .metrics import ScheduleMetrics
from .settings import SchedulerSettings

log = logging.getLogger("kfaas.scheduler")

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ScheduleEngine:
    """Fires the Schedules of ``objects`` (one namespace, or all) through ``delivery``.

    ``replica`` names this replica in claims (a pod name; stable for one process). ``run`` until
    cancelled; ``run_once`` is one listing pass (tests). Metrics go to ``metrics``' registry.
    """

    def __init__(
        self,
        objects: ObjectStore,
        delivery: Delivery,
        dead_letters: DeadLetters,
        *,
        replica: str,
        region: str,
        settings: SchedulerSettings | None = None,
        metrics: ScheduleMetrics | None = None,
        namespace: str | None = None,
        clock: Clock = utc_now,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.objects = objects
        self.delivery = delivery
        self.dead_letters = dead_letters
        self.replica = replica
        self.region = region
        self.settings = settings or SchedulerSettings()
        self.metrics = metrics or ScheduleMetrics()
        self.namespace = namespace
        self.clock = clock
        self.draw = draw
        self.claims = ClaimWriter(
            objects, replica=replica, claim_seconds=self.settings.claim_seconds, clock=clock
        )
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        # When the loop means to look next; a worker that finds its schedule due before then
        # wakes it (``_due_at``). What workers found while the loop was listing is in
        # ``_reported``: their schedules were skipped as busy, so the loop's plan lacks them.
        self._next_look = clock()
        self._reported: list[datetime.datetime] = []
        self.firing = TickFiring(
            self.claims, delivery, dead_letters, region=region, settings=self.settings,
            metrics=self.metrics, clock=clock, draw=draw,
        )  # fmt: skip

    async def run(self) -> None:
        """List, start workers, sleep until the earliest due time or the next poll; repeat."""
        try:
            while True:
                seconds = await self.run_once()
                self._next_look = self.clock() + datetime.timedelta(seconds=seconds)
                await aiokit.wait_event(self._wake, seconds)
                self._wake.clear()
        finally:
            await aiokit.stop_tasks(list(self._workers.values()), grace_seconds=0, log=log)
            self._workers.clear()

    async def run_once(self) -> float:
        """Start a worker for each Schedule with work to do; the seconds until the next look."""
        for key in [key for key, task in self._workers.items() if task.done()]:
            self._workers.pop(key)
        self._reported.clear()
        poll = self.settings.poll_seconds
        try:
            bodies = await self.objects.list(SCHEDULES, self.namespace)
        except StoreError as exc:
            log.warning("schedules not listed: %s", exc)
            return poll
        now = self.clock()
        wake = now + datetime.timedelta(seconds=poll)
        for body in bodies:
            key = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
            if key in self._workers:
                continue
            decision = self._decide(body, now)
            if decision is None:
                continue
            if isinstance(decision, ticks.Wait) and decision.status is None:
                if decision.until is not None:
                    wake = min(wake, decision.until)
                continue
            worker = asyncio.create_task(self._work(body), name=f"kfaas-schedule-{key}")
            worker.add_done_callback(self._worker_ended)
            self._workers[key] = worker
        wake = min([wake, *self._reported])
        return max(0.0, (wake - self.clock()).total_seconds())

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        if (error := task.exception()) is not None:
            log.error("%s failed", task.get_name(), exc_info=error)

    def _due_at(self, until: datetime.datetime | None) -> None:
        """A worker's schedule is next due at ``until``: the loop looks again by then.

        Only when that is before the loop's next look anyway: waking it after every worker
        made 2,000 ticks due together 2,000 listings of every Schedule. Never after a failure,
        which the next poll retries (a store refusing every write must not make a hot loop).
        """
        if until is None:
            return
        self._reported.append(until)
        if until < self._next_look:
            self._wake.set()

    def _decide(self, body: Body, now: datetime.datetime) -> ticks.Wait | ticks.Fire | None:
        parsed = self._parsed(body)
        if parsed is None:
            said = ticks.invalid(body, now)
            if said is not None and said.status is not None:
                log.warning("%s not run: %s", _key(body), said.status["message"])
            return said
        schedule, timeline, status = parsed
        generation = int(body["metadata"].get("generation") or 1)
        return ticks.decide(
            schedule, timeline, status, generation=generation, now=now, replica=self.replica
        )

    def _parsed(self, body: Body) -> tuple[Schedule, ticks.Timeline, ScheduleStatus] | None:
        metadata = body["metadata"]
        try:
            schedule = parse_schedule(body)
        except ManifestError:
            return None  # said in its status (ticks.invalid)
        try:
            status = status_of(body)
            created = parse_date_time(str(metadata["creationTimestamp"]))
        except (ValueError, KeyError) as exc:  # the store validated it: by hand
            log.error(
                "Schedule %s/%s not run: %s", metadata.get("namespace"), metadata.get("name"), exc
            )
            return None
        return schedule, ticks.timeline_of(schedule, str(metadata["uid"]), created), status

    # -- one schedule --------------------------------------------------------------------------

    async def _work(self, body: Body) -> None:
        """Act on one Schedule until nothing is due (its owed ticks oldest first), or until the
        store fails (the next poll tries again)."""
        while True:
            try:
                decision = self._decide(body, self.clock())
                if decision is None:
                    return
                if isinstance(decision, ticks.Wait):
                    if decision.status is not None:
                        await self.claims.write(body, decision.status)
                    self._due_at(decision.until)
                    return
                parsed = self._parsed(body)
                assert parsed is not None  # decided on the same body
                schedule, timeline, _ = parsed
                body = await self.firing.fire(body, schedule, timeline, decision)
            except Stale as stale:
                if isinstance(stale, ClaimLost):
                    log.warning("%s: the tick was taken over by another replica", _key(body))
                body = stale.body
            except ObjectNotFound:
                return  # deleted: nothing is owed
            except (StoreError, aiokit.DeadlinePassed) as exc:
                # The next look starts again from the store; a claim left behind is this
                # replica's, taken over then (counted as a redelivery).
                log.warning("%s: the store failed, trying again later: %s", _key(body), exc)
                return


def _key(body: Body) -> str:
    return f"{body['metadata']['namespace']}/{body['metadata']['name']}"
