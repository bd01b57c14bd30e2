"""The delivery loop against an in-memory gateway and source: what is invoked, committed, given up.

Sleeps are recorded rather than waited, so backoff shows up as numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kfaas.brokers.errors import DestinationError
from kfaas.pollers.batches import RetryPolicy
from kfaas.pollers.delivery import BatchDelivery, DeliveryConfig, InvokeAnswer, Position
from kfaas.pollers.metrics import PollerMetrics
from kfaas.pollers.records import StreamRecord

NOW_MS = 1_800_000_000_000
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

Behaviour = Callable[[list[str]], InvokeAnswer]


def record(offset: int, value: str = "ok", age_seconds: float = 0) -> StreamRecord:
    delivered = {"offset": offset, "value": value}
    return StreamRecord(
        item_id=str(offset),
        position=("t", 0, offset),
        arrival_ms=NOW_MS - int(age_seconds * 1000),
        encoded=json.dumps(delivered).encode(),
        filter_data={"value": value},
        trace_headers={"traceparent": TRACEPARENT} if value == "traced" else {},
    )


class Source:
    kind: Literal["kafka"] = "kafka"
    stream_arn = "arn:kfaas:kafka:us-east-1:default:topic/t"

    def __init__(self, *, destination: bool = True, refuse: int = 0) -> None:
        self.checkpoints: list[list[int]] = []
        self.retries: list[tuple[int, int]] = []
        self.dead: list[tuple[list[int], dict[str, Any]]] = []
        self.destination = destination
        self.refuse = refuse

    def event(self, records: Sequence[StreamRecord]) -> bytes:
        return json.dumps({"records": [r.delivered for r in records]}).encode()

    async def checkpoint(self, records: Sequence[StreamRecord]) -> None:
        self.checkpoints.append([r.position[2] for r in records])

    async def dead_letter(self, records: Sequence[StreamRecord], failure: dict[str, Any]) -> bool:
        if self.refuse:
            self.refuse -= 1
            raise DestinationError("down")
        if not self.destination:
            return False
        self.dead.append(([r.position[2] for r in records], failure))
        return True

    async def retrying(self, records: Sequence[StreamRecord], failed_attempts: int) -> None:
        self.retries.append((records[0].position[2], failed_attempts))

    @property
    def committed(self) -> list[int]:
        return [offset for batch in self.checkpoints for offset in batch]


class Harness:
    def __init__(
        self,
        behaviour: Behaviour,
        *,
        retries: int = 2,
        bisect: bool = False,
        max_age: float = -1,
        partial: bool = False,
        source: Source | None = None,
        attempts: dict[Position, int] | None = None,
    ) -> None:
        self.behaviour = behaviour
        self.invocations: list[list[str]] = []
        self.delays: list[float] = []
        self.source = source or Source()
        self.metrics = PollerMetrics(labels=("default", "fn", "m"))
        self.delivery = BatchDelivery(
            invoke=self.invoke,
            source=self.source,
            config=DeliveryConfig(
                policy=RetryPolicy(
                    maximum_retry_attempts=retries,
                    maximum_record_age_seconds=max_age,
                    bisect_on_function_error=bisect,
                    base_seconds=1.0,
                ),
                report_item_failures=partial,
                function_arn="arn:aws:lambda:us-east-1:default:function:fn",
            ),
            metrics=self.metrics,
            attempts=attempts if attempts is not None else {},
            now_ms=lambda: NOW_MS,
            sleep=self.sleep,
        )

    async def invoke(self, payload: bytes) -> InvokeAnswer:
        values = [r["value"] for r in json.loads(payload)["records"]]
        self.invocations.append(values)
        return self.behaviour(values)

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(
            name, {"namespace": "default", "function": "fn", "mapping": "m", **labels}
        )
        return value or 0.0


def ok(values: list[str]) -> InvokeAnswer:
    return InvokeAnswer(200, b"null", request_id="r")


def error_on_poison(values: list[str]) -> InvokeAnswer:
    if "poison" in values:
        return InvokeAnswer(200, b'{"errorType": "E"}', function_error="Unhandled", request_id="r")
    return ok(values)


def partial_poison(values: list[str]) -> InvokeAnswer:
    failures = [{"itemIdentifier": str(i)} for i, v in enumerate(values) if v == "poison"]
    return InvokeAnswer(200, json.dumps({"batchItemFailures": failures}).encode())


def batch(*values: str) -> list[StreamRecord]:
    return [record(offset, value) for offset, value in enumerate(values)]


async def test_a_good_batch_is_invoked_once_and_committed() -> None:
    harness = Harness(ok)
    await harness.delivery.deliver(batch("a", "b", "c"))
    assert harness.invocations == [["a", "b", "c"]]
    assert harness.source.checkpoints == [[0, 1, 2]]
    assert harness.metric("kfaas_poller_batches_total") == 1
    assert harness.metric("kfaas_poller_batch_size_sum") == 3


async def test_errors_retry_the_whole_batch_then_give_it_up() -> None:
    harness = Harness(error_on_poison, retries=2)
    await harness.delivery.deliver(batch("a", "poison", "c"))
    assert harness.invocations == [["a", "poison", "c"]] * 3
    assert harness.delays == [1.0, 2.0]
    # Each counted failure is handed to the source to keep (Kafka commits it as metadata).
    assert harness.source.retries == [(0, 1), (0, 2)]
    ((offsets, failure),) = harness.source.dead
    assert offsets == [0, 1, 2]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["responseContext"]["functionError"] == "Unhandled"
    assert failure["KafkaBatchInfo"]["batchSize"] == 3
    assert harness.source.committed == [0, 1, 2]
    assert harness.metric("kfaas_poller_dead_lettered_records_total") == 3
    assert harness.metric("kfaas_poller_errors_total", kind="function_error") == 3


async def test_bisect_isolates_the_poison_record_without_spending_retries() -> None:
    harness = Harness(error_on_poison, retries=0, bisect=True)
    await harness.delivery.deliver(batch("a", "b", "c", "poison", "e"))
    assert harness.invocations == [
        ["a", "b", "c", "poison", "e"],
        ["a", "b"],
        ["c", "poison", "e"],
        ["c"],
        ["poison", "e"],
        ["poison"],
        ["e"],
    ]
    assert [offsets for offsets, _ in harness.source.dead] == [[3]]
    # Commits only ever move forward, in order.
    assert harness.source.committed == [0, 1, 2, 3, 4]


async def test_partial_failures_checkpoint_at_the_lowest_failure() -> None:
    harness = Harness(partial_poison, retries=1, partial=True)
    await harness.delivery.deliver(batch("a", "b", "poison", "d"))
    assert harness.invocations == [["a", "b", "poison", "d"], ["poison", "d"]]
    assert harness.source.checkpoints[0] == [0, 1]
    assert harness.source.retries == [(2, 1)]
    assert [offsets for offsets, _ in harness.source.dead] == [[2, 3]]
    assert harness.source.committed == [0, 1, 2, 3]


async def test_an_invalid_batch_response_fails_the_whole_batch() -> None:
    def invalid(values: list[str]) -> InvokeAnswer:
        return InvokeAnswer(200, b'{"batchItemFailures": [{"itemIdentifier": "nope"}]}')

    harness = Harness(invalid, retries=0, partial=True)
    await harness.delivery.deliver(batch("a", "b"))
    assert [offsets for offsets, _ in harness.source.dead] == [[0, 1]]


async def test_throttles_retry_without_spending_retries() -> None:
    answers = iter([429, 429, 503, 0, 200])

    def flaky(values: list[str]) -> InvokeAnswer:
        return InvokeAnswer(next(answers), b"null")

    harness = Harness(flaky, retries=0)
    await harness.delivery.deliver(batch("a"))
    assert len(harness.invocations) == 5
    assert harness.delays == [1.0, 2.0, 4.0, 8.0]
    assert harness.source.dead == []
    assert harness.source.committed == [0]
    assert harness.metric("kfaas_poller_errors_total", kind="throttled") == 2


async def test_expired_records_are_given_up_without_an_invocation() -> None:
    harness = Harness(ok, max_age=60)
    records = [record(0, "old", age_seconds=120), record(1, "new"), record(2, "old", 61)]
    await harness.delivery.deliver(records)
    assert harness.invocations == [["new"]]
    ((offsets, failure),) = harness.source.dead
    assert offsets == [0, 2]
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    # Record 0 is committed at once; 1 and 2 once 1 succeeded.
    assert harness.source.checkpoints == [[0], [1, 2]]


async def test_filtered_records_are_committed_not_delivered() -> None:
    harness = Harness(ok)
    await harness.delivery.deliver(
        batch("skip", "a", "skip"), lambda r: r.delivered["value"] != "skip"
    )
    assert harness.invocations == [["a"]]
    assert harness.source.committed == [0, 1, 2]
    assert harness.metric("kfaas_poller_filtered_records_total") == 2


async def test_nothing_is_committed_until_the_destination_takes_the_records() -> None:
    source = Source(refuse=2)
    harness = Harness(error_on_poison, retries=0, source=source)
    await harness.delivery.deliver(batch("poison"))
    assert harness.delays == [1.0, 2.0]
    assert len(source.dead) == 1
    assert source.committed == [0]
    assert harness.metric("kfaas_poller_destination_delivery_failures_total") == 2


async def test_without_a_destination_given_up_records_are_dropped_and_counted() -> None:
    harness = Harness(error_on_poison, retries=0, source=Source(destination=False))
    await harness.delivery.deliver(batch("poison"))
    assert harness.source.committed == [0]
    assert harness.metric("kfaas_poller_dropped_records_total") == 1


async def test_retry_counts_survive_a_new_batch_of_the_same_records() -> None:
    # A rebalance hands the same offsets to a new lane; the counts belong to the mapping.
    attempts: dict[Position, int] = {("t", 0, 0): 2}
    harness = Harness(error_on_poison, retries=2, attempts=attempts)
    await harness.delivery.deliver(batch("poison"))
    assert len(harness.invocations) == 1
    assert len(harness.source.dead) == 1
    assert attempts == {}


async def test_cancellation_commits_nothing_more() -> None:
    def cancelled(values: list[str]) -> InvokeAnswer:
        raise KeyboardInterrupt

    harness = Harness(cancelled)
    with pytest.raises(KeyboardInterrupt):
        await harness.delivery.deliver(batch("a"))
    assert harness.source.checkpoints == []


async def test_the_batch_span_links_the_producers_context(spans: InMemorySpanExporter) -> None:
    harness = Harness(ok)
    await harness.delivery.deliver([record(0, "traced"), record(1, "plain")])
    (span,) = [s for s in spans.get_finished_spans() if s.name == "kafka batch"]
    assert [format(link.context.trace_id, "032x") for link in span.links] == [
        "0af7651916cd43dd8448eb211c80319c"
    ]
