"""Stream events and failure records, judged by aws-lambda-powertools where it has a model."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import KafkaEvent, SQSEvent

from kfaas.pollers.destinations import as_kafka_messages, as_stream_entries
from kfaas.pollers.kafka_events import encode_kafka_event, kafka_event, kafka_stream_record
from kfaas.pollers.records import failure_record
from kfaas.pollers.sqs_events import (
    encode_sqs_event,
    encode_sqs_record,
    entry_body,
    redis_stream_record,
    sqs_event,
    sqs_record,
)

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def kafka(offset: int, value: bytes | None = b'{"type": "image"}', key: bytes | None = b"k"):  # type: ignore[no-untyped-def]
    return kafka_stream_record(
        topic="uploads",
        partition=2,
        offset=offset,
        timestamp_ms=1_700_000_000_000 + offset,
        timestamp_type=0,
        key=key,
        value=value,
        headers=[("traceparent", TRACEPARENT), ("empty", b"")],
        with_filter_data=True,
    )


def test_kafka_event_is_self_managed_kafka() -> None:
    event = kafka_event("k1:9092,k2:9092", [kafka(7), kafka(8, key=None)])
    parsed = KafkaEvent(event)
    assert parsed.event_source == "SelfManagedKafka"
    assert parsed.bootstrap_servers == "k1:9092,k2:9092"
    assert list(event["records"]) == ["uploads-2"]
    first, second = list(parsed.records)
    assert (first.topic, first.partition, first.offset) == ("uploads", 2, 7)
    assert first.timestamp == 1_700_000_000_007
    assert first.timestamp_type == "CREATE_TIME"
    assert first.decoded_key == b"k"
    assert first.json_value == {"type": "image"}
    assert first.decoded_headers["traceparent"] == TRACEPARENT
    assert first.headers[0] == {"traceparent": list(TRACEPARENT)}
    assert second.key is None


def test_kafka_record_facts_for_filters_and_tracing() -> None:
    record = kafka(7)
    assert record.item_id == "7"
    assert record.position == ("uploads", 2, 7)
    assert record.filter_data["value"] == {"type": "image"}
    assert record.filter_data["key"] == "k"
    assert record.trace_headers == {"traceparent": TRACEPARENT.decode()}
    assert record.size == len(json.dumps(record.delivered, separators=(",", ":")))


def test_events_are_joined_from_each_record_s_own_encoding() -> None:
    records = [kafka(7), kafka(8, key=None)]
    assert json.loads(encode_kafka_event("k:9092", records)) == kafka_event("k:9092", records)
    entries = [redis("1-0", {"body": "a"}), redis("2-0", {"x": "1"})]
    assert json.loads(encode_sqs_event(entries)) == sqs_event(entries)


def test_a_tombstone_has_no_value() -> None:
    record = kafka(1, value=None)
    assert "value" not in record.delivered
    assert record.filter_data["value"] is None


def redis(entry_id: str, fields: dict[str, str]):  # type: ignore[no-untyped-def]
    return redis_stream_record(
        entry_id=entry_id,
        fields=fields,
        receive_count=2,
        first_receive_ms=1_700_000_000_500,
        stream="orders",
        group="billing",
        stream_arn="arn:kfaas:redis:us-east-1:default:stream/orders",
        region="us-east-1",
        with_filter_data=True,
    )


def test_redis_entries_are_sqs_records() -> None:
    event = sqs_event(
        [redis("1700000000123-0", {"body": '{"n": 1}', "traceparent": TRACEPARENT.decode()})]
    )
    (record,) = SQSEvent(event).records
    assert record.message_id == "1700000000123-0"
    assert record.body == '{"n": 1}'
    assert record.json_body == {"n": 1}
    assert record.attributes.approximate_receive_count == "2"
    assert record.attributes.sent_timestamp == "1700000000123"
    assert record.attributes.approximate_first_receive_timestamp == "1700000000500"
    assert record.attributes.sender_id == "kfaas"
    traceparent = record.message_attributes["traceparent"]
    assert traceparent is not None and traceparent.string_value == TRACEPARENT.decode()
    assert record.md5_of_body == hashlib.md5(b'{"n": 1}', usedforsecurity=False).hexdigest()
    assert record.event_source == "kfaas:redis"
    assert record.event_source_arn == "arn:kfaas:redis:us-east-1:default:stream/orders"
    assert record.aws_region == "us-east-1"
    assert base64.b64decode(record.receipt_handle).decode().endswith("1700000000123-0")


@pytest.mark.parametrize(
    "fields",
    [
        {"body": "plain"},
        {"body": 'quotes " and \\ and \n and é and 😀', "kind": "x", "traceparent": "00-a"},
        {"a": "1", "b": "ü"},
        {"body": ""},
    ],
)
def test_sqs_records_are_encoded_as_the_dict_would_be(fields: dict[str, str]) -> None:
    facts: dict[str, Any] = {
        "entry_id": "1700000000123-7",
        "fields": fields,
        "receive_count": 3,
        "first_receive_ms": 1_700_000_000_500,
        "stream": "orders",
        "group": "billing",
        "stream_arn": "arn:kfaas:redis:us-east-1:default:stream/orders",
        "region": "us-east-1",
    }
    assert json.loads(encode_sqs_record(**facts)) == sqs_record(**facts)


def test_the_body_rule() -> None:
    assert entry_body({"body": "hello"}) == ("hello", {})
    assert entry_body({"body": "hi", "kind": "x"}) == ("hi", {"kind": "x"})
    assert entry_body({"a": "1", "b": "2"}) == ('{"a":"1","b":"2"}', {})


def test_redis_filters_see_the_body_as_json() -> None:
    assert redis("1-0", {"body": '{"n": 1}'}).filter_data["body"] == {"n": 1}
    assert redis("1-0", {"x": "1"}).filter_data["body"] == {"x": "1"}


def test_failure_record_for_kafka() -> None:
    record = failure_record(
        source="kafka",
        records=[kafka(7), kafka(9)],
        request_id="r-1",
        function_arn="arn:aws:lambda:us-east-1:media:function:thumbnail",
        condition="RetryAttemptsExhausted",
        invoke_count=3,
        status_code=200,
        function_error="Unhandled",
        stream_arn="arn:kfaas:kafka:us-east-1:media:topic/uploads",
        now=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    )
    assert record == {
        "requestContext": {
            "requestId": "r-1",
            "functionArn": "arn:aws:lambda:us-east-1:media:function:thumbnail",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 3,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "version": "1.0",
        "timestamp": "2026-01-02T03:04:05.678Z",
        "KafkaBatchInfo": {
            "topic": "uploads",
            "partition": 2,
            "startOffset": 7,
            "endOffset": 9,
            "approximateArrivalOfFirstRecord": "2023-11-14T22:13:20.007Z",
            "approximateArrivalOfLastRecord": "2023-11-14T22:13:20.009Z",
            "batchSize": 2,
            "streamArn": "arn:kfaas:kafka:us-east-1:media:topic/uploads",
        },
    }


def test_failure_record_for_redis() -> None:
    record = failure_record(
        source="redis",
        records=[redis("1700000000123-0", {"body": "a"}), redis("1700000000200-1", {"body": "b"})],
        request_id="r-2",
        function_arn="arn",
        condition="RecordAgeExceeded",
        invoke_count=0,
        status_code=0,
        function_error=None,
        stream_arn="arn:kfaas:redis:us-east-1:default:stream/orders",
        now=datetime(2026, 1, 2, tzinfo=UTC),
    )
    assert "functionError" not in record["responseContext"]
    assert record["RedisBatchInfo"] == {
        "shardId": "orders",
        "startSequenceNumber": "1700000000123-0",
        "endSequenceNumber": "1700000000200-1",
        "approximateArrivalOfFirstRecord": "2023-11-14T22:13:20.123Z",
        "approximateArrivalOfLastRecord": "2023-11-14T22:13:20.200Z",
        "batchSize": 2,
        "streamArn": "arn:kfaas:redis:us-east-1:default:stream/orders",
    }


FAILURE = {"requestContext": {"requestId": "r-9"}}


def test_destination_copies_keep_what_the_records_had() -> None:
    messages = as_kafka_messages([kafka(7)], FAILURE)
    key, value, headers = messages[0]
    assert (key, value) == (b"k", b'{"type": "image"}')
    assert ("traceparent", TRACEPARENT) in headers
    assert ("kfaas-source", b"uploads-2@7") in headers
    assert ("kfaas-request-id", b"r-9") in headers
    assert messages[-1] == (None, json.dumps(FAILURE).encode(), [("kfaas-kind", b"failure-record")])

    entries = as_stream_entries([redis("5-0", {"body": "x", "a": "1"})], FAILURE)
    assert entries[0] == {"body": "x", "a": "1", "kfaas-source": "5-0", "kfaas-request-id": "r-9"}
    assert entries[-1] == {"kfaas-kind": "failure-record", "body": json.dumps(FAILURE)}


def test_records_cross_over_between_kafka_and_streams() -> None:
    (entry, _) = as_stream_entries([kafka(7)], FAILURE)
    assert entry["key"] == b"k"
    assert entry["value"] == b'{"type": "image"}'
    assert entry["header.traceparent"] == TRACEPARENT
    assert entry["kfaas-source"] == "uploads-2@7"
    (message, _) = as_kafka_messages([redis("5-0", {"body": "x"})], FAILURE)
    assert message[:2] == (b"5-0", b"x")
