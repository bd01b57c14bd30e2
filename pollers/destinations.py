"""The on-failure destination of a mapping: a Kafka topic or a Redis stream.

A destination receives the records the mapping gave up on, as they came from the source, followed
by one failure record (Lambda's shape, see `records.failure_record`). Records keep what they had:
a Kafka record its key, value and headers; a Redis entry its fields. Crossing over, a Kafka record
becomes an entry with fields `key`, `value` and `header.<name>`, and an entry becomes a Kafka record
keyed by its id whose value is its SQS `body`. Each copy carries where it came from
(`kfaas-source`: `topic-partition@offset` or the entry id) and the failure record's request id
(`kfaas-request-id`); the failure record itself is marked `kfaas-kind: failure-record` and, in a
stream, holds its JSON in the `body` field.

The mapping commits the records only after the destination has acknowledged all of them. A Kafka
destination's security (ADR 027) is resolved — its Secrets read — at the first send and again after
every failed one, so a fixed password is used at the next retry without a restart.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from kfaas.brokers.destinations import DestinationWriter
from kfaas.brokers.errors import DestinationError, KafkaAuthError
from kfaas.brokers.kafka_security import KafkaSecurity
from kfaas.brokers.policies import BLOCKING_READS

from .records import StreamRecord
from .sqs_events import entry_body

KafkaMessageTuple = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
FAILURE_KIND = "failure-record"


def _source_of(record: StreamRecord) -> str:
    if isinstance(record.raw, tuple):
        topic, partition, offset = record.position
        return f"{topic}-{partition}@{offset}"
    return record.item_id


def as_kafka_messages(
    records: Sequence[StreamRecord], failure: dict[str, Any]
) -> list[KafkaMessageTuple]:
    request_id = str(failure["requestContext"]["requestId"]).encode()
    messages: list[KafkaMessageTuple] = []
    for record in records:
        marks = [("kfaas-source", _source_of(record).encode()), ("kfaas-request-id", request_id)]
        if isinstance(record.raw, tuple):
            key, value, headers = record.raw
            messages.append((key, value, [*headers, *marks]))
        else:
            body, _ = entry_body(record.raw)
            messages.append((record.item_id.encode(), body.encode(), marks))
    messages.append((None, json.dumps(failure).encode(), [("kfaas-kind", FAILURE_KIND.encode())]))
    return messages


def as_stream_entries(
    records: Sequence[StreamRecord], failure: dict[str, Any]
) -> list[dict[str, str | bytes]]:
    request_id = str(failure["requestContext"]["requestId"])
    entries: list[dict[str, str | bytes]] = []
    for record in records:
        fields: dict[str, str | bytes]
        if isinstance(record.raw, tuple):
            key, value, headers = record.raw
            fields = {f"header.{name}": data for name, data in headers}
            if key is not None:
                fields["key"] = key
            fields["value"] = value if value is not None else b""
        else:
            fields = dict(record.raw)
        fields["kfaas-source"] = _source_of(record)
        fields["kfaas-request-id"] = request_id
        entries.append(fields)
    entries.append({"kfaas-kind": FAILURE_KIND, "body": json.dumps(failure)})
    return entries


class Destination(Protocol):
    async def send(self, records: Sequence[StreamRecord], failure: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


# Reads the destination's Secrets now and returns its security (None: PLAINTEXT).
SecurityResolver = Callable[[], Awaitable[KafkaSecurity | None]]


async def _plaintext() -> KafkaSecurity | None:
    return None


class KafkaTopicDestination:
    def __init__(
        self, bootstrap_servers: str, topic: str, security: SecurityResolver = _plaintext
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.resolve_security = security
        self._security: KafkaSecurity | None = None
        self._resolved = False
        # One attempt per send: the mapping keeps the records and retries on its own schedule.
        self.writer = DestinationWriter(redis_policy=BLOCKING_READS)

    async def send(self, records: Sequence[StreamRecord], failure: dict[str, Any]) -> None:
        messages = as_kafka_messages(records, failure)
        try:
            if not self._resolved:
                self._security, self._resolved = await self.resolve_security(), True
            await self.writer.to_topic(
                self.bootstrap_servers, self.topic, messages, security=self._security
            )
        except KafkaAuthError as exc:  # a Secret missing or unreadable: not sent, retried
            self._resolved = False
            raise DestinationError(
                f"kafka topic {self.topic!r} at {self.bootstrap_servers}: {exc}"
            ) from exc
        except DestinationError:
            self._resolved = False  # the next attempt reads the Secrets again
            raise

    async def close(self) -> None:
        await self.writer.close()


class RedisStreamDestination:
    def __init__(self, url: str, stream: str) -> None:
        self.url = url
        self.stream = stream
        self.writer = DestinationWriter(redis_policy=BLOCKING_READS)

    async def send(self, records: Sequence[StreamRecord], failure: dict[str, Any]) -> None:
        await self.writer.to_stream(self.url, self.stream, as_stream_entries(records, failure))

    async def close(self) -> None:
        await self.writer.close()
