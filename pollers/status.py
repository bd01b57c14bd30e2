"""What a poller reports under its EventSourceMapping's `status`, and the loop that writes it.

The operator writes a mapping's `state`, `source` and its own conditions; the pollers add what only
they know: `lag`, `lastProcessingResult` (in Lambda's words: "OK", "PROBLEM: Function call failed"),
`lastBatchAt` and a `Polling` condition (False while the source cannot be read). The operator (or
`kfaas dev`) folds it into `Ready` and `state` as soon as it sees the write, and never rewrites
it. `mapping_status` decides what to write from the poller's metrics and the live status, with no
I/O; `report_status` writes it every `interval` seconds and soon after an outcome changes, at most
once per `settle` seconds, through a `StatusStore` (the Kubernetes API in `status_clients`). A
failed write is logged and tried again at the next report: the status is a report, never a reason
to stop polling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from kfaas import aiokit
from kfaas.api_objects import status_differs

from .errors import StatusError
from .metrics import AUTHENTICATION_FAILED, SOURCE_UNREACHABLE, PollerMetrics

log = logging.getLogger("kfaas.pollers")

Body = dict[str, Any]
CONDITION = "Polling"
REPORT_SECONDS = 10.0
SETTLE_SECONDS = 1.0
WRITE_ATTEMPTS = 3

# Batch outcomes (`batches.classify_status`, plus partial failures) as Lambda words them.
RESULTS = {
    "success": "OK",
    "function_error": "PROBLEM: Function call failed",
    "batch_item_failures": "PROBLEM: Function call failed",
    "throttled": "PROBLEM: Function call throttled",
    "service_error": "PROBLEM: Function could not be invoked (the gateway did not accept the call)",
    "too_large": "PROBLEM: Batch too large for the function; splitting it",
}
SOURCE_PROBLEM = "PROBLEM: Connection error. The event source could not be read"


@dataclass(frozen=True)
class PollerReport:
    """The facts a poller reports, read from its metrics."""

    lag: int | None
    last_batch_at: float | None
    last_outcome: str | None
    source_problem: str | None
    source_reason: str = SOURCE_UNREACHABLE

    @classmethod
    def of(cls, metrics: PollerMetrics) -> PollerReport:
        activity = metrics.activity
        return cls(
            lag=metrics.lag(),
            last_batch_at=activity.last_batch_at,
            last_outcome=activity.last_outcome,
            source_problem=activity.source_problem,
            source_reason=activity.source_reason,
        )


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def processing_result(report: PollerReport) -> str | None:
    if report.source_problem is not None and report.source_reason == AUTHENTICATION_FAILED:
        # What failed (a refused user, an untrusted certificate, a missing Secret), never a
        # password: the API's LastProcessingResult is all a Lambda client sees of it.
        return f"PROBLEM: Authentication error: {report.source_problem}"
    if report.source_problem is not None:
        return SOURCE_PROBLEM
    if report.last_outcome is None:
        return None
    return RESULTS.get(report.last_outcome, f"PROBLEM: {report.last_outcome}")


def polling_condition(report: PollerReport) -> Body:
    if report.source_problem is not None:
        return {
            "type": CONDITION,
            "status": "False",
            "reason": report.source_reason,
            "message": report.source_problem,
        }
    if report.last_outcome is None:
        message = "polling; no batch delivered yet"
    else:
        message = f"polling; last batch: {processing_result(report)}"
    return {"type": CONDITION, "status": "True", "reason": "Polling", "message": message}


def mapping_status(report: PollerReport, live: Mapping[str, Any], *, now: datetime) -> Body:
    """The status fields a poller writes, given the live `status` (its conditions are kept).

    A field the poller knows nothing about yet is left out rather than cleared; the condition's
    `lastTransitionTime` moves only when its status does.
    """
    condition = polling_condition(report)
    live_conditions = [dict(c) for c in live.get("conditions") or []]
    before = next((c for c in live_conditions if c.get("type") == CONDITION), None)
    unchanged = before is not None and before.get("status") == condition["status"]
    condition["lastTransitionTime"] = (
        before.get("lastTransitionTime") if unchanged and before else None
    ) or now.strftime("%Y-%m-%dT%H:%M:%SZ")
    # In its place: the operator orders the conditions, and a report that only moved this one
    # would be a write (and a watch event) for nothing.
    conditions = [condition if c is before else c for c in live_conditions]
    status: Body = {"conditions": conditions if before is not None else [*conditions, condition]}
    result = processing_result(report)
    if report.lag is not None:
        status["lag"] = report.lag
    if result is not None:
        status["lastProcessingResult"] = result
    if report.last_batch_at is not None:
        status["lastBatchAt"] = rfc3339(report.last_batch_at)
    return status


class StatusStore(Protocol):
    """The mapping's live object, and a way to write its status (raising `StatusError`)."""

    async def read(self) -> Body | None: ...

    async def write(self, status: Body, resource_version: str) -> None: ...

    async def close(self) -> None: ...


async def write_once(store: StatusStore, metrics: PollerMetrics) -> bool:
    """Write the status if it changed; False when the mapping is gone. Retried on conflicts."""
    for attempt in range(WRITE_ATTEMPTS):
        live = await store.read()
        if live is None:
            return False
        status = mapping_status(
            PollerReport.of(metrics), live.get("status") or {}, now=datetime.now(UTC)
        )
        if not status_differs(live.get("status") or {}, status):
            return True
        try:
            await store.write(status, str(live["metadata"]["resourceVersion"]))
            return True
        except StatusError as exc:
            if not exc.conflict or attempt == WRITE_ATTEMPTS - 1:
                raise
    return True


async def report_status(
    store: StatusStore,
    metrics: PollerMetrics,
    *,
    interval: float = REPORT_SECONDS,
    settle: float = SETTLE_SECONDS,
) -> None:
    """Keep the mapping's status current until cancelled; failures are logged, never raised."""
    changed = metrics.activity.changed
    try:
        while True:
            changed.clear()
            try:
                await write_once(store, metrics)
            except StatusError as exc:
                log.warning("cannot write the mapping's status (trying again later): %s", exc)
            except Exception:
                log.exception("writing the mapping's status failed (trying again later)")
            # A burst of changes makes one write: wait `settle`, then for a change or the tick.
            await asyncio.sleep(settle)
            await aiokit.wait_event(changed, max(interval - settle, 0))
    finally:
        await store.close()
