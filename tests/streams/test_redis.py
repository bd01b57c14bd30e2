"""Redis stream mappings end to end: the real Redis, `kfaas dev`, real handlers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from devserver import dev_server
from redis.exceptions import ResponseError
from waiting import eventually_async

from streams.kit import FAST, Project, RedisTools, unique

pytestmark = pytest.mark.redis


def source(redis: RedisTools, stream: str, group: str, position: str = "TRIM_HORIZON") -> Any:
    return {
        "url": redis.url,
        "stream": stream,
        "consumerGroup": group,
        "startingPosition": position,
    }


async def test_entries_arrive_as_sqs_records_and_are_acknowledged(
    project: Project, redis: RedisTools
) -> None:
    stream, group = unique("s"), unique("g")
    out = project.function("shapes", env={"KEEP_EVENT": "1"})
    project.mapping("shapes", "shapes", redis=source(redis, stream, group), batchSize=10)
    ids = await redis.add(
        stream,
        [
            {
                "body": '{"order": 1}',
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            },
            {"sku": "A-1", "qty": "2"},
        ],
    )
    with dev_server([project.write()], env=FAST):
        await out.wait_values(2)
        await redis.wait_pending(stream, group, 0)
    (call,) = out.invocations()
    first, second = SQSEvent(call["event"]).records
    assert [first.message_id, second.message_id] == ids
    assert first.json_body == {"order": 1}
    traceparent = first.message_attributes["traceparent"]
    assert traceparent is not None and (traceparent.string_value or "").startswith("00-0af7")
    assert second.json_body == {"sku": "A-1", "qty": "2"}
    assert first.attributes.approximate_receive_count == "1"
    assert first.attributes.sent_timestamp == ids[0].split("-")[0]
    assert first.event_source == "kfaas:redis"
    assert first.event_source_arn == f"arn:kfaas:redis:us-east-1:default:stream/{stream}"


async def test_batching_window_gathers_entries_into_one_invocation(
    project: Project, redis: RedisTools
) -> None:
    stream, group = unique("s"), unique("g")
    out = project.function("window")
    project.mapping(
        "window",
        "window",
        redis=source(redis, stream, group, position="LATEST"),
        batchSize=100,
        maximumBatchingWindowSeconds=1.0,
    )
    await redis.add(stream, [{"body": "before"}])
    with dev_server([project.write()], env=FAST):
        # LATEST: the poller creates the group at the end of the stream ($) when it starts.
        async def group_exists() -> bool:
            try:
                groups = await redis.client.xinfo_groups(stream)
            except ResponseError:  # no such key yet
                return False
            return any(g["name"] == group for g in groups)

        await eventually_async(group_exists, within=30, what="the consumer group")
        await redis.add(stream, [{"body": f"m{n}"} for n in range(5)])
        await out.wait_values(5)
        await redis.wait_pending(stream, group, 0)
    assert [call["values"] for call in out.invocations()] == [[f"m{n}" for n in range(5)]]


async def test_batches_stay_under_the_6_mb_invoke_limit(
    project: Project, redis: RedisTools
) -> None:
    stream, group = unique("s"), unique("g")
    out = project.function("big", env={"SIZES": "1"}, memoryMB=512)
    project.mapping(
        "big",
        "big",
        redis=source(redis, stream, group),
        batchSize=100,
        maximumBatchingWindowSeconds=0.5,
    )
    megabyte = 1024 * 1024
    await redis.add(stream, [{"body": "x" * megabyte} for _ in range(12)])
    with dev_server([project.write()], env=FAST):
        await out.wait_values(12, within=60)
        await redis.wait_pending(stream, group, 0)
    sizes = [len(call["values"]) for call in out.invocations()]
    assert sum(sizes) == 12
    assert max(sizes) == 5, sizes  # six 1 MB records and their envelopes would pass 6 MB
    assert all(call["outcome"] is None for call in out.invocations())


async def test_partial_failures_and_the_dead_letter_stream(
    project: Project, redis: RedisTools
) -> None:
    stream, group, dlq = unique("s"), unique("g"), unique("dlq")
    out = project.function("partial", mode="partial")
    project.mapping(
        "partial",
        "partial",
        redis=source(redis, stream, group),
        functionResponseTypes=["ReportBatchItemFailures"],
        maximumRetryAttempts=2,
        destinationConfig={"onFailure": {"redis": {"stream": dlq}}},
    )
    ids = await redis.add(stream, [{"body": b} for b in ("a", "poison", "c")])
    with dev_server([project.write()], env=FAST):
        await redis.wait_pending(stream, group, 0)
    assert [call["values"] for call in out.invocations()] == [
        ["a", "poison", "c"],
        ["poison", "c"],
        ["poison", "c"],
    ]
    entries = await redis.entries(dlq)
    assert [(fields["body"], fields["kfaas-source"]) for _, fields in entries[:2]] == [
        ("poison", ids[1]),
        ("c", ids[2]),
    ]
    failure = json.loads(entries[2][1]["body"])
    assert entries[2][1]["kfaas-kind"] == "failure-record"
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["RedisBatchInfo"]["shardId"] == stream
    assert failure["RedisBatchInfo"]["startSequenceNumber"] == ids[1]
    assert failure["RedisBatchInfo"]["endSequenceNumber"] == ids[2]
    assert failure["RedisBatchInfo"]["batchSize"] == 2


async def test_retries_raise_the_receive_count(project: Project, redis: RedisTools) -> None:
    stream, group = unique("s"), unique("g")
    out = project.function("counts", mode="error_on_poison", env={"KEEP_EVENT": "1"})
    project.mapping("counts", "counts", redis=source(redis, stream, group), maximumRetryAttempts=2)
    await redis.add(stream, [{"body": "poison"}])
    with dev_server([project.write()], env=FAST):
        await redis.wait_pending(stream, group, 0)
    counts = [
        next(SQSEvent(call["event"]).records).attributes.approximate_receive_count
        for call in out.invocations()
    ]
    assert counts == ["1", "2", "3"]


async def test_filters_match_the_body(project: Project, redis: RedisTools) -> None:
    stream, group = unique("s"), unique("g")
    out = project.function("filtered")
    project.mapping(
        "filtered",
        "filtered",
        redis=source(redis, stream, group),
        filterCriteria={
            "filters": [
                {"pattern": '{"body": {"level": [{"anything-but": ["debug", "info"]}]}}'},
                {"pattern": '{"body": {"tags": ["page"]}}'},
            ]
        },
    )
    bodies = [
        {"level": "error"},
        {"level": "info"},
        {"level": "debug", "tags": ["x", "page"]},
        {"other": 1},
    ]
    await redis.add(stream, [{"body": json.dumps(b)} for b in bodies])
    with dev_server([project.write()], env=FAST):
        await redis.wait_pending(stream, group, 0)
        await eventually_async(
            lambda: len(out.values()) >= 2, within=30, what="two matching entries"
        )
    assert [json.loads(v) for v in out.values()] == [bodies[0], bodies[2]]


async def test_entries_left_by_a_dead_consumer_are_reclaimed(
    project: Project, redis: RedisTools
) -> None:
    stream, group = unique("s"), unique("g")
    out = project.function("reclaim")
    project.mapping("reclaim", "reclaim", redis=source(redis, stream, group))
    await redis.client.xgroup_create(stream, group, id="0", mkstream=True)
    ids = await redis.add(stream, [{"body": f"m{n}"} for n in range(3)])
    # A consumer that read the entries and died before acknowledging them.
    await redis.client.xreadgroup(group, "dead-consumer", {stream: ">"}, count=10)
    assert await redis.pending(stream, group) == 3
    with dev_server([project.write()], env=FAST):
        await out.wait_values(3)
        await redis.wait_pending(stream, group, 0)
    assert sorted(out.values()) == ["m0", "m1", "m2"]
    consumers = {c["name"] for c in await redis.client.xinfo_consumers(stream, group)}
    assert "dead-consumer" in consumers
    assert all(entry_id in ids for entry_id in ids)


async def test_parallel_consumers_share_the_group(project: Project, redis: RedisTools) -> None:
    stream, group = unique("s"), unique("g")
    out = project.function("shared", env={"SLEEP": "0.02"})
    project.mapping(
        "shared", "shared", redis=source(redis, stream, group), batchSize=10, parallelism=3
    )
    await redis.add(stream, [{"body": f"m{n}"} for n in range(300)])
    with dev_server([project.write()], env=FAST) as dev:
        await out.wait_values(300)
        await redis.wait_pending(stream, group, 0)
        assert "polling with 3 consumer(s)" in dev.output()
    consumers = await redis.client.xinfo_consumers(stream, group)
    assert len(consumers) == 3
    assert sorted(out.values()) == sorted(f"m{n}" for n in range(300))
    for call in out.invocations():
        numbers = [int(v[1:]) for v in call["values"]]
        assert numbers == sorted(numbers), "each consumer's batches are in stream order"
