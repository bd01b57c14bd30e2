"""Faults with numbers: a poller killed with SIGKILL mid-batch, Redis and Kafka restarted.

Each test checks that nothing is lost (every record is delivered or dead-lettered), that order
holds where it must, and reports how many records were delivered twice — the price of
at-least-once delivery, which handlers absorb by being idempotent. The figures are printed
(`pytest -s`) and appended as JSON lines to $KFAAS_FAULT_REPORT when it is set.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from devserver import dev_server
from waiting import eventually_async

from streams.kit import FAST, KafkaTools, Output, Project, RedisTools, unique

pytestmark = pytest.mark.faults


def report(name: str, out: Output, expected: int, **extra: Any) -> dict[str, Any]:
    delivered = out.values()
    counts = Counter(delivered)
    figures = {
        "test": name,
        "records": expected,
        "delivered": len(delivered),
        "unique": len(counts),
        "lost": expected - len(counts),
        "duplicates": sum(n - 1 for n in counts.values()),
        "invocations": len(out.invocations()),
        **extra,
    }
    print(f"\nFAULTS {json.dumps(figures)}")
    if path := os.environ.get("KFAAS_FAULT_REPORT"):
        with open(path, "a") as sink:
            sink.write(json.dumps(figures) + "\n")
    return figures


def assert_partition_order(out: Output, partitions: int) -> None:
    """Per partition, records arrive in offset order; a redelivery only ever goes back."""
    for partition in range(partitions):
        highest = -1
        for call in out.invocations():
            sequence = [
                int(v.split(":")[1]) for v in call["values"] if v.startswith(f"{partition}:")
            ]
            if not sequence:
                continue
            assert sequence == list(range(sequence[0], sequence[0] + len(sequence))), sequence
            assert sequence[0] <= highest + 1, f"partition {partition} skipped ahead"
            highest = max(highest, sequence[-1])


async def test_kafka_poller_killed_mid_batch_loses_nothing(
    project: Project, kafka: KafkaTools, pollers: Any
) -> None:
    partitions, per_partition = 3, 600
    topic, group = kafka.topic(partitions), unique("g")
    out = project.function("victim", env={"SLEEP": "0.03"})
    mapping = project.mapping(
        "victim",
        "victim",
        kafka={
            "bootstrapServers": kafka.bootstrap,
            "topic": topic,
            "consumerGroupId": group,
            "startingPosition": "TRIM_HORIZON",
        },
        batchSize=20,
    )
    project.documents.remove(mapping)  # run by a separate `kfaas poller`, not by kfaas dev
    values = [
        f"{n % partitions}:{n // partitions}".encode() for n in range(partitions * per_partition)
    ]
    await kafka.produce(topic, values, partition=lambda n: n % partitions)
    with dev_server([project.write()], env=FAST) as dev:
        poller = pollers(mapping, dev.url)
        poller.start()
        await out.wait_values(len(values) // 3, within=60)
        poller.kill()
        killed_at = len(out.values())
        poller.start()
        await out.wait_values(len(values), within=90)
        await kafka.wait_committed(group, topic, [per_partition] * partitions, within=60)
        assert poller.stop() == 0
    figures = report("kafka poller SIGKILL", out, len(values), killed_after=killed_at)
    assert figures["lost"] == 0
    assert_partition_order(out, partitions)


async def test_redis_poller_killed_mid_batch_loses_nothing(
    project: Project, redis: RedisTools, pollers: Any
) -> None:
    stream, group, total = unique("s"), unique("g"), 1500
    out = project.function("victim", env={"SLEEP": "0.03"})
    mapping = project.mapping(
        "victim",
        "victim",
        redis={
            "url": redis.url,
            "stream": stream,
            "consumerGroup": group,
            "startingPosition": "TRIM_HORIZON",
        },
        batchSize=20,
    )
    project.documents.remove(mapping)
    ids = await redis.add(stream, [{"body": f"0:{n}"} for n in range(total)])
    with dev_server([project.write()], env=FAST) as dev:
        poller = pollers(mapping, dev.url, KFAAS_POLLER_CONSUMER_NAME="first")
        poller.start()
        await out.wait_values(total // 3, within=60)
        poller.kill()
        killed_at = len(out.values())
        # A new pod has a new name: the dead one's pending entries come back through XAUTOCLAIM.
        poller.start(KFAAS_POLLER_CONSUMER_NAME="second")
        await out.wait_values(total, within=90)
        await redis.wait_pending(stream, group, 0, within=60)
        assert poller.stop() == 0
    figures = report("redis poller SIGKILL", out, total, killed_after=killed_at)
    assert figures["lost"] == 0
    assert "reclaimed" in poller.output()
    for call in out.invocations():
        numbers = [int(v.split(":")[1]) for v in call["values"]]
        assert numbers == sorted(numbers), "a batch is in stream order"
    assert len(ids) == total


async def test_redis_restart_mid_stream(project: Project, redis: RedisTools) -> None:
    stream, group = unique("s"), unique("g")
    out = project.function("steady", env={"SLEEP": "0.01"})
    project.mapping(
        "steady",
        "steady",
        redis={
            "url": redis.url,
            "stream": stream,
            "consumerGroup": group,
            "startingPosition": "TRIM_HORIZON",
        },
        batchSize=10,
    )
    await redis.add(stream, [{"body": f"0:{n}"} for n in range(500)])
    with dev_server([project.write()], env=FAST):
        await out.wait_values(100, within=60)
        await asyncio.to_thread(redis.server.restart)
        await redis.client.connection_pool.disconnect()
        await redis.add(stream, [{"body": f"0:{n}"} for n in range(500, 1000)])
        await out.wait_values(1000, within=90)
        await redis.wait_pending(stream, group, 0, within=60)
    figures = report("redis restart", out, 1000)
    assert figures["lost"] == 0


async def test_kafka_broker_restart_mid_stream(project: Project, kafka: KafkaTools) -> None:
    partitions = 3
    topic, group = kafka.topic(partitions), unique("g")
    out = project.function("steady", env={"SLEEP": "0.01"})
    project.mapping(
        "steady",
        "steady",
        kafka={
            "bootstrapServers": kafka.bootstrap,
            "topic": topic,
            "consumerGroupId": group,
            "startingPosition": "TRIM_HORIZON",
        },
        batchSize=10,
    )

    def values(start: int, stop: int) -> list[bytes]:
        return [f"{n % partitions}:{n // partitions}".encode() for n in range(start, stop)]

    await kafka.produce(topic, values(0, 600), partition=lambda n: n % partitions)
    with dev_server([project.write()], env=FAST) as dev:
        await out.wait_values(100, within=60)
        await asyncio.to_thread(kafka.broker.restart)
        await kafka.produce(topic, values(600, 1200), partition=lambda n: n % partitions)
        await out.wait_values(1200, within=120)
        await kafka.wait_committed(group, topic, [400] * partitions, within=90)
        await eventually_async(
            lambda: "serving on" in dev.output(), within=30, what="dev still serving"
        )
    figures = report("kafka broker restart", out, 1200)
    assert figures["lost"] == 0
    assert_partition_order(out, partitions)


async def test_kafka_rebalances_as_pollers_join_and_leave(
    project: Project, kafka: KafkaTools, pollers: Any
) -> None:
    partitions, per_partition = 4, 400
    topic, group = kafka.topic(partitions), unique("g")
    out = project.function("shared", env={"SLEEP": "0.03"})
    mapping = project.mapping(
        "shared",
        "shared",
        kafka={
            "bootstrapServers": kafka.bootstrap,
            "topic": topic,
            "consumerGroupId": group,
            "startingPosition": "TRIM_HORIZON",
        },
        batchSize=20,
    )
    project.documents.remove(mapping)
    total = partitions * per_partition
    values = [f"{n % partitions}:{n // partitions}".encode() for n in range(total)]
    await kafka.produce(topic, values, partition=lambda n: n % partitions)
    with dev_server([project.write()], env=FAST) as dev:
        first, second = pollers(mapping, dev.url), pollers(mapping, dev.url)
        first.start()
        await out.wait_values(total // 4, within=60)
        second.start()  # the group rebalances: partitions move to the newcomer mid-batch
        await eventually_async(
            lambda: "partitions assigned" in second.output(), within=60, what="a rebalance"
        )
        await out.wait_values(total // 2, within=60)
        assert second.stop() == 0  # and back again when it leaves
        await out.wait_values(total, within=90)
        await kafka.wait_committed(group, topic, [per_partition] * partitions, within=60)
        assert first.stop() == 0
    figures = report("kafka rebalance (join, leave)", out, total)
    assert figures["lost"] == 0
    assert_partition_order(out, partitions)


async def test_sigterm_lets_the_batches_in_flight_finish(
    project: Project, redis: RedisTools, kafka: KafkaTools, pollers: Any, tmp_path: Path
) -> None:
    stream, topic = unique("s"), kafka.topic()
    redis_group, kafka_group = unique("g"), unique("g")
    started = tmp_path / "started.jsonl"
    out = project.function("slow", env={"SLEEP": "1.5", "STARTED": str(started)})
    redis_mapping = project.mapping(
        "slow-redis",
        "slow",
        redis={
            "url": redis.url,
            "stream": stream,
            "consumerGroup": redis_group,
            "startingPosition": "TRIM_HORIZON",
        },
        batchSize=5,
    )
    kafka_mapping = project.mapping(
        "slow-kafka",
        "slow",
        kafka={
            "bootstrapServers": kafka.bootstrap,
            "topic": topic,
            "consumerGroupId": kafka_group,
            "startingPosition": "TRIM_HORIZON",
        },
        batchSize=5,
    )
    project.documents.remove(redis_mapping)
    project.documents.remove(kafka_mapping)
    await redis.add(stream, [{"body": f"r{n}"} for n in range(5)])
    await kafka.produce(topic, [f"k{n}".encode() for n in range(5)])
    with dev_server([project.write()], env=FAST) as dev:
        from_redis = pollers(redis_mapping, dev.url)
        from_kafka = pollers(kafka_mapping, dev.url)
        from_redis.start()
        from_kafka.start()
        # SIGTERM while both batches are inside the handler (it sleeps 1.5 s).
        await eventually_async(
            lambda: started.exists() and len(started.read_text().splitlines()) == 2,
            within=30,
            what="both batches in flight",
        )
        assert from_redis.stop() == 0
        assert from_kafka.stop() == 0
        assert await redis.pending(stream, redis_group) == 0
        assert await kafka.committed(kafka_group, topic) == [5]
    assert sorted(out.values()) == sorted([f"r{n}" for n in range(5)] + [f"k{n}" for n in range(5)])


async def test_kafka_retry_counts_survive_a_crash(
    project: Project, kafka: KafkaTools, pollers: Any
) -> None:
    topic, group, dlq = kafka.topic(), unique("g"), unique("dlq")
    out = project.function("poisoned", mode="error_on_poison")
    mapping = project.mapping(
        "poisoned",
        "poisoned",
        kafka={
            "bootstrapServers": kafka.bootstrap,
            "topic": topic,
            "consumerGroupId": group,
            "startingPosition": "TRIM_HORIZON",
        },
        maximumRetryAttempts=3,
        destinationConfig={"onFailure": {"kafka": {"topic": dlq}}},
    )
    project.documents.remove(mapping)
    await kafka.produce(topic, [b"poison"])
    with dev_server([project.write()], env=FAST) as dev:
        # Retries half a second apart, so the poller can be killed between two of them.
        first = pollers(mapping, dev.url, KFAAS_STREAM_RETRY_BASE_SECONDS="0.5")
        first.start()
        await eventually_async(
            lambda: first.output().count("retrying") >= 2, within=30, what="two failed attempts"
        )
        first.kill()
        second = pollers(mapping, dev.url, KFAAS_STREAM_RETRY_BASE_SECONDS="0.5")
        second.start()
        await kafka.wait_committed(group, topic, [1], within=60)
        dead = await kafka.read(dlq, 2)
        assert "already failed 2 times" in second.output()
    assert dead[0].value == b"poison"
    failure = json.loads(dead[1].value)
    poisoned = [call for call in out.invocations() if "poison" in call["values"]]
    # One attempt and three retries across both processes, not three more after the crash.
    assert len(poisoned) == 4
    assert failure["requestContext"]["approximateInvokeCount"] == 4


async def test_redis_retry_counts_survive_a_crash(
    project: Project, redis: RedisTools, pollers: Any
) -> None:
    stream, group, dlq = unique("s"), unique("g"), unique("dlq")
    out = project.function("poisoned", mode="error_on_poison", env={"KEEP_EVENT": "1"})
    mapping = project.mapping(
        "poisoned",
        "poisoned",
        redis={
            "url": redis.url,
            "stream": stream,
            "consumerGroup": group,
            "startingPosition": "TRIM_HORIZON",
        },
        maximumRetryAttempts=3,
        destinationConfig={"onFailure": {"redis": {"stream": dlq}}},
    )
    project.documents.remove(mapping)
    await redis.add(stream, [{"body": "poison"}])
    with dev_server([project.write()], env=FAST) as dev:
        first = pollers(
            mapping,
            dev.url,
            KFAAS_STREAM_RETRY_BASE_SECONDS="0.5",
            KFAAS_POLLER_CONSUMER_NAME="first",
        )
        first.start()
        await eventually_async(
            lambda: first.output().count("retrying") >= 2, within=30, what="two failed attempts"
        )
        first.kill()
        # Another consumer reclaims the entry once it has been idle for a second.
        second = pollers(
            mapping,
            dev.url,
            KFAAS_STREAM_RETRY_BASE_SECONDS="0.5",
            KFAAS_POLLER_CONSUMER_NAME="second",
        )
        second.start()
        await redis.wait_pending(stream, group, 0, within=60)
        entries = await redis.entries(dlq)
    assert [call["values"] for call in out.invocations()] == [["poison"]] * 4
    counts = [
        call["event"]["Records"][0]["attributes"]["ApproximateReceiveCount"]
        for call in out.invocations()
    ]
    assert counts == ["1", "2", "4", "5"]  # the crash itself was one more receive
    failure = json.loads(entries[-1][1]["body"])
    assert failure["requestContext"]["approximateInvokeCount"] == 4
