"""EventSourceMappings with real poller pods, which invoke through the gateway by its DNS name."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from services.kafka_broker import KafkaBroker
from waiting import eventually

from node.kfaas_release import Release

# Pods start, die and are replaced for real here: minutes, not the default 120 s.
pytestmark = pytest.mark.timeout(420)

# The handler notes every record it is given in a sink stream, so the test counts deliveries;
# records whose payload says "poison" fail, to reach the mapping's dead-letter destination.
SINK = """\
import json, os
import redis

SINK = redis.Redis.from_url(os.environ["SINK_URL"])

def handler(event, context):
    for record in event["Records"]:  # SQS-shaped: the entry's fields as JSON in body
        fields = json.loads(record["body"])
        if fields.get("kind") == "poison":
            raise ValueError("poison record " + fields.get("n", "?"))
        SINK.xadd(os.environ["SINK_STREAM"], {"n": fields["n"]})
    return {"count": len(event["Records"])}
"""


def _mapping(release: Release, name: str, function: str, spec: dict[str, Any]) -> None:
    release.apply({
        "apiVersion": "kfaas.dev/v1alpha1", "kind": "EventSourceMapping",
        "metadata": {"name": name, "namespace": release.namespace},
        "spec": {"functionName": function, **spec},
    })  # fmt: skip


def stream_fields(store: redis.Redis, stream: str) -> list[dict[str, str]]:
    """The fields of each entry of ``stream`` (``store`` decodes responses)."""
    entries = cast("list[tuple[str, dict[str, str]]]", store.xrange(stream))
    return [fields for _, fields in entries]


def _deliver_through_a_killed_poller(
    release: Release,
    function: str,
    store: redis.Redis,
    sink: str,
    send: Callable[[range], None],
    kill_pod: Callable[[dict[str, Any]], None],
    *,
    total: int,
) -> None:
    """Half the records, the poller pod SIGKILLed once it is delivering, the other half: every
    record must reach the handler's sink stream (duplicates are counted, not refused)."""
    send(range(total // 2))
    poller = eventually(
        lambda: next(iter(release.running_pods(function, "poller")), None),
        within=120,
        what="a running poller pod",
    )
    eventually(lambda: store.xlen(sink) > 20 or None, within=120, what="the first deliveries")
    kill_pod(poller)
    send(range(total // 2, total))

    def all_delivered() -> list[str] | None:
        seen = [fields["n"] for fields in stream_fields(store, sink)]
        return seen if set(seen) >= {str(n) for n in range(total)} else None

    seen = eventually(all_delivered, within=240, what=f"all {total} records in the sink")
    killed = poller["metadata"]["name"]
    print(f"{total} records, {len(seen) - total} duplicates after killing poller {killed}")


def test_redis_stream_poller_pod_killed_mid_stream_loses_nothing(
    release: Release, platform_redis_url: str, kill_pod: Callable[[dict[str, Any]], None]
) -> None:
    tag = str(time.monotonic_ns())
    source, sink, dead = f"orders-{tag}", f"sink-{tag}", f"dead-{tag}"
    store = redis.Redis.from_url(platform_redis_url, decode_responses=True)
    function = release.function(
        {"app.py": SINK},
        environment={"SINK_URL": platform_redis_url, "SINK_STREAM": sink},
        timeoutSeconds=30,
    )
    _mapping(release, f"m-{tag[-8:]}", function, {
        "redis": {"url": platform_redis_url, "stream": source, "startingPosition": "TRIM_HORIZON"},
        "batchSize": 10,
        "maximumRetryAttempts": 1,
        "destinationConfig": {"onFailure": {"redis": {"stream": dead, "url": platform_redis_url}}},
    })  # fmt: skip

    def send(numbers: range) -> None:
        for n in numbers:
            store.xadd(source, {"n": str(n)})

    _deliver_through_a_killed_poller(release, function, store, sink, send, kill_pod, total=300)
    # Last, alone in its batch: a failing batch goes to the DLQ whole, good records with it.
    store.xadd(source, {"n": "poison-1", "kind": "poison"})

    def dead_letters() -> list[dict[str, str]] | None:
        entries = stream_fields(store, dead)
        return entries if any(e.get("kfaas-kind") == "failure-record" for e in entries) else None

    entries = eventually(dead_letters, within=120, what="the DLQ records")
    assert {"n": "poison-1", "kind": "poison"} in [
        {k: v for k, v in entry.items() if not k.startswith("kfaas-")} for entry in entries
    ]
    failure = next(e for e in entries if e.get("kfaas-kind") == "failure-record")
    assert json.loads(failure["body"])["requestContext"]["condition"] == "RetryAttemptsExhausted"


KAFKA_SINK = """\
import base64, json, os
import redis

SINK = redis.Redis.from_url(os.environ["SINK_URL"])

def handler(event, context):
    for records in event["records"].values():
        for record in records:
            value = base64.b64decode(record["value"]).decode()
            if value.startswith("poison"):
                raise ValueError("poison record " + value)
            SINK.xadd(os.environ["SINK_STREAM"], {"n": value})
    return None
"""


def test_kafka_poller_pod_killed_mid_stream_loses_nothing(
    release: Release,
    platform_redis_url: str,
    pod_kafka_service: KafkaBroker,
    kill_pod: Callable[[dict[str, Any]], None],
) -> None:
    tag = str(time.monotonic_ns())
    topic, dead, sink = f"orders-{tag}", f"dead-{tag}", f"sink-{tag}"
    pod_kafka_service.create_topic(topic, partitions=2)
    pod_kafka_service.create_topic(dead)
    store = redis.Redis.from_url(platform_redis_url, decode_responses=True)
    function = release.function(
        {"app.py": KAFKA_SINK},
        environment={"SINK_URL": platform_redis_url, "SINK_STREAM": sink},
        timeoutSeconds=30,
    )
    servers = pod_kafka_service.bootstrap_servers_for_pods
    _mapping(release, f"k-{tag[-8:]}", function, {
        "kafka": {"bootstrapServers": servers, "topic": topic, "startingPosition": "TRIM_HORIZON"},
        "batchSize": 10,
        "maximumRetryAttempts": 1,
        "destinationConfig": {"onFailure": {"kafka": {"topic": dead, "bootstrapServers": servers}}},
    })  # fmt: skip

    def send(numbers: range) -> None:
        produce(pod_kafka_service.bootstrap_servers, topic, [str(n) for n in numbers])

    _deliver_through_a_killed_poller(release, function, store, sink, send, kill_pod, total=200)
    # Last, alone in its batch: a failing batch goes to the DLQ whole, good records with it.
    produce(pod_kafka_service.bootstrap_servers, topic, ["poison-1"])
    dead_letters = eventually(
        lambda: consume(pod_kafka_service.bootstrap_servers, dead) or None,
        within=120,
        what="the DLQ records",
    )
    assert b"poison-1" in dead_letters


def produce(servers: str, topic: str, values: list[str]) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=servers)
        await producer.start()
        try:
            for value in values:
                await producer.send(topic, value.encode())
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())


def consume(servers: str, topic: str) -> list[bytes]:
    async def read() -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=servers, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=3000)
            return [record.value or b"" for records in batches.values() for record in records]
        finally:
            await consumer.stop()

    return asyncio.run(read())
