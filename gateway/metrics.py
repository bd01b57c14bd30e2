"""The gateway's Prometheus metrics, named after Lambda's CloudWatch set (``kfaas_`` prefix).

Each gateway app owns its registry so that several can live in one process (tests, ``kfaas dev``).
Throttles are counted in neither invocations nor errors, as in Lambda. Every per-function series
carries the version that ran (`$LATEST` or N, ADR 024): a canary's versions are told apart, and
`sum by (namespace, function)` still gives the function's totals.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LABELS = ("namespace", "function", "version")
Labels = tuple[str, str, str]
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Outcome(Protocol):
    """What the metrics read from an invocation's result (the invoker's ``InvokeResult``)."""

    @property
    def duration_seconds(self) -> float: ...
    @property
    def function_error(self) -> str | None: ...
    @property
    def cold_start(self) -> bool: ...
    @property
    def init_duration_seconds(self) -> float | None: ...


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.invocations = Counter(
            "kfaas_invocations", "Invocations that reached a function", LABELS, registry=r
        )
        self.errors = Counter(
            "kfaas_errors", "Invocations that ended in a function error", LABELS, registry=r
        )
        self.throttles = Counter(
            "kfaas_throttles", "Invocations refused with TooManyRequests", LABELS, registry=r
        )
        self.duration = Histogram(
            "kfaas_duration_seconds",
            "Invocation duration seen by the gateway",
            LABELS,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.concurrent = Gauge(
            "kfaas_concurrent_executions", "Invocations in flight", LABELS, registry=r
        )
        self.ready_instances = Gauge(
            "kfaas_ready_instances", "Instances ready to take invocations", LABELS, registry=r
        )
        self.cold_starts = Counter(
            "kfaas_cold_starts", "Invocations that initialised a new worker", LABELS, registry=r
        )
        self.init_duration = Histogram(
            "kfaas_init_duration_seconds",
            "Worker initialisation time of cold starts",
            LABELS,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.async_received = Counter(
            "kfaas_async_events_received", "Async events accepted (202)", LABELS, registry=r
        )
        self.async_dropped = Counter(
            "kfaas_async_events_dropped",
            "Async events that ran out of retries or age with no destination",
            (*LABELS, "reason"),
            registry=r,
        )
        self.async_event_age = Histogram(
            "kfaas_async_event_age_seconds",
            "Time from acceptance to the start of each async attempt",
            LABELS,
            buckets=(0.01, 0.1, 1, 10, 60, 300, 1800, 3600, 21600),
            registry=r,
        )
        self.destination_failures = Counter(
            "kfaas_destination_delivery_failures",
            "Invocation records that could not be sent to a destination",
            LABELS,
            registry=r,
        )

        # The gateway's own bounds (ADR 010): what was refused where, and how close it is.
        self.refusals = Counter(
            "kfaas_gateway_refusals",
            "Connections and requests refused at a bound: connections, body_memory, "
            "async_queue (429), header_timeout, body_timeout (408)",
            ("bound",),
            registry=r,
        )
        self.open_connections = Gauge(
            "kfaas_gateway_open_connections", "Client connections open now", registry=r
        )
        self.body_bytes_held = Gauge(
            "kfaas_gateway_body_bytes_held",
            "Request body bytes held now against the body memory budget",
            registry=r,
        )
        # ADR 028: 1 while reserved concurrency is not counted in the shared Redis (each replica
        # admits only its share), 0 when it is or when there is no shared count at all.
        self.reserved_limiter_degraded = Gauge(
            "kfaas_reserved_limiter_degraded",
            "1 while the shared reserved-concurrency count is unreachable or recovering",
            registry=r,
        )

    def record(self, labels: Labels, result: Outcome) -> None:
        self.invocations.labels(*labels).inc()
        self.duration.labels(*labels).observe(result.duration_seconds)
        if result.function_error:
            self.errors.labels(*labels).inc()
        if result.cold_start:
            self.cold_starts.labels(*labels).inc()
            if result.init_duration_seconds is not None:
                self.init_duration.labels(*labels).observe(result.init_duration_seconds)
