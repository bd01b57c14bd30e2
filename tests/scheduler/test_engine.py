"""The engine over a folder store: each tick once across replicas, takeovers, catch-up, retries,
dead letters, DISABLED and COMPLETED (ADR 026).

Engines run for real, a few seconds each, on `rate(N seconds)` schedules; two engines share one
store through ``Jittery`` so their reads and writes interleave as two replicas' would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from waiting import eventually_async

from kfaas.dir_store import DirectoryObjectStore
from kfaas.object_store import SCHEDULES, Body, ObjectStore
from kfaas.schedule_manifests import parse_date_time
from kfaas.scheduler.delivery import DeliveryError, RefusedDelivery, RetryableDelivery
from kfaas.scheduler.records import event_id

from .helpers import (
    FAST,
    DeadLetterBox,
    Jittery,
    Recorder,
    create,
    engine,
    rfc3339,
    running,
    sample,
    schedule_body,
)

DLQ = {"redis": {"stream": "dead", "url": "redis://unused"}}


@pytest.fixture
def objects(tmp_path: Path) -> Iterator[DirectoryObjectStore]:
    with DirectoryObjectStore.open(tmp_path / "state") as store:
        yield store


async def status_of(objects: DirectoryObjectStore, name: str = "s") -> dict[str, object]:
    return dict((await objects.get(SCHEDULES, "team-a", name)).get("status") or {})


async def test_two_replicas_deliver_each_tick_once(objects: DirectoryObjectStore) -> None:
    created = await create(objects, schedule_body("s", "rate(1 second)"))
    first, second = Recorder(), Recorder()
    a = engine(Jittery(objects, 1), first, replica="replica-a")
    b = engine(Jittery(objects, 2), second, replica="replica-b")
    async with running(a, b):
        await eventually_async(
            lambda: len(first.delivered) + len(second.delivered) >= 5,
            within=15, what="five ticks delivered",
        )  # fmt: skip
    delivered = sorted(first.delivered + second.delivered, key=lambda d: d.event["time"])
    ids = [item.event["id"] for item in delivered]
    assert len(ids) == len(set(ids)), "a tick was delivered twice"
    # No tick skipped: consecutive seconds from the first one after the creation.
    start = parse_date_time(created["metadata"]["creationTimestamp"])
    ticks = [parse_date_time(item.event["time"]) for item in delivered]
    expected = [
        (start + datetime.timedelta(seconds=n)).replace(microsecond=0)
        for n in range(1, len(ticks) + 1)
    ]
    assert ticks == expected
    assert sample(a, "kfaas_schedule_redeliveries_total") == 0
    fires = sample(a, "kfaas_schedule_fires_total") + sample(b, "kfaas_schedule_fires_total")
    assert fires == len(ids)
    # (A claim may be left, lastTick behind: the engines were stopped wherever they were.)
    status = await status_of(objects)
    assert status["state"] == "ENABLED" and status["nextFireTime"]


async def test_a_replica_stopped_mid_delivery_is_taken_over_after_its_claim_expires(
    objects: DirectoryObjectStore,
) -> None:
    created = await create(objects, schedule_body("s", "rate(2 seconds)"))
    hung = Recorder(hold=asyncio.Event())  # never released: the replica dies in the delivery
    a = engine(objects, hung, replica="replica-a")
    async with running(a):
        await eventually_async(hung.started.is_set, within=10, what="a delivery started")
    claim = (await status_of(objects))["claim"]
    assert isinstance(claim, dict) and claim["holder"] == "replica-a"
    taken_at = datetime.datetime.now(datetime.UTC)
    survivor = Recorder()
    b = engine(objects, survivor, replica="replica-b")
    async with running(b):
        await eventually_async(lambda: survivor.delivered, within=10, what="the tick redelivered")
    first = survivor.delivered[0]
    # The same tick, with the same id (a handler can drop the duplicate), after the lease.
    assert first.event["time"] == claim["tick"].replace(".000000", "")[:19] + "Z"
    uid = created["metadata"]["uid"]
    assert first.event["id"] == event_id(uid, parse_date_time(claim["tick"]))
    assert datetime.datetime.now(datetime.UTC) >= min(parse_date_time(claim["expires"]), taken_at)
    assert sample(b, "kfaas_schedule_redeliveries_total") == 1


async def test_ticks_missed_while_down_are_caught_up_oldest_first(tmp_path: Path) -> None:
    back = datetime.timedelta(seconds=0)

    def clock() -> str:
        return rfc3339(datetime.datetime.now(datetime.UTC) - back)

    with DirectoryObjectStore.open(tmp_path / "state", clock=clock) as objects:
        back = datetime.timedelta(seconds=9)  # created 9 s ago: four 2-second ticks are owed
        created = await create(objects, schedule_body("s", "rate(2 seconds)"))
        back = datetime.timedelta(0)
        recorder = Recorder()
        async with running(engine(objects, recorder)):
            await eventually_async(lambda: len(recorder.delivered) >= 5, within=10, what="5 ticks")
    start = parse_date_time(created["metadata"]["creationTimestamp"])
    ticks = [parse_date_time(t) for t in recorder.times()]
    assert ticks[:4] == [
        (start + datetime.timedelta(seconds=2 * n)).replace(microsecond=0) for n in range(1, 5)
    ]
    assert ticks == sorted(ticks)


async def test_a_tick_older_than_its_maximum_age_is_dead_lettered_at_once(tmp_path: Path) -> None:
    back = datetime.timedelta(seconds=150)
    with DirectoryObjectStore.open(
        tmp_path / "state", clock=lambda: rfc3339(datetime.datetime.now(datetime.UTC) - back)
    ) as objects:
        await create(
            objects,
            schedule_body(
                "s", "rate(1 minute)", deadLetterConfig=DLQ,
                retryPolicy={"maximumEventAgeInSeconds": 60},
            ),
        )  # fmt: skip
        recorder, box = Recorder(), DeadLetterBox()
        e = engine(objects, recorder, box)
        async with running(e):
            await eventually_async(lambda: recorder.delivered, within=10, what="the young tick")
    # Ticks at +60 s (90 s old) given up; +120 s (30 s old) delivered.
    [record] = box.records
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["requestPayload"]["detail-type"] == "Scheduled Event"
    assert record["requestContext"]["requestId"] == record["requestPayload"]["id"]
    assert len(recorder.delivered) == 1
    assert sample(e, "kfaas_schedule_dead_letters_total") == 1


async def test_retries_then_the_dead_letter_queue(objects: DirectoryObjectStore) -> None:
    await create(
        objects,
        schedule_body(
            "s", "rate(1 second)", deadLetterConfig=DLQ, retryPolicy={"maximumRetryAttempts": 2}
        ),
    )
    throttled: list[DeliveryError] = [RetryableDelivery("429 Rate Exceeded", 429)] * 3
    recorder, box = Recorder(failures=throttled), DeadLetterBox(failing=2)
    e = engine(objects, recorder, box)
    async with running(e):
        await eventually_async(lambda: box.records, within=10, what="a failure record")
    record = box.records[0]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responseContext"] == {
        "statusCode": 429, "executedVersion": None, "functionError": None,
    }  # fmt: skip
    assert record["responsePayload"] == {"errorMessage": "429 Rate Exceeded"}
    assert (
        record["requestContext"]["functionArn"]
        == "arn:aws:lambda:eu-west-1:team-a:function:tick:$LATEST"
    )
    assert sample(e, "kfaas_schedule_failures_total", reason="throttled") == 3
    # The dead-letter writes that failed were retried, not dropped.
    assert sample(e, "kfaas_schedule_failures_total", reason="dead_letter") == 2
    assert sample(e, "kfaas_schedule_dead_letters_total") == 1


async def test_a_refused_delivery_is_not_retried_and_without_a_dlq_is_counted_and_logged(
    objects: DirectoryObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    await create(objects, schedule_body("s", "rate(1 second)"))
    recorder = Recorder(failures=[RefusedDelivery("Function not found", 404)])
    e = engine(objects, recorder)
    with caplog.at_level(logging.WARNING, logger="kfaas.scheduler"):
        async with running(e):
            await eventually_async(lambda: len(recorder.delivered) >= 1, within=10, what="next")
    assert sample(e, "kfaas_schedule_missed_total") == 1
    assert sample(e, "kfaas_schedule_failures_total", reason="not_found") == 1
    [line] = [json.loads(r.getMessage()) for r in caplog.records if "given up" in r.getMessage()]
    assert line["condition"] == "RetriesExhausted" and line["approximateInvokeCount"] == 1
    assert line["error"] == "Function not found"


async def test_disabled_fires_nothing_and_re_enabling_does_not_replay(
    objects: DirectoryObjectStore,
) -> None:
    created = await create(objects, schedule_body("s", "rate(1 second)", state="DISABLED"))
    recorder = Recorder()
    async with running(engine(objects, recorder)):
        await eventually_async(lambda: status_of(objects), within=5, what="a status written")
        await asyncio.sleep(2.5)
        assert recorder.delivered == []
        status = await status_of(objects)
        assert status["state"] == "DISABLED" and status["lastTick"]
        live = await objects.get(SCHEDULES, "team-a", "s")
        live["spec"]["state"] = "ENABLED"
        enabled_at = datetime.datetime.now(datetime.UTC)
        await objects.replace(SCHEDULES, live, field_manager="test")
        await eventually_async(lambda: recorder.delivered, within=5, what="a tick once enabled")
    first = parse_date_time(recorder.delivered[0].event["time"])
    # Nothing from the disabled period (the ticks since the creation) was replayed.
    assert first >= enabled_at.replace(microsecond=0)
    assert parse_date_time(created["metadata"]["creationTimestamp"]) < enabled_at


async def test_an_at_schedule_fires_once_then_completes(objects: DirectoryObjectStore) -> None:
    soon = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=2)).replace(
        microsecond=0
    )
    at = soon.strftime("at(%Y-%m-%dT%H:%M:%S)")
    await create(
        objects, schedule_body("s", at, target={"functionName": "tick", "input": '{"a": 1}'})
    )
    recorder = Recorder()
    async with running(engine(objects, recorder)):
        await eventually_async(lambda: _state(objects), within=10, what="COMPLETED")
    assert [d.event for d in recorder.delivered] == [{"a": 1}]
    status = await status_of(objects)
    assert "nextFireTime" not in status and parse_date_time(str(status["lastTick"])) == soon


async def test_past_its_end_date_a_schedule_completes_without_firing(
    objects: DirectoryObjectStore,
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    await create(
        objects,
        schedule_body(
            "s", "rate(1 second)",
            startDate=rfc3339(now - datetime.timedelta(hours=2)),
            endDate=rfc3339(now - datetime.timedelta(hours=1)),
        ),
    )  # fmt: skip
    recorder = Recorder()
    async with running(engine(objects, recorder)):
        await eventually_async(lambda: _state(objects), within=10, what="COMPLETED")
    assert recorder.delivered == []


async def _state(objects: DirectoryObjectStore) -> bool:
    return (await status_of(objects)).get("state") == "COMPLETED"


async def test_too_old_ticks_without_a_dlq_are_counted_in_one_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    back = datetime.timedelta(seconds=150)  # ten-second ticks: those past 60 s old are given up
    with DirectoryObjectStore.open(
        tmp_path / "state", clock=lambda: rfc3339(datetime.datetime.now(datetime.UTC) - back)
    ) as objects:
        await create(
            objects,
            schedule_body("s", "rate(10 seconds)", retryPolicy={"maximumEventAgeInSeconds": 60}),
        )
        recorder = Recorder()
        e = engine(objects, recorder)
        with caplog.at_level(logging.WARNING, logger="kfaas.scheduler"):
            async with running(e):
                await eventually_async(lambda: recorder.delivered, within=10, what="a young tick")
    [line] = [json.loads(r.getMessage()) for r in caplog.records if "given up" in r.getMessage()]
    assert line["condition"] == "EventAgeExceeded" and line["ticks"] >= 8
    assert sample(e, "kfaas_schedule_missed_total") == line["ticks"]
    # Oldest first: the first tick delivered is the one after the last given up.
    first = parse_date_time(recorder.delivered[0].event["time"])
    assert first - parse_date_time(line["tick"]).replace(microsecond=0) == datetime.timedelta(
        seconds=10
    )


async def test_a_worker_done_while_the_loop_lists_is_in_the_loops_plan(
    objects: DirectoryObjectStore,
) -> None:
    """The loop skips a schedule whose worker is busy; one that finishes during the listing tells
    the loop its next due time (``_due_at``), so a fast schedule does not wait a whole poll."""
    await create(objects, schedule_body("s", "rate(5 seconds)"))
    slow = dataclasses.replace(FAST, poll_seconds=30.0)
    scheduler = engine(objects, Recorder(), settings=slow)
    list_all = objects.list

    async def list_after_the_workers(plural: str, namespace: str | None = None) -> list[Body]:
        await asyncio.gather(*scheduler._workers.values())
        return await list_all(plural, namespace)

    first = await scheduler.run_once()  # starts the worker that writes nextFireTime
    assert list(scheduler._workers) == ["team-a/s"] and first <= 30
    scheduler.objects = cast(ObjectStore, SimpleNamespace(list=list_after_the_workers))
    seconds = await scheduler.run_once()
    assert 0 < seconds <= 5, seconds
