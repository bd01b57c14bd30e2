"""The JSON a stream batch is delivered as, and the failure record a mapping gives up with.

Pure functions from the values the clients hand us to Lambda's shapes (LAMBDA.md, "Event source
mappings"), so unmodified handlers and aws-lambda-powertools read them:

- Kafka batches are the `SelfManagedKafka` event: records keyed `topic-partition`, key and value in
  base64, headers as lists of byte values. A null key is left out; so is a null value (a tombstone).
- Redis stream entries become SQS records (`eventSource: "kfaas:redis"`). An entry with a `body`
  field delivers that field's value as `body` and its other fields as string `messageAttributes`;
  an entry without one delivers all its fields as a JSON object in `body`. Field names and values
  are decoded as UTF-8 (invalid bytes become U+FFFD).
- What a mapping gives up on goes to its on-failure destination with a record in the shape of
  Lambda's stream failure record, with `KafkaBatchInfo` or `RedisBatchInfo`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any, Literal, NotRequired, TypedDict

from kfaas.events import iso_timestamp

from .batches import Condition
from .filters import parse_maybe_json

TRACE_HEADERS = ("traceparent", "tracestate")


@dataclass
class StreamRecord:
    """One record in a poller's hands, whatever the source.

    `item_id` is what a handler names in `batchItemFailures` (the offset for Kafka, the entry id for
    Redis); `position` orders records and identifies them for retry state; `delivered` is the JSON
    value placed in the event; `filter_data` what filter patterns are matched against.
    """

    item_id: str
    position: tuple[str, int, int]
    arrival_ms: int
    # The record as JSON: encoded once, joined into every event the record is part of.
    encoded: bytes
    filter_data: dict[str, Any] = field(default_factory=dict)
    trace_headers: dict[str, str] = field(default_factory=dict)
    # What the destination gets back for a record given up on (the source's own bytes).
    raw: Any = None
    # `encoded` decoded, kept when the builder had it, else parsed on first use.
    decoded: dict[str, Any] | None = None

    @property
    def size(self) -> int:
        return len(self.encoded)

    @property
    def delivered(self) -> dict[str, Any]:
        if self.decoded is None:
            self.decoded = json.loads(self.encoded)
        return self.decoded

    def reencode(self) -> None:
        """Refresh `encoded` after `delivered` changed (a receive count on a retry)."""
        self.encoded = dumps(self.delivered)


# json.dumps of a string, without the encoder object around it.
_quoted: Callable[[str], str] = encode_basestring_ascii


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# -- Kafka -----------------------------------------------------------------------------------


class KafkaRecordJson(TypedDict):
    topic: str
    partition: int
    offset: int
    timestamp: int
    timestampType: str
    key: NotRequired[str]
    value: NotRequired[str]
    headers: list[dict[str, list[int]]]


class KafkaEvent(TypedDict):
    eventSource: Literal["SelfManagedKafka"]
    bootstrapServers: str
    records: dict[str, list[KafkaRecordJson]]


TIMESTAMP_TYPES = {0: "CREATE_TIME", 1: "LOG_APPEND_TIME"}


def kafka_record_json(
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    timestamp_type: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
) -> KafkaRecordJson:
    record: KafkaRecordJson = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": timestamp_ms,
        "timestampType": TIMESTAMP_TYPES.get(timestamp_type, "CREATE_TIME"),
        "headers": [{name: list(data or b"")} for name, data in headers],
    }
    if key is not None:
        record["key"] = base64.b64encode(key).decode("ascii")
    if value is not None:
        record["value"] = base64.b64encode(value).decode("ascii")
    return record


def kafka_stream_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    timestamp_type: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    with_filter_data: bool,
) -> StreamRecord:
    delivered = kafka_record_json(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=timestamp_ms,
        timestamp_type=timestamp_type,
        key=key,
        value=value,
        headers=headers,
    )
    filter_data: dict[str, Any] = {}
    if with_filter_data:
        filter_data = {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "timestamp": timestamp_ms,
            "key": None if key is None else key.decode("utf-8", errors="replace"),
            "value": parse_maybe_json(value),
        }
    trace = {
        name: data.decode("latin-1") for name, data in headers if name in TRACE_HEADERS and data
    }
    return StreamRecord(
        item_id=str(offset),
        position=(topic, partition, offset),
        arrival_ms=timestamp_ms,
        encoded=dumps(delivered),
        decoded=dict(delivered),
        filter_data=filter_data,
        trace_headers=trace,
        raw=(key, value, list(headers)),
    )


def encode_kafka_event(bootstrap_servers: str, records: Sequence[StreamRecord]) -> bytes:
    """`kafka_event` as JSON, joined from the records' own encodings."""
    grouped: dict[str, list[bytes]] = {}
    for record in records:
        topic, partition, _ = record.position
        grouped.setdefault(f"{topic}-{partition}", []).append(record.encoded)
    parts = b",".join(
        dumps(key) + b":[" + b",".join(items) + b"]" for key, items in grouped.items()
    )
    return (
        b'{"eventSource":"SelfManagedKafka","bootstrapServers":'
        + dumps(bootstrap_servers)
        + b',"records":{'
        + parts
        + b"}}"
    )


