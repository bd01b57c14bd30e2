"""A Schedule the API server accepts but the scheduler cannot run (CEL checks an expression's shape
only): its status says INVALID and why, once per generation, nothing fires, and once the spec is
fixed the schedule starts from then — the invalid period's ticks are not owed, and the message
goes."""

from __future__ import annotations

import datetime
from typing import Any

from kfaas.schedule_manifests import ScheduleStatus, parse_date_time, parse_schedule
from kfaas.scheduler.ticks import Fire, Wait, decide, invalid, stamp, timeline_of

UID = "0b7e6f8e-3c1a-4c1e-9d55-4a0f2a1d7c11"
CREATED = datetime.datetime(2026, 11, 30, 10, 0, tzinfo=datetime.UTC)
NOW = CREATED + datetime.timedelta(hours=3)


def body(expression: str, generation: int = 1, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {
            "name": "nightly",
            "namespace": "team-a",
            "uid": UID,
            "generation": generation,
            "creationTimestamp": stamp(CREATED),
        },
        "spec": {"scheduleExpression": expression, "target": {"functionName": "report"}},
        "status": status,
    }


def test_an_unparseable_spec_is_said_once_per_generation() -> None:
    bad = body("cron(99 10 * * ? *)")
    said = invalid(bad, NOW)
    assert isinstance(said, Wait) and said.until is None and said.status is not None
    assert said.status == {
        "state": "INVALID",
        "message": 'Schedule nightly: spec.scheduleExpression: cron(99 10 * * ? *): minutes "99" '
        "is out of range 0-59",
        "observedGeneration": 1,
        "lastTick": stamp(NOW),
        "nextFireTime": None,
        "claim": None,
    }
    # Written: nothing more to say, however often it is looked at, until the spec changes.
    assert invalid(body("cron(99 10 * * ? *)", **said.status), NOW) is None
    edited = invalid(body("cron(0 25 * * ? *)", generation=2, **said.status), NOW)
    assert edited is not None and edited.status is not None
    assert edited.status["observedGeneration"] == 2 and "25" in edited.status["message"]
    # A spec that parses is not the invalid rule's business.
    assert invalid(body("rate(5 minutes)"), NOW) is None


def test_a_fixed_spec_starts_from_then_and_clears_the_message() -> None:
    said = invalid(body("rate(5 minute)"), NOW)
    assert said is not None and said.status is not None
    fixed = body("rate(5 minutes)", generation=2, **said.status)
    schedule = parse_schedule(fixed)
    status = ScheduleStatus.model_validate(fixed["status"], by_alias=True)
    timeline = timeline_of(schedule, UID, CREATED)
    later = NOW + datetime.timedelta(seconds=30)
    decision = decide(schedule, timeline, status, generation=2, now=later, replica="a")
    # Three hours of ticks would be owed from creation; none are: the next is after the fix.
    assert isinstance(decision, Wait) and not isinstance(decision, Fire)
    assert decision.status is not None
    assert decision.status["state"] == "ENABLED" and decision.status["message"] is None
    assert parse_date_time(decision.status["nextFireTime"]) > later
    assert parse_date_time(decision.status["lastTick"]) == later
