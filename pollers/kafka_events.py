"""Kafka records as Lambda's `SelfManagedKafka` event (LAMBDA.md, "Event source mappings").

Records are keyed `topic-partition`, key and value in base64, headers as lists of byte values, so
unmodified handlers and aws-lambda-powertools' `KafkaEvent` read them. A null key is left out; so
is a null value (a tombstone). Pure functions, no I/O.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Literal, NotRequired, TypedDict

from .filters import parse_maybe_json
from .records import TRACE_HEADERS, StreamRecord, dumps


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