def kafka_event(bootstrap_servers: str, records: Sequence[StreamRecord]) -> dict[str, Any]:
    grouped: dict[str, list[Any]] = {}
    for record in records:
        topic, partition, _ = record.position
        grouped.setdefault(f"{topic}-{partition}", []).append(record.delivered)
    event: KafkaEvent = {
        "eventSource": "SelfManagedKafka",
        "bootstrapServers": bootstrap_servers,
        "records": grouped,
    }
    return dict(event)


# -- Redis streams as SQS records ------------------------------------------------------------


class MessageAttribute(TypedDict):
    stringValue: str
    stringListValues: list[str]
    binaryListValues: list[str]
    dataType: Literal["String"]


class SqsAttributes(TypedDict):
    ApproximateReceiveCount: str
    SentTimestamp: str
    SenderId: str
    ApproximateFirstReceiveTimestamp: str


class SqsRecord(TypedDict):
    messageId: str
    receiptHandle: str
    body: str
    attributes: SqsAttributes
    messageAttributes: dict[str, MessageAttribute]
    md5OfBody: str
    eventSource: Literal["kfaas:redis"]
    eventSourceARN: str
    awsRegion: str


SENDER_ID = "kfaas"


def entry_timestamp_ms(entry_id: str) -> int:
    """The milliseconds part of a stream entry id (`<ms>-<seq>`): when Redis added it."""
    return int(entry_id.split("-", 1)[0])


