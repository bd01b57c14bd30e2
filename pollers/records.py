"""A record in a poller's hands, and the failure record a mapping gives up with.

`StreamRecord` is what both sources turn their messages into (kafka_events.py, sqs_events.py): the
record as the handler will see it, already encoded to JSON once, plus what filters, retries and the
on-failure destination need. What a mapping gives up on goes to its on-failure destination with a
record in the shape of Lambda's stream failure record, with `KafkaBatchInfo` or `RedisBatchInfo`.
Pure functions, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any, Literal

from kfaas.events import iso_timestamp

from .batches import Condition

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
quoted: Callable[[str], str] = encode_basestring_ascii


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


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


def redis_stream_arn(region: str, namespace: str, stream: str) -> str:
    return f"arn:kfaas:redis:{region}:{namespace}:stream/{stream}"
