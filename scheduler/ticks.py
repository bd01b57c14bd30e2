"""Which tick a schedule owes, when it is due, and what to do about it — ADR 026's rules, no I/O.

The engine reads a Schedule and its status, asks ``decide`` what follows, and does it: wait (with
a status write first, if the status is behind), or claim a tick and deliver it. After a failed
delivery it asks ``after_failure`` whether to retry (after how long) or give up, and with which of
Lambda's conditions. Keeping the rules here makes them testable without a store or a clock:

- A schedule's ticks are its expression's fire times, the first strictly after its creation (or
  from its ``startDate`` on, when that is later), up to its ``endDate``; a rate counts from its
  start date, else its creation. A tick is *due* at tick + its flexible offset (a hash of the uid
  and the tick, so every replica agrees).
- ``status.lastTick`` is the last tick done (delivered or given up); the ticks after it that are
  due are owed, and handled oldest first (the catch-up rule). One older than the retry policy's
  maximum event age is given up at once.
- A claim (``status.claim``) names the tick a replica is delivering; another replica waits until
  it expires, then takes the tick over (a redelivery: it may have been delivered already).
- DISABLED: no ticks, and ``lastTick`` moves to when that was noticed, so re-enabling does not
  replay the disabled period. No tick left (an ``at`` done, ``endDate`` passed): COMPLETED.
- INVALID: a spec the API server accepted (CEL checks an expression's shape only) that the parser
  refuses; the status says why, nothing fires, and the fix is treated like a re-enabling.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from kfaas.manifests import ManifestError
from kfaas.schedule_expressions import ScheduleExpression, flexible_offset, time_zone
from kfaas.schedule_manifests import (
    Schedule,
    ScheduleStatus,
    TickClaim,
    parse_date_time,
    parse_schedule,
)

Status = dict[str, Any]
Condition = Literal["RetriesExhausted", "EventAgeExceeded"]

_MICROSECOND = datetime.timedelta(microseconds=1)
# EventBridge's retries back off from about 1 s to at most 60 s; the base scales both.
_MAX_BACKOFF_FACTOR = 60.0


def stamp(moment: datetime.datetime) -> str:
    """``moment`` as the status keeps it: RFC 3339 in UTC, ``Z``, microseconds when it has any
    (a tick read back must be the very same instant, or its successor would be computed from an
    earlier one and the tick delivered twice)."""
    utc = moment.astimezone(datetime.UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def event_time(tick: datetime.datetime) -> str:
    """A tick as the Scheduled Event's ``time``: ``2026-11-29T22:00:00Z``, to the second."""
    return tick.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Timeline:
    """When one schedule's ticks are and when each is due."""

    expression: ScheduleExpression
    zone: ZoneInfo
    # Where a rate's periods start: the start date, else the creation.
    anchor: datetime.datetime
    created: datetime.datetime
    start: datetime.datetime | None
    end: datetime.datetime | None
    # The schedule's uid: what the flexible offset and the event ids are derived from.
    uid: str
    window_minutes: int

    def next_tick(self, after: datetime.datetime | None) -> datetime.datetime | None:
        """The first tick after ``after`` (None: after the creation); None when none is left."""
        floor = after or self.created
        if self.start is not None and self.start > floor:
            floor = self.start - _MICROSECOND  # a tick exactly at the start date counts
        tick = self.expression.next_after(floor, tz=self.zone, anchor=self.anchor)
        if tick is None or (self.end is not None and tick > self.end):
            return None
        return tick

    def due(self, tick: datetime.datetime) -> datetime.datetime:
        if not self.window_minutes:
            return tick
        return tick + flexible_offset(self.uid, tick, self.window_minutes)