def entry_sequence(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def redis_stream_arn(region: str, namespace: str, stream: str) -> str:
    return f"arn:kfaas:redis:{region}:{namespace}:stream/{stream}"


def entry_body(fields: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """An entry's SQS body and message attributes (see the module docstring for the rule)."""
    if "body" in fields:
        return fields["body"], {name: value for name, value in fields.items() if name != "body"}
    return json.dumps(dict(fields), separators=(",", ":")), {}


def decode_fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(name): _text(value) for name, value in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def sqs_record(
    *,
    entry_id: str,
    fields: Mapping[str, str],
    receive_count: int,
    first_receive_ms: int,
    stream: str,
    group: str,
    stream_arn: str,
    region: str,
) -> SqsRecord:
    body, attributes = entry_body(fields)
    receipt = base64.b64encode(f"{stream}\n{group}\n{entry_id}".encode()).decode("ascii")
    return {
        "messageId": entry_id,
        "receiptHandle": receipt,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(entry_timestamp_ms(entry_id)),
            "SenderId": SENDER_ID,
            "ApproximateFirstReceiveTimestamp": str(first_receive_ms),
        },
        "messageAttributes": {
            name: {
                "stringValue": value,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
            for name, value in attributes.items()
        },
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "kfaas:redis",
        "eventSourceARN": stream_arn,
        "awsRegion": region,
    }


# What `sqs_record` builds, as text: a tenth of the time of building the dict and dumping it, which
# counts at tens of thousands of entries a second. test_event_shapes checks the two agree.
_SQS_JSON = (
    '{"messageId":"%s","receiptHandle":"%s","body":%s,"attributes":{"ApproximateReceiveCount":'
    '"%d","SentTimestamp":"%s","SenderId":"kfaas","ApproximateFirstReceiveTimestamp":"%d"},'
    '"messageAttributes":%s,"md5OfBody":"%s","eventSource":"kfaas:redis","eventSourceARN":%s,'
    '"awsRegion":%s}'
)


def encode_sqs_record(
    *,
    entry_id: str,
    fields: Mapping[str, str],
    receive_count: int,
    first_receive_ms: int,
    stream: str,
    group: str,
    stream_arn: str,
    region: str,
) -> bytes:
    """`sqs_record` as compact JSON."""
    body, attributes = entry_body(fields)
    receipt = base64.b64encode(f"{stream}\n{group}\n{entry_id}".encode()).decode("ascii")
    message_attributes = (
        dumps(
            {
                name: {
                    "stringValue": value,
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": "String",
                }
                for name, value in attributes.items()
            }
        ).decode()
        if attributes
        else "{}"
    )
    text = _SQS_JSON % (
        _quoted(entry_id)[1:-1],
        receipt,
        _quoted(body),
        receive_count,
        entry_id.split("-", 1)[0],
        first_receive_ms,
        message_attributes,
        hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        _quoted(stream_arn),
        _quoted(region),
    )
    return text.encode()


def redis_stream_record(
    *,
    entry_id: str,
    fields: Mapping[str, str],
    receive_count: int,
    first_receive_ms: int,
    stream: str,
    group: str,
    stream_arn: str,
    region: str,
    with_filter_data: bool,
) -> StreamRecord:
    encoded = encode_sqs_record(
        entry_id=entry_id,
        fields=fields,
        receive_count=receive_count,
        first_receive_ms=first_receive_ms,
        stream=stream,
        group=group,
        stream_arn=stream_arn,
        region=region,
    )
    milliseconds, sequence = entry_sequence(entry_id)
    record = StreamRecord(
        item_id=entry_id,
        position=(stream, milliseconds, sequence),
        arrival_ms=milliseconds,
        encoded=encoded,
        trace_headers={name: fields[name] for name in TRACE_HEADERS if fields.get(name)},
        raw=dict(fields),
    )
    if with_filter_data:
        delivered = record.delivered
        record.filter_data = {**delivered, "body": parse_maybe_json(delivered["body"])}
    return record


def sqs_event(records: Sequence[StreamRecord]) -> dict[str, Any]:
    return {"Records": [record.delivered for record in records]}


def encode_sqs_event(records: Sequence[StreamRecord]) -> bytes:
    """`sqs_event` as JSON, joined from the records' own encodings."""
    return b'{"Records":[' + b",".join(record.encoded for record in records) + b"]}"


# -- the on-failure record -------------------------------------------------------------------


def _arrival(milliseconds: int) -> str:
    return iso_timestamp(datetime.fromtimestamp(milliseconds / 1000, UTC))


def failure_record(
    *,
    source: Literal["kafka", "redis"],
    records: Sequence[StreamRecord],
    request_id: str,
    function_arn: str,
    condition: Condition,
    invoke_count: int,
    status_code: int,
    function_error: str | None,
    stream_arn: str,
    now: datetime,
) -> dict[str, Any]:
    """Lambda's stream on-failure record for `records` (one partition or stream, in order)."""
    response_context: dict[str, Any] = {"statusCode": status_code, "executedVersion": "$LATEST"}
    if function_error is not None:
        response_context["functionError"] = function_error
    first, last = records[0], records[-1]
    arrivals = [record.arrival_ms for record in records]
    info: dict[str, Any]
    if source == "kafka":
        topic, partition, _ = first.position
        info = {
            "topic": topic,
            "partition": partition,
            "startOffset": first.position[2],
            "endOffset": last.position[2],
        }
        key = "KafkaBatchInfo"
    else:
        info = {
            "shardId": first.position[0],
            "startSequenceNumber": first.item_id,
            "endSequenceNumber": last.item_id,
        }
        key = "RedisBatchInfo"
    info.update(
        {
            "approximateArrivalOfFirstRecord": _arrival(min(arrivals)),
            "approximateArrivalOfLastRecord": _arrival(max(arrivals)),
            "batchSize": len(records),
            "streamArn": stream_arn,
        }
    )
    return {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": iso_timestamp(now),
        key: info,
    }


def kafka_topic_arn(region: str, namespace: str, topic: str) -> str:
    return f"arn:kfaas:kafka:{region}:{namespace}:topic/{topic}"


def function_arn(region: str, namespace: str, name: str) -> str:
    return f"arn:aws:lambda:{region}:{namespace}:function:{name}"
