"""The instance's Prometheus metrics, mirroring Lambda's CloudWatch set for one function.

Counting happens in plain attributes on the hot path; `prometheus_client` (≈25 ms to import) is only
loaded by the first scrape, through a custom collector over these numbers in the instance's own
`CollectorRegistry`. That keeps it off the cold-start path without giving up its exposition format.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

DURATION_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
)
INIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        buckets, running = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            buckets.append((repr(float(bound)), float(running)))
        buckets.append(("+Inf", float(self.count)))
        return buckets


class Metrics:
    def __init__(self, namespace: str, function: str) -> None:
        self.labels = {"namespace": namespace, "function": function}
        self.invocations = 0
        self.errors = 0
        self.cold_starts = 0
        self.concurrent = 0
        self.duration = Histogram(DURATION_BUCKETS)
        self.init_duration = Histogram(INIT_BUCKETS)
        self.restarts: dict[str, int] = {}
        self._registry: Any = None

    def invocation(self, duration_seconds: float, error: bool, cold: bool) -> None:
        self.invocations += 1
        self.errors += error
        self.cold_starts += cold
        self.duration.observe(duration_seconds)

    def initialised(self, seconds: float) -> None:
        self.init_duration.observe(seconds)

    def worker_restart(self, reason: str) -> None:
        self.restarts[reason] = self.restarts.get(reason, 0) + 1

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(_Collector(self))
        return generate_latest(self._registry), CONTENT_TYPE_LATEST


class _Collector:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        m = self._metrics
        names, values = list(m.labels), list(m.labels.values())
        for name, doc, value in (
            ("kfaas_invocations", "Invocations, successful or not.", m.invocations),
            ("kfaas_errors", "Invocations that ended in a function error.", m.errors),
            ("kfaas_cold_starts", "Invocations that were a worker's first.", m.cold_starts),
        ):
            counter = CounterMetricFamily(name, doc, labels=names)
            counter.add_metric(values, value)
            yield counter
        gauge = GaugeMetricFamily(
            "kfaas_concurrent_executions", "Invocations running now.", labels=names
        )
        gauge.add_metric(values, m.concurrent)
        yield gauge
        for name, doc, histogram in (
            ("kfaas_duration_seconds", "Invocation duration.", m.duration),
            ("kfaas_init_duration_seconds", "Worker init duration.", m.init_duration),
        ):
            family = HistogramMetricFamily(name, doc, labels=names)
            family.add_metric(values, histogram.cumulative(), histogram.sum)
            yield family
        restarts = CounterMetricFamily(
            "kfaas_worker_restarts",
            "Worker processes replaced, by reason.",
            labels=[*names, "reason"],
        )
        for reason, count in sorted(m.restarts.items()):
            restarts.add_metric([*values, reason], count)
        yield restarts
