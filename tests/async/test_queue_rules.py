"""The pure parts of the durable async queues: wire encoding, queue URLs, Kafka commit points."""

from __future__ import annotations

import pytest

from kfaas.config import Settings, async_queue_for
from kfaas.gateway.asyncq import (
    AsyncEvent,
    OffsetTracker,
    QueueError,
    QueueSpec,
    decode_event,
    encode_event,
    parse_queue_url,
)


def test_an_event_survives_encoding_with_its_due_time() -> None:
    event = AsyncEvent(
        request_id="r-1",
        function_key="media/thumb",
        payload=b'{"k": "\xc3\xa9"}\x00\xff',
        accepted_at=1700000000.25,
        invocations=2,
        function_errors=1,
        throttles=1,
        carrier={"traceparent": "00-abc-def-01"},
    )
    assert decode_event(encode_event(event)) == (event, 0.0)
    assert decode_event(encode_event(event, due_at=1700000060.5)) == (event, 1700000060.5)


@pytest.mark.parametrize("data", [b"", b"{}", b"[1]", b'{"requestId": "r", "payload": "!!"}'])
def test_malformed_entries_are_a_queue_error(data: bytes) -> None:
    with pytest.raises(QueueError):
        decode_event(data)


@pytest.mark.parametrize(
    ("raw", "spec"),
    [
        ("memory", QueueSpec("memory")),
        ("", QueueSpec("memory")),
        (
            "redis://127.0.0.1:6379/0",
            QueueSpec("redis", url="redis://127.0.0.1:6379/0", name="kfaas:async"),
        ),
        (
            "rediss://:pw@r:6380/2?prefix=t1&group=g&socket_timeout=3",
            QueueSpec("redis", url="rediss://:pw@r:6380/2?socket_timeout=3", name="t1", group="g"),
        ),
        (
            "kafka://k1:9092,k2:9092",
            QueueSpec("kafka", bootstrap_servers="k1:9092,k2:9092", name="kfaas-async"),
        ),
        (
            "kafka://k1:9092/events?partitions=3&group=g",
            QueueSpec("kafka", bootstrap_servers="k1:9092", name="events", group="g", partitions=3),
        ),
    ],
)
def test_queue_urls(raw: str, spec: QueueSpec) -> None:
    assert parse_queue_url(raw) == spec


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("sqs://queue", "is not memory"),
        ("kafka:///topic", "needs host:port"),
        ("kafka://k:9092/t?partitions=0", "1 or more"),
        ("kafka://k:9092/t?partitions=many", "must be a number"),
        ("kafka://k:9092/t?acks=1", "unknown option(s) acks"),
    ],
)
def test_bad_queue_urls_say_why(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_queue_url(raw)


def test_commit_point_is_the_lowest_outstanding_offset() -> None:
    tracker = OffsetTracker()
    assert tracker.committable() is None
    tracker.taken([10, 11, 12, 13])
    assert tracker.committable() == 10  # nothing finished yet: 10 is still the next to read
    tracker.committed(10)
    assert tracker.committable() is None
    tracker.done(12)
    tracker.done(13)
    assert tracker.committable() is None  # 10 and 11 still run: a crash must redeliver them
    tracker.done(10)
    assert tracker.committable() == 11
    tracker.committed(11)
    tracker.done(11)
    assert tracker.committable() == 14
    tracker.committed(14)
    assert tracker.committable() is None
    tracker.taken([14])
    assert tracker.committable() is None
    tracker.done(14)
    assert tracker.committable() == 15


@pytest.mark.parametrize(
    ("command", "environ", "flag", "queue"),
    [
        ("dev", {}, None, "memory"),
        ("dev", {"KFAAS_REDIS_URL": "redis://r:6379/0"}, None, "memory"),
        ("gateway", {}, None, "memory"),
        ("gateway", {"KFAAS_REDIS_URL": "redis://r:6379/0"}, None, "redis://r:6379/0"),
        (
            "gateway",
            {"KFAAS_ASYNC_QUEUE": "kafka://k:9092", "KFAAS_REDIS_URL": "redis://r"},
            None,
            "kafka://k:9092",
        ),
        ("dev", {"KFAAS_ASYNC_QUEUE": "kafka://k:9092"}, "memory", "memory"),
    ],
)
def test_which_async_queue_a_command_uses(
    command: str, environ: dict[str, str], flag: str | None, queue: str
) -> None:
    assert async_queue_for(command, Settings.from_env(environ), flag) == queue


def test_queue_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "KFAAS_ASYNC_REDELIVERY_SECONDS": "2.5",
            "KFAAS_KAFKA_BOOTSTRAP_SERVERS": "k:9092",
            "KFAAS_REDIS_URL": "redis://r:6379/0",
        }
    )
    assert settings.async_redelivery_seconds == 2.5
    assert settings.kafka_bootstrap_servers == "k:9092"
    assert settings.redis_url == "redis://r:6379/0"
    with pytest.raises(ValueError, match="KFAAS_ASYNC_REDELIVERY_SECONDS"):
        Settings.from_env({"KFAAS_ASYNC_REDELIVERY_SECONDS": "soon"})