def timeline_of(schedule: Schedule, uid: str, created: datetime.datetime) -> Timeline:
    spec = schedule.spec
    start = parse_date_time(spec.start_date) if spec.start_date else None
    end = parse_date_time(spec.end_date) if spec.end_date else None
    window = spec.flexible_time_window
    return Timeline(
        expression=spec.expression,
        zone=time_zone(spec.schedule_expression_timezone),
        anchor=start or created,
        created=created,
        start=start,
        end=end,
        uid=uid,
        window_minutes=(window.maximum_window_in_minutes or 0) if window.mode == "FLEXIBLE" else 0,
    )


@dataclass(frozen=True)
class Wait:
    """Nothing to deliver before ``until`` (None: not until the schedule changes).

    ``status``: a write to make first (the schedule's state or next fire time changed).
    """

    until: datetime.datetime | None
    status: Status | None = None


@dataclass(frozen=True)
class Fire:
    """Claim ``tick`` and deliver it, or give it up at once when ``too_old``."""

    tick: datetime.datetime
    due: datetime.datetime
    # Deliveries tried already (by a replica whose claim lapsed).
    attempts: int = 0
    # The claim of another replica (or of this one before a restart) lapsed: a redelivery.
    takeover: bool = False
    too_old: bool = False


Decision = Wait | Fire


def decide(
    schedule: Schedule,
    timeline: Timeline,
    status: ScheduleStatus,
    *,
    generation: int,
    now: datetime.datetime,
    replica: str,
) -> Decision:
    """What a replica named ``replica`` does next about ``schedule`` at ``now``."""
    if schedule.spec.state == "DISABLED":
        if status.state == "DISABLED" and status.claim is None:
            return Wait(None)
        return Wait(None, _disabled(now, generation) | _cleared(status))
    last = parse_date_time(status.last_tick) if status.last_tick else None
    # Not firing until now: the ticks of that period are not owed.
    reenabled = status.state in ("DISABLED", INVALID)
    if reenabled:
        last = max(last, now) if last else now
    tick = timeline.next_tick(last)
    claim = status.claim
    if claim is not None and claim.holder != replica and parse_date_time(claim.expires) > now:
        return Wait(parse_date_time(claim.expires))  # another replica is delivering
    if tick is None:
        done = {"state": "COMPLETED", "nextFireTime": None, "claim": None}
        return Wait(None, _differs(status, done, generation, reenabled, last))
    due = timeline.due(tick)
    if claim is not None and parse_date_time(claim.tick) == tick:
        # A lapsed claim, or this replica's own from before it restarted: take the tick over.
        return Fire(tick, due, claim.attempts, takeover=True, too_old=_too_old(schedule, tick, now))
    if due > now:
        idle = {"state": "ENABLED", "nextFireTime": stamp(due), "claim": None}
        return Wait(due, _differs(status, idle, generation, reenabled, last))
    return Fire(tick, due, too_old=_too_old(schedule, tick, now))


def _disabled(now: datetime.datetime, generation: int) -> Status:
    return {
        "state": "DISABLED",
        "lastTick": stamp(now),
        "nextFireTime": None,
        "claim": None,
        "observedGeneration": generation,
    }


INVALID = "INVALID"


def invalid(body: Mapping[str, Any], now: datetime.datetime) -> Wait | None:
    """For a Schedule whose spec does not parse (a cron field out of range, a date that does not
    exist, an unknown time zone: what CEL cannot check), the status write that says so once per
    generation — state INVALID, the parser's message, ``lastTick`` now — else None (already said,
    or the spec parses and something else is wrong)."""
    try:
        parse_schedule(body)
    except ManifestError as exc:
        message = str(exc)
    else:
        return None
    generation = int(body["metadata"].get("generation") or 1)
    live = body.get("status") or {}
    said = {"state": INVALID, "message": message, "observedGeneration": generation}
    if all(live.get(key) == value for key, value in said.items()):
        return None
    return Wait(None, {**said, "lastTick": stamp(now), "nextFireTime": None, "claim": None})


def _cleared(status: ScheduleStatus) -> Status:
    """A message (why the spec was INVALID) is cleared once the spec parses again."""
    return {"message": None} if status.message is not None else {}


