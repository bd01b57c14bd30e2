"""A tick given up reaches a real Redis stream as Lambda's failure record (ADR 026): through the
gateway's destination writers, to the stream's own server or, naming none, the platform's."""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from services.redis_server import RedisServer
from waiting import eventually_async

from kfaas.dir_store import DirectoryObjectStore
from kfaas.scheduler.dead_letters import BrokerDeadLetters
from kfaas.scheduler.engine import ScheduleEngine
from kfaas.scheduler.metrics import ScheduleMetrics

from .helpers import FAST, Recorder, create, rfc3339, running, schedule_body

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("own_url", [True, False], ids=["its-own-redis", "the-platforms"])
async def test_a_tick_past_its_age_is_dead_lettered_to_redis(
    tmp_path: Path, redis_service: RedisServer, own_url: bool
) -> None:
    stream = f"dead-{uuid.uuid4().hex[:8]}"
    target = {"stream": stream, **({"url": redis_service.url} if own_url else {})}
    back = datetime.timedelta(seconds=150)  # the tick at +60 s is 90 s old, at +120 s 30 s
    with DirectoryObjectStore.open(
        tmp_path / "state", clock=lambda: rfc3339(datetime.datetime.now(datetime.UTC) - back)
    ) as objects:
        created = await create(
            objects,
            schedule_body(
                "s", "rate(1 minute)", deadLetterConfig={"redis": target},
                retryPolicy={"maximumEventAgeInSeconds": 60},
            ),
        )  # fmt: skip
        dead_letters = BrokerDeadLetters.to_platform(
            redis_url=None if own_url else redis_service.url,
            kafka_bootstrap_servers=None,
            deadline_seconds=5,
        )
        recorder = Recorder(replica="a")
        engine = ScheduleEngine(
            objects, recorder, dead_letters, replica="a", region="eu-west-1",
            settings=FAST, metrics=ScheduleMetrics(),
        )  # fmt: skip
        client = redis.Redis.from_url(redis_service.url)
        try:
            async with running(engine):

                def entries() -> list[Any]:
                    return list(client.xrange(stream) or [])

                [(_, fields)] = await eventually_async(entries, within=10, what="a record")
                # The next tick, young enough, is delivered after it (oldest first).
                await eventually_async(lambda: recorder.delivered, within=10, what="the next")
        finally:
            client.close()
            await dead_letters.close()
    record = json.loads(fields[b"body"])
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestPayload"]["source"] == "aws.events"
    assert record["requestPayload"]["account"] == "team-a"
    assert record["requestContext"]["functionArn"].endswith(":function:tick:$LATEST")
    assert record["requestContext"]["requestId"] == record["requestPayload"]["id"]
    assert [d.event["id"] for d in recorder.delivered] != [record["requestPayload"]["id"]]
    assert created["metadata"]["uid"]
