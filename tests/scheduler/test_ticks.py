"""The scheduler's rules as pure functions (scheduler/ticks.py, records.py): which tick is owed,
when it is due, claims, catch-up, DISABLED/COMPLETED, retries, and what is sent (ADR 026)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from kfaas.schedule_manifests import Schedule, ScheduleStatus, parse_schedule
from kfaas.scheduler.records import event_id, failure_record, payload_of, scheduled_event
from kfaas.scheduler.settings import SchedulerSettings
from kfaas.scheduler.ticks import (
    Fire,
    GiveUp,
    Retry,
    Timeline,
    Wait,
    after_failure,
    backoff_delay,
    decide,
    done_status,
    event_time,
    stamp,
    timeline_of,
    too_old_run,
)

UID = "0b7e6f8e-3c1a-4c1e-9d55-4a0f2a1d7c11"
CREATED = datetime.datetime(2026, 11, 30, 10, 0, 0, 250000, tzinfo=datetime.UTC)
SECOND = datetime.timedelta(seconds=1)


def schedule(expression: str = "rate(5 minutes)", **spec: Any) -> Schedule:
    return parse_schedule(
        {
            "metadata": {"name": "s", "namespace": "team-a"},
            "spec": {"scheduleExpression": expression, "target": {"functionName": "f"}, **spec},
        }
    )


def timeline(s: Schedule) -> Timeline:
    return timeline_of(s, UID, CREATED)


def status(**fields: Any) -> ScheduleStatus:
    return ScheduleStatus.model_validate(fields, by_alias=True)


def at(minutes: float) -> datetime.datetime:
    return CREATED + datetime.timedelta(minutes=minutes)


def test_stamps_keep_the_exact_instant() -> None:
    assert stamp(CREATED) == "2026-11-30T10:00:00.250000Z"
    assert stamp(CREATED.replace(microsecond=0)) == "2026-11-30T10:00:00Z"
    paris = CREATED.astimezone(datetime.timezone(datetime.timedelta(hours=1)))
    assert stamp(paris) == stamp(CREATED)
    assert event_time(CREATED) == "2026-11-30T10:00:00Z"


def test_ticks_start_strictly_after_creation_or_at_the_start_date() -> None:
    line = timeline(schedule())
    assert line.next_tick(None) == at(5)
    assert line.next_tick(at(5)) == at(10)
    start = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.UTC)
    later = timeline(schedule(startDate="2026-12-01T08:00:00Z"))
    assert later.next_tick(None) == start  # a rate counts from its start date, which counts
    # A start date already past when the schedule is created replays nothing before creation.
    past = timeline(schedule("cron(0 * * * ? *)", startDate="2026-01-01T00:00:00Z"))
    assert past.next_tick(None) == datetime.datetime(2026, 11, 30, 11, 0, tzinfo=datetime.UTC)


def test_the_end_date_and_a_past_at_leave_no_tick() -> None:
    ending = timeline(schedule(endDate="2026-11-30T10:10:00.250Z"))
    assert ending.next_tick(at(5)) == at(10)  # the end date is inclusive
    assert ending.next_tick(at(10)) is None
    assert timeline(schedule("at(2026-11-30T09:00:00)")).next_tick(None) is None


def test_a_flexible_window_delays_each_tick_the_same_on_every_replica() -> None:
    window = {"mode": "FLEXIBLE", "maximumWindowInMinutes": 10}
    line, other_replica = (
        timeline(schedule(flexibleTimeWindow=window)),
        timeline(schedule(flexibleTimeWindow=window)),
    )
    offsets = {line.due(at(5 * n)) - at(5 * n) for n in range(1, 20)}
    assert all(datetime.timedelta(0) <= o < datetime.timedelta(minutes=10) for o in offsets)
    assert len(offsets) > 1  # spread, not one fixed delay
    assert [line.due(at(5 * n)) for n in range(1, 20)] == [
        other_replica.due(at(5 * n)) for n in range(1, 20)
    ]
    assert timeline(schedule()).due(at(5)) == at(5)


def test_a_new_schedule_writes_its_next_fire_time_then_waits() -> None:
    s = schedule()
    first = decide(s, timeline(s), status(), generation=1, now=at(1), replica="a")
    assert first == Wait(
        at(5),
        {"state": "ENABLED", "nextFireTime": stamp(at(5)), "claim": None, "observedGeneration": 1},
    )
    written = status(state="ENABLED", nextFireTime=stamp(at(5)), observedGeneration=1)
    assert decide(s, timeline(s), written, generation=1, now=at(2), replica="a") == Wait(at(5))


def test_a_due_tick_is_fired_and_owed_ticks_oldest_first() -> None:
    s = schedule()
    assert decide(s, timeline(s), status(), generation=1, now=at(5), replica="a") == Fire(
        at(5), at(5)
    )
    # Down for a while: the oldest owed tick comes first, then the next (the catch-up rule).
    behind = status(lastTick=stamp(at(5)))
    assert decide(s, timeline(s), behind, generation=1, now=at(17), replica="a") == Fire(
        at(10), at(10)
    )
    assert done_status(timeline(s), at(10), 1) == {
        "lastTick": stamp(at(10)), "claim": None, "nextFireTime": stamp(at(15)),
        "state": "ENABLED", "observedGeneration": 1,
    }  # fmt: skip


def test_claims_make_others_wait_until_they_expire() -> None:
    s = schedule()
    claim = {"tick": stamp(at(5)), "holder": "a", "expires": stamp(at(5.5)), "attempts": 2}
    held = status(claim=claim)
    assert decide(s, timeline(s), held, generation=1, now=at(5.2), replica="b") == Wait(at(5.5))
    taken = decide(s, timeline(s), held, generation=1, now=at(6), replica="b")
    assert taken == Fire(at(5), at(5), attempts=2, takeover=True)
    # Its own claim from before a restart is taken over at once (it may have been delivered).
    own = decide(s, timeline(s), held, generation=1, now=at(5.2), replica="a")
    assert own == Fire(at(5), at(5), attempts=2, takeover=True)


def test_a_tick_older_than_the_maximum_event_age_is_given_up() -> None:
    s = schedule(retryPolicy={"maximumEventAgeInSeconds": 120})
    fire = decide(s, timeline(s), status(), generation=1, now=at(8), replica="a")
    assert fire == Fire(at(5), at(5), too_old=True)


def test_disabled_moves_the_last_tick_and_re_enabling_starts_from_then() -> None:
    off = schedule(state="DISABLED")
    disabled = decide(off, timeline(off), status(), generation=2, now=at(7), replica="a")
    assert disabled == Wait(
        None,
        {"state": "DISABLED", "lastTick": stamp(at(7)), "nextFireTime": None, "claim": None,
         "observedGeneration": 2},
    )  # fmt: skip
    written = status(state="DISABLED", lastTick=stamp(at(7)))
    assert decide(off, timeline(off), written, generation=2, now=at(9), replica="a") == Wait(None)
    on = schedule()
    enabled = decide(on, timeline(on), written, generation=3, now=at(31), replica="a")
    # Not the ticks at 10, 15, ... 30 min: the next after re-enabling, at 35 min.
    assert enabled == Wait(
        at(35),
        {"state": "ENABLED", "nextFireTime": stamp(at(35)), "claim": None,
         "observedGeneration": 3, "lastTick": stamp(at(31))},
    )  # fmt: skip


def test_an_at_schedule_completes_after_its_tick() -> None:
    s = schedule("at(2026-11-30T10:30:00)")
    tick = datetime.datetime(2026, 11, 30, 10, 30, tzinfo=datetime.UTC)
    assert decide(s, timeline(s), status(), generation=1, now=at(31), replica="a") == Fire(
        tick, tick
    )
    done = done_status(timeline(s), tick, 1)
    assert done["state"] == "COMPLETED" and done["nextFireTime"] is None
    finished = status(lastTick=stamp(tick), state="COMPLETED", observedGeneration=1)
    assert decide(s, timeline(s), finished, generation=1, now=at(40), replica="a") == Wait(None)


def test_backoff_doubles_from_the_base_up_to_sixty_times_it_with_jitter() -> None:
    assert backoff_delay(1, 1.0, 0.999999) == pytest.approx(1.0, abs=1e-5)
    assert backoff_delay(1, 1.0, 0.0) == 0.5
    assert backoff_delay(3, 1.0, 0.999999) == pytest.approx(4.0, abs=1e-4)
    assert backoff_delay(50, 1.0, 0.999999) == pytest.approx(60.0, abs=1e-3)
    assert backoff_delay(50, 0.01, 0.999999) == pytest.approx(0.6, abs=1e-4)
    with pytest.raises(ValueError):
        backoff_delay(0, 1.0, 0.5)


def test_after_a_failure_retry_until_the_attempts_or_the_age_run_out() -> None:
    s = schedule(retryPolicy={"maximumRetryAttempts": 2, "maximumEventAgeInSeconds": 60})
    args: dict[str, Any] = {"tick": at(5), "base_seconds": 1.0, "draw": 0.5}
    assert after_failure(s, attempts=1, retryable=True, now=at(5), **args) == Retry(0.75)
    assert after_failure(s, attempts=3, retryable=True, now=at(5), **args) == GiveUp(
        "RetriesExhausted"
    )
    assert after_failure(s, attempts=1, retryable=False, now=at(5), **args) == GiveUp(
        "RetriesExhausted"
    )
    late = at(5) + 59.5 * SECOND  # the retry could only start past the maximum age
    assert after_failure(s, attempts=1, retryable=True, now=late, **args) == GiveUp(
        "EventAgeExceeded"
    )
    never = schedule(retryPolicy={"maximumRetryAttempts": 0})
    assert after_failure(never, attempts=1, retryable=True, now=at(5), **args) == GiveUp(
        "RetriesExhausted"
    )


def test_the_scheduled_event_is_eventbridges_as_powertools_reads_it() -> None:
    s = schedule()
    event = EventBridgeEvent(scheduled_event(s, UID, at(5), region="eu-west-1"))
    assert (event.source, event.detail_type, event.version) == (
        "aws.events", "Scheduled Event", "0",
    )  # fmt: skip
    assert event.account == "team-a" and event.region == "eu-west-1"
    assert event.time == "2026-11-30T10:05:00Z"
    assert event.resources == ["arn:aws:scheduler:eu-west-1:team-a:schedule/default/s"]
    assert event.detail == {}
    # The id is the tick's: the same on a redelivery, another for the next tick or schedule.
    assert event.get_id == event_id(UID, at(5)) != event_id(UID, at(10))
    assert event_id("not-a-uuid", at(5)) == event_id("not-a-uuid", at(5))
    assert json.loads(payload_of(s, UID, at(5), region="eu-west-1")) == event.raw_event


def test_an_input_is_sent_as_written_and_recorded_in_the_failure_record() -> None:
    s = schedule(target={"functionName": "f", "qualifier": "live", "input": '{"job": 1}'})
    assert payload_of(s, UID, at(5), region="r") == b'{"job": 1}'
    record = failure_record(
        s, UID, at(5), region="r", condition="EventAgeExceeded", attempts=0,
        status_code=0, error="too old", now=at(30),
    )  # fmt: skip
    assert record == {
        "version": "1.0",
        "timestamp": "2026-11-30T10:30:00.250Z",
        "requestContext": {
            "requestId": event_id(UID, at(5)),
            "functionArn": "arn:aws:lambda:r:team-a:function:f:live",
            "condition": "EventAgeExceeded",
            "approximateInvokeCount": 0,
        },
        "requestPayload": {"job": 1},
        "responseContext": {"statusCode": 0, "executedVersion": None, "functionError": None},
        "responsePayload": {"errorMessage": "too old"},
    }


def test_a_run_of_too_old_ticks_is_given_up_in_one_step() -> None:
    s = schedule("rate(1 minute)", retryPolicy={"maximumEventAgeInSeconds": 120})
    line = timeline(s)
    # Back after 10 minutes: the ticks at 1 … 7 min are older than 2 min, 8 … 10 are not.
    assert too_old_run(s, line, at(1), at(10)) == (at(7), 7)
    assert too_old_run(s, line, at(1), at(10), limit=3) == (at(3), 3)
    ending = schedule("rate(1 minute)", endDate="2026-11-30T10:04:00.250Z",
                      retryPolicy={"maximumEventAgeInSeconds": 60})  # fmt: skip
    assert too_old_run(ending, timeline(ending), at(1), at(10)) == (at(4), 4)


def test_settings_are_read_once_and_refuse_what_would_spin() -> None:
    read = SchedulerSettings.from_env(
        {"KFAAS_SCHEDULER_POLL_SECONDS": "0.5", "KFAAS_SCHEDULER_CLAIM_SECONDS": "10"}
    )
    assert (read.poll_seconds, read.claim_seconds, read.retry_base_seconds) == (0.5, 10.0, 1.0)
    assert SchedulerSettings.from_env({}) == SchedulerSettings()
    for variable in ("POLL", "CLAIM", "RETRY_BASE"):
        with pytest.raises(ValueError, match=f"KFAAS_SCHEDULER_{variable}_SECONDS"):
            SchedulerSettings.from_env({f"KFAAS_SCHEDULER_{variable}_SECONDS": "0"})
    with pytest.raises(ValueError, match="KFAAS_SCHEDULER_POLL_SECONDS"):
        SchedulerSettings.from_env({"KFAAS_SCHEDULER_POLL_SECONDS": "soon"})