def _differs(
    status: ScheduleStatus,
    wanted: Status,
    generation: int,
    reenabled: bool,
    last: datetime.datetime | None,
) -> Status | None:
    """``wanted`` (with the generation, and the re-enabling's lastTick) if the status lacks it."""
    wanted = {**wanted, **_cleared(status), "observedGeneration": generation}
    if reenabled and last is not None:
        wanted["lastTick"] = stamp(last)
    live = status.model_dump(by_alias=True, mode="json")
    if all(live.get(key) == value for key, value in wanted.items()):
        return None
    return wanted


def _too_old(schedule: Schedule, tick: datetime.datetime, now: datetime.datetime) -> bool:
    age = (now - tick).total_seconds()
    return age > schedule.spec.retry_policy.maximum_event_age_in_seconds


def claim_status(
    tick: datetime.datetime, replica: str, expires: datetime.datetime, attempts: int
) -> Status:
    claim = TickClaim(tick=stamp(tick), holder=replica, expires=stamp(expires), attempts=attempts)
    return {"claim": claim.model_dump(by_alias=True, mode="json")}


def too_old_run(
    schedule: Schedule,
    timeline: Timeline,
    first: datetime.datetime,
    now: datetime.datetime,
    *,
    limit: int = 10_000,
) -> tuple[datetime.datetime, int]:
    """The last of the too-old ticks from ``first`` on, and how many there are (at most
    ``limit``): without a dead-letter destination they are given up in one status write, so a
    schedule back after a long outage does not cost one write per missed tick."""
    last, count = first, 1
    while count < limit:
        following = timeline.next_tick(last)
        if following is None or not _too_old(schedule, following, now):
            break
        last, count = following, count + 1
    return last, count


def done_status(timeline: Timeline, tick: datetime.datetime, generation: int) -> Status:
    """The status once ``tick`` is delivered or given up: the next tick's due time, if any."""
    following = timeline.next_tick(tick)
    return {
        "lastTick": stamp(tick),
        "claim": None,
        "nextFireTime": stamp(timeline.due(following)) if following else None,
        "state": "ENABLED" if following else "COMPLETED",
        "observedGeneration": generation,
    }


def holds_claim(status: ScheduleStatus, tick: datetime.datetime, replica: str) -> bool:
    """Whether ``replica`` still holds the claim on ``tick`` (another may have taken it over)."""
    claim = status.claim
    return claim is not None and claim.holder == replica and parse_date_time(claim.tick) == tick


# -- retries ---------------------------------------------------------------------------------


def backoff_delay(attempt: int, base_seconds: float, draw: float) -> float:
    """The pause after failed attempt number ``attempt`` (1 for the first): ``base`` doubling up
    to 60 times ``base``, with jitter — between half and all of it, by ``draw`` in [0, 1) — so
    replicas retrying one throttled function do not retry in step."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    full = min(base_seconds * 2.0 ** min(attempt - 1, 32), base_seconds * _MAX_BACKOFF_FACTOR)
    return full * (0.5 + draw / 2)


@dataclass(frozen=True)
class Retry:
    delay: float


@dataclass(frozen=True)
class GiveUp:
    condition: Condition


def after_failure(
    schedule: Schedule,
    *,
    tick: datetime.datetime,
    attempts: int,
    retryable: bool,
    now: datetime.datetime,
    base_seconds: float,
    draw: float,
) -> Retry | GiveUp:
    """After ``attempts`` deliveries of ``tick`` failed (the last ``retryable`` or refused):
    retry after a pause, or give up — once the retries are spent, or when the retry could only
    start past the event's maximum age (Lambda's ``EventAgeExceeded``)."""
    policy = schedule.spec.retry_policy
    if not retryable or attempts > policy.maximum_retry_attempts:
        return GiveUp("RetriesExhausted")
    delay = backoff_delay(attempts, base_seconds, draw)
    age = (now - tick).total_seconds()
    if age + delay > policy.maximum_event_age_in_seconds:
        return GiveUp("EventAgeExceeded")
    return Retry(delay)
