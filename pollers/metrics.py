"""The pollers' Prometheus metrics (``kfaas_poller_*``), mirroring Lambda's stream metrics.

Labels are `namespace`, `function` and `mapping`. `kfaas_poller_offset_lag` is Lambda's OffsetLag
(Kafka; for Redis the entries not yet delivered to the group) and
`kfaas_poller_iterator_age_seconds` its IteratorAge: how old the newest record of the last batch
was when it was sent. Each poller process owns its registry, served on `/metrics` by a small
aiohttp app (KFAAS_POLLER_METRICS_PORT). Next to the families, `activity` keeps the few facts the
mapping's status reports that a metric cannot hold (when the last batch was answered, and how).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LABELS = ("namespace", "function", "mapping")
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


# Why a source could not be read, as the `Polling` condition's reason says it.
SOURCE_UNREACHABLE = "SourceUnreachable"
AUTHENTICATION_FAILED = "AuthenticationFailed"  # credentials refused, TLS failed, Secret missing


@dataclass
class MappingActivity:
    """What one mapping's pollers did last; `changed` is set when the outcome changes."""

    last_batch_at: float | None = None
    # The last batch's outcome: success, function_error, batch_item_failures, throttled, ...
    last_outcome: str | None = None
    # Why the source could not be read, until it is read again.
    source_problem: str | None = None
    source_reason: str = SOURCE_UNREACHABLE
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def batch_answered(self, outcome: str) -> None:
        self.last_batch_at = time.time()
        if outcome != self.last_outcome or self.source_problem is not None:
            self.last_outcome, self.source_problem = outcome, None
            self.changed.set()

    def source_failed(self, problem: str, reason: str = SOURCE_UNREACHABLE) -> None:
        if problem != self.source_problem:
            self.source_problem, self.source_reason = problem, reason
            self.changed.set()

    def source_reached(self) -> None:
        if self.source_problem is not None:
            self.source_problem = None
            self.changed.set()


class PollerMetrics:
    """The metric families, and the label values of one mapping (`labels`)."""

    def __init__(
        self, registry: CollectorRegistry | None = None, labels: tuple[str, str, str] = ("", "", "")
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.labels = labels
        self.activity = MappingActivity()
        r = self.registry
        self.records = Counter(
            "kfaas_poller_records", "Records read from the source", LABELS, registry=r
        )
        self.filtered = Counter(
            "kfaas_poller_filtered_records",
            "Records that matched no filter pattern (committed, not delivered)",
            LABELS,
            registry=r,
        )
        self.batches = Counter(
            "kfaas_poller_batches", "Invocations made with a batch", LABELS, registry=r
        )
        self.batch_size = Histogram(
            "kfaas_poller_batch_size",
            "Records per invocation",
            LABELS,
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.invoke_duration = Histogram(
            "kfaas_poller_invoke_duration_seconds",
            "Time from sending a batch to the gateway to its answer",
            LABELS,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "kfaas_poller_errors",
            "Failed batch invocations by kind (function_error, batch_item_failures, throttled, "
            "service_error, too_large)",
            (*LABELS, "kind"),
            registry=r,
        )
        self.dead_lettered = Counter(
            "kfaas_poller_dead_lettered_records",
            "Records sent to the on-failure destination",
            LABELS,
            registry=r,
        )
        self.dropped = Counter(
            "kfaas_poller_dropped_records",
            "Records given up with no on-failure destination set",
            LABELS,
            registry=r,
        )
        self.destination_failures = Counter(
            "kfaas_poller_destination_delivery_failures",
            "Attempts to write to the on-failure destination that failed",
            LABELS,
            registry=r,
        )
        self.source_errors = Counter(
            "kfaas_poller_source_errors",
            "Errors talking to Kafka or Redis (the poller reconnects)",
            LABELS,
            registry=r,
        )
        self.offset_lag = Gauge(
            "kfaas_poller_offset_lag",
            "Records in the source not yet committed by the consumer group (Kafka), or not yet "
            "delivered to it (Redis)",
            LABELS,
            registry=r,
        )
        self.iterator_age = Gauge(
            "kfaas_poller_iterator_age_seconds",
            "Age of the newest record of the last batch when it was sent",
            LABELS,
            registry=r,
        )
        self.pending = Gauge(
            "kfaas_poller_pending_entries",
            "Entries delivered to the consumer group but not acknowledged (Redis)",
            LABELS,
            registry=r,
        )

    def for_mapping(self, labels: tuple[str, str, str]) -> PollerMetrics:
        """The same families, reporting for another mapping."""
        view = object.__new__(PollerMetrics)
        view.__dict__.update(self.__dict__)
        view.labels = labels
        view.activity = MappingActivity()
        return view

    def lag(self) -> int | None:
        """This mapping's records not yet processed: offset lag plus pending entries (Redis)."""
        names = dict(zip(LABELS, self.labels, strict=True))
        values = [
            self.registry.get_sample_value(metric, names)
            for metric in ("kfaas_poller_offset_lag", "kfaas_poller_pending_entries")
        ]
        known = [value for value in values if value is not None]
        return int(sum(known)) if known else None


def metrics_app(registry: CollectorRegistry) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app
