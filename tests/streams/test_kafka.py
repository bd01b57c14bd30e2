"""Kafka event source mappings end to end: the real broker, `kfaas dev`, real handlers."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import KafkaEvent
from devserver import dev_server
from waiting import eventually_async

from streams.kit import FAST, KafkaTools, Project, unique

pytestmark = pytest.mark.kafka


def source(kafka: KafkaTools, topic: str, group: str, position: str = "TRIM_HORIZON") -> Any:
    return {
        "bootstrapServers": kafka.bootstrap,
        "topic": topic,
        "consumerGroupId": group,
        "startingPosition": position,
    }


async def test_batches_are_self_managed_kafka_events_and_offsets_are_committed(
    project: Project, kafka: KafkaTools
) -> None:
    topic, group = kafka.topic(), unique("g")
    out = project.function("shapes", env={"KEEP_EVENT": "1"})
    project.mapping("shapes", "shapes", kafka=source(kafka, topic, group), batchSize=10)
    traceparent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await kafka.produce(
        topic,
        [json.dumps({"n": n}).encode() for n in range(5)],
        key=b"user-1",
        headers=[("traceparent", traceparent)],
    )
    with dev_server([project.write()], env=FAST):
        await out.wait_values(5)
        await kafka.wait_committed(group, topic, [5])
    (call,) = out.invocations()
    event = KafkaEvent(call["event"])
    assert event.event_source == "SelfManagedKafka"
    assert event.bootstrap_servers == kafka.bootstrap
    assert list(call["event"]["records"]) == [f"{topic}-0"]
    records = list(event.records)
    assert [r.offset for r in records] == [0, 1, 2, 3, 4]
    assert [r.json_value for r in records] == [{"n": n} for n in range(5)]
    assert records[0].decoded_key == b"user-1"
    assert records[0].decoded_headers["traceparent"] == traceparent
    assert records[0].timestamp_type == "CREATE_TIME"
    assert abs(records[0].timestamp / 1000 - time.time()) < 120


async def test_order_holds_per_partition_with_one_batch_in_flight(
    project: Project, kafka: KafkaTools
) -> None:
    topic, group = kafka.topic(partitions=3), unique("g")
    out = project.function("order", env={"SLEEP": "0.01"})
    project.mapping("order", "order", kafka=source(kafka, topic, group), batchSize=7)
    await kafka.produce(topic, [str(n).encode() for n in range(300)], partition=lambda n: n % 3)
    with dev_server([project.write()], env=FAST):
        await out.wait_values(300)
        await kafka.wait_committed(group, topic, [100, 100, 100])
    calls = out.invocations()
    assert sorted(int(v) for v in out.values()) == list(range(300))
    for call in calls:
        assert 1 <= len(call["values"]) <= 7
        assert len({key.split(":")[0] for key in call["keys"]}) == 1, "one partition per batch"
    for partition in range(3):
        seen = [int(v) for v in out.values() if int(v) % 3 == partition]
        assert seen == list(range(partition, 300, 3))


async def test_filtered_out_records_are_committed_not_delivered(
    project: Project, kafka: KafkaTools
) -> None:
    topic, group = kafka.topic(), unique("g")
    out = project.function("filtered")
    project.mapping(
        "filtered",
        "filtered",
        kafka=source(kafka, topic, group),
        filterCriteria={
            "filters": [
                {"pattern": '{"value": {"type": ["image"], "size": [{"numeric": [">", 10]}]}}'},
                {"pattern": '{"value": [{"prefix": "URGENT"}]}'},
            ]
        },
    )
    values = [
        {"type": "image", "size": 50},
        {"type": "image", "size": 5},
        {"type": "video", "size": 50},
        "URGENT: disk full",
        "routine",
        {"type": "image", "size": 11},
    ]
    encoded = [v.encode() if isinstance(v, str) else json.dumps(v).encode() for v in values]
    await kafka.produce(topic, encoded)
    with dev_server([project.write()], env=FAST):
        await kafka.wait_committed(group, topic, [6])
    assert [json.loads(v) if v.startswith("{") else v for v in out.values()] == [
        {"type": "image", "size": 50},
        "URGENT: disk full",
        {"type": "image", "size": 11},
    ]


async def test_partial_failures_retry_from_the_lowest_failure_then_dead_letter(
    project: Project, kafka: KafkaTools
) -> None:
    topic, group, dlq = kafka.topic(), unique("g"), unique("dlq")
    out = project.function("partial", mode="partial")
    project.mapping(
        "partial",
        "partial",
        kafka=source(kafka, topic, group),
        functionResponseTypes=["ReportBatchItemFailures"],
        maximumRetryAttempts=1,
        destinationConfig={"onFailure": {"kafka": {"topic": dlq}}},
    )
    await kafka.produce(topic, [b"a", b"b", b"poison", b"d"], key=b"k")
    with dev_server([project.write()], env=FAST):
        await kafka.wait_committed(group, topic, [4])
        dead = await kafka.read(dlq, 3)
    assert [call["values"] for call in out.invocations()] == [
        ["a", "b", "poison", "d"],
        ["poison", "d"],  # the one retry maximumRetryAttempts allows
    ]
    assert [(m.key, m.value) for m in dead[:2]] == [(b"k", b"poison"), (b"k", b"d")]
    assert dict(dead[0].headers)["kfaas-source"] == f"{topic}-0@2".encode()
    failure = json.loads(dead[2].value)
    assert dict(dead[2].headers)["kfaas-kind"] == b"failure-record"
    assert failure["version"] == "1.0"
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 2
    assert failure["requestContext"]["functionArn"].endswith(":default:function:partial")
    assert failure["KafkaBatchInfo"]["startOffset"] == 2
    assert failure["KafkaBatchInfo"]["endOffset"] == 3
    assert failure["KafkaBatchInfo"]["batchSize"] == 2
    assert failure["KafkaBatchInfo"]["partition"] == 0


async def test_bisect_sends_only_the_poison_record_to_the_destination(
    project: Project, kafka: KafkaTools, redis: Any
) -> None:
    topic, group, dlq = kafka.topic(), unique("g"), unique("dlq")
    out = project.function("bisect", mode="error_on_poison")
    project.mapping(
        "bisect",
        "bisect",
        kafka=source(kafka, topic, group),
        bisectBatchOnFunctionError=True,
        maximumRetryAttempts=0,
        # A Redis stream as the destination of a Kafka mapping names its server.
        destinationConfig={"onFailure": {"redis": {"stream": dlq, "url": redis.url}}},
    )
    await kafka.produce(topic, [b"a", b"b", b"c", b"poison", b"e", b"f"])
    with dev_server([project.write()], env=FAST):
        await kafka.wait_committed(group, topic, [6])
    delivered = [v for call in out.invocations() if call["outcome"] is None for v in call["values"]]
    assert sorted(delivered) == ["a", "b", "c", "e", "f"]
    entries = await redis.entries(dlq)
    assert [fields.get("value") for _, fields in entries[:-1]] == ["poison"]
    failure = json.loads(entries[-1][1]["body"])
    assert failure["KafkaBatchInfo"]["startOffset"] == 3
    assert failure["KafkaBatchInfo"]["batchSize"] == 1


async def test_records_older_than_the_maximum_age_are_dead_lettered_unseen(
    project: Project, kafka: KafkaTools
) -> None:
    topic, group, dlq = kafka.topic(), unique("g"), unique("dlq")
    out = project.function("aged")
    project.mapping(
        "aged",
        "aged",
        kafka=source(kafka, topic, group),
        maximumRecordAgeSeconds=60,
        destinationConfig={"onFailure": {"kafka": {"topic": dlq}}},
    )
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    await kafka.produce(topic, [b"old"], timestamp_ms=an_hour_ago)
    await kafka.produce(topic, [b"new"])
    with dev_server([project.write()], env=FAST):
        await kafka.wait_committed(group, topic, [2])
        dead = await kafka.read(dlq, 2)
    assert out.values() == ["new"]
    assert dead[0].value == b"old"
    assert json.loads(dead[1].value)["requestContext"]["condition"] == "RecordAgeExceeded"


async def test_latest_skips_what_was_there_and_disabled_mappings_do_not_poll(
    project: Project, kafka: KafkaTools
) -> None:
    latest_topic, disabled_topic = kafka.topic(), kafka.topic()
    latest = project.function("latest")
    disabled = project.function("disabled")
    project.mapping(
        "latest", "latest", kafka=source(kafka, latest_topic, unique("g"), position="LATEST")
    )
    project.mapping(
        "disabled", "disabled", kafka=source(kafka, disabled_topic, unique("g")), enabled=False
    )
    await kafka.produce(latest_topic, [b"before"])
    await kafka.produce(disabled_topic, [b"never"])
    with dev_server([project.write()], env=FAST) as dev:
        assert "mapping default/disabled: disabled" in dev.output()

        # LATEST starts at the end once the group has joined: produce until one arrives.
        async def delivered() -> bool:
            if "after" in latest.values():
                return True
            await kafka.produce(latest_topic, [b"after"])
            return False

        await eventually_async(
            delivered, within=30, what="a delivery by the LATEST mapping", interval=0.5
        )
    assert "before" not in latest.values()
    assert disabled.invocations() == []


async def test_parallelism_is_capped_at_the_partition_count(
    project: Project, kafka: KafkaTools
) -> None:
    topic, group = kafka.topic(partitions=2), unique("g")
    out = project.function("wide")
    project.mapping("wide", "wide", kafka=source(kafka, topic, group), parallelism=5)
    await kafka.produce(topic, [str(n).encode() for n in range(40)], partition=lambda n: n % 2)
    with dev_server([project.write()], env=FAST) as dev:
        await out.wait_values(40)
        await kafka.wait_committed(group, topic, [20, 20])
        assert "polling with 2 consumer(s)" in dev.output()


async def test_throttles_wait_for_concurrency_instead_of_failing(
    project: Project, kafka: KafkaTools
) -> None:
    topic, group, dlq = kafka.topic(), unique("g"), unique("dlq")
    out = project.function("throttled", concurrency={"reserved": 0})
    project.mapping(
        "throttled",
        "throttled",
        kafka=source(kafka, topic, group),
        maximumRetryAttempts=0,
        destinationConfig={"onFailure": {"kafka": {"topic": dlq}}},
    )
    await kafka.produce(topic, [b"patient"])
    folder = project.write()
    with dev_server([folder], env={**FAST, "KFAAS_POLLER_METRICS_PORT": "0"}) as dev:
        await eventually_async(
            lambda: "throttled" in dev.output(), within=30, what="a throttled batch in the log"
        )
        # Lifting the cap (kfaas dev reloads the manifest) lets the same record through.
        project.documents[0]["spec"]["concurrency"] = {"reserved": None}
        project.write()
        await out.wait_values(1)
        await kafka.wait_committed(group, topic, [1])
    assert out.values() == ["patient"]
    assert await kafka.committed(group, topic) == [1]
