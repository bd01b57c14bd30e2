"""What a poller writes under its EventSourceMapping's status: the pure builder, and the loop
writing through a store (a list in memory here; the Kubernetes one in test_status_on_cluster.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from kfaas.pollers.errors import StatusError
from kfaas.pollers.metrics import PollerMetrics
from kfaas.pollers.status import PollerReport, mapping_status, report_status, write_once

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
OPERATOR_READY = {"type": "Ready", "status": "True", "reason": "Ready", "message": "ok"}


def report(**facts: Any) -> PollerReport:
    defaults: dict[str, Any] = {
        "lag": None,
        "last_batch_at": None,
        "last_outcome": None,
        "source_problem": None,
    }
    return PollerReport(**{**defaults, **facts})


def test_a_successful_batch_reads_ok_with_its_time_and_lag() -> None:
    at = datetime(2024, 5, 1, 11, 59, 58, tzinfo=UTC).timestamp()
    status = mapping_status(report(lag=42, last_batch_at=at, last_outcome="success"), {}, now=NOW)
    assert status == {
        "lag": 42,
        "lastProcessingResult": "OK",
        "lastBatchAt": "2024-05-01T11:59:58Z",
        "conditions": [
            {
                "type": "Polling",
                "status": "True",
                "reason": "Polling",
                "message": "polling; last batch: OK",
                "lastTransitionTime": "2024-05-01T12:00:00Z",
            }
        ],
    }


def test_failures_use_lambdas_wording() -> None:
    for outcome in ("function_error", "batch_item_failures"):
        status = mapping_status(report(last_outcome=outcome, last_batch_at=0.0), {}, now=NOW)
        assert status["lastProcessingResult"] == "PROBLEM: Function call failed"
    throttled = mapping_status(report(last_outcome="throttled"), {}, now=NOW)
    assert throttled["lastProcessingResult"] == "PROBLEM: Function call throttled"


def test_an_unreachable_source_turns_polling_false_and_keeps_the_operators_conditions() -> None:
    live = {
        "conditions": [
            OPERATOR_READY,
            {"type": "Polling", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"},
        ],
        "lastBatchAt": "2024-01-01T00:00:00Z",
    }
    status = mapping_status(report(source_problem="redis: connection refused"), live, now=NOW)
    assert status["conditions"][0] == OPERATOR_READY
    polling = status["conditions"][1]
    assert (polling["status"], polling["reason"]) == ("False", "SourceUnreachable")
    assert polling["message"] == "redis: connection refused"
    assert polling["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    assert status["lastProcessingResult"].startswith("PROBLEM: Connection error")
    # What the poller does not know yet is left as it is, not cleared.
    assert "lag" not in status and "lastBatchAt" not in status


def test_the_transition_time_moves_only_with_the_condition_status() -> None:
    live = {
        "conditions": [
            {"type": "Polling", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}
        ]
    }
    status = mapping_status(report(last_outcome="function_error"), live, now=NOW)
    assert status["conditions"][0]["lastTransitionTime"] == "2024-01-01T00:00:00Z"


def test_metrics_give_the_report() -> None:
    metrics = PollerMetrics().for_mapping(("ns", "f", "m"))
    assert PollerReport.of(metrics) == report()
    metrics.offset_lag.labels(*metrics.labels).set(7)
    metrics.pending.labels(*metrics.labels).set(3)
    metrics.activity.batch_answered("success")
    facts = PollerReport.of(metrics)
    assert (facts.lag, facts.last_outcome) == (10, "success")
    assert facts.last_batch_at is not None
    # Another mapping's view has its own activity and its own lag.
    other = metrics.for_mapping(("ns", "f", "other"))
    assert PollerReport.of(other) == report()


class MemoryStore:
    def __init__(self, conflicts: int = 0, fail: bool = False) -> None:
        self.object: dict[str, Any] = {"metadata": {"resourceVersion": "1"}, "status": {}}
        self.writes: list[dict[str, Any]] = []
        self.conflicts = conflicts
        self.fail = fail
        self.attempted = asyncio.Event()
        self.written = asyncio.Event()
        self.closed = False

    async def read(self) -> dict[str, Any] | None:
        return self.object

    async def write(self, status: dict[str, Any], resource_version: str) -> None:
        self.attempted.set()
        if self.fail:
            raise StatusError("forbidden")
        if self.conflicts:
            self.conflicts -= 1
            raise StatusError("conflict", conflict=True)
        self.writes.append(status)
        self.object = {"metadata": {"resourceVersion": "2"}, "status": status}
        self.written.set()

    async def close(self) -> None:
        self.closed = True


async def test_a_conflict_is_written_again_and_nothing_unchanged_is_written() -> None:
    metrics = PollerMetrics().for_mapping(("ns", "f", "m"))
    metrics.activity.batch_answered("success")
    store = MemoryStore(conflicts=1)
    assert await write_once(store, metrics)
    assert await write_once(store, metrics)
    assert len(store.writes) == 1


async def test_the_loop_writes_soon_after_a_change_and_survives_failures() -> None:
    metrics = PollerMetrics().for_mapping(("ns", "f", "m"))
    failing = MemoryStore(fail=True)
    task = asyncio.create_task(report_status(failing, metrics, interval=60, settle=0.01))
    await asyncio.wait_for(failing.attempted.wait(), 5)
    failing.attempted.clear()
    metrics.activity.source_failed("redis: gone")
    await asyncio.wait_for(failing.attempted.wait(), 5)  # a refused write did not end the loop
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert failing.closed

    store = MemoryStore()
    task = asyncio.create_task(report_status(store, metrics, interval=60, settle=0.01))
    await asyncio.wait_for(store.written.wait(), 5)
    store.written.clear()
    metrics.activity.batch_answered("function_error")
    await asyncio.wait_for(store.written.wait(), 5)  # long before the 60 s tick
    assert store.writes[-1]["lastProcessingResult"] == "PROBLEM: Function call failed"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
