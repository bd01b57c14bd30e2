"""The scheduler's Prometheus metrics (``kfaas_schedule_*``): fires, delays, failures (ADR 026).

Labels are ``namespace``, ``schedule`` and ``function``. What an operator asks of a scheduler is
here: did every tick fire (``fires``), how late (``delay_seconds``: delivered minus due), how
often delivery failed and why (``failures{reason}``), what was given up (``dead_letters`` with a
dead-letter destination, ``missed`` without one: never silently), and how many ticks may have
been delivered twice because a replica's claim expired (``redeliveries``). The registry is the
caller's: ``kfaas dev`` puts these on its gateway's ``/metrics``, ``kfaas scheduler`` on its own.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

LABELS = ("namespace", "schedule", "function")
# From on time to far behind (a replica taking a tick over waits a claim's lease, 30 s).
DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)

Labels = tuple[str, str, str]


class ScheduleMetrics:
    """The metric families; label values are ``(namespace, schedule, function)``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.fires = Counter(
            "kfaas_schedule_fires", "Ticks delivered to their function", LABELS, registry=r
        )
        self.delay = Histogram(
            "kfaas_schedule_delay_seconds",
            "Time from a tick's due time (its flexible offset included) to its delivery",
            LABELS,
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.failures = Counter(
            "kfaas_schedule_failures",
            "Deliveries or dead-letter writes that failed, by reason (throttled, unavailable, "
            "not_found, refused, dead_letter)",
            (*LABELS, "reason"),
            registry=r,
        )
        self.dead_letters = Counter(
            "kfaas_schedule_dead_letters",
            "Ticks given up and written to the schedule's dead-letter destination",
            LABELS,
            registry=r,
        )
        self.redeliveries = Counter(
            "kfaas_schedule_redeliveries",
            "Ticks taken over from a replica whose claim expired (possibly delivered twice)",
            LABELS,
            registry=r,
        )
        self.missed = Counter(
            "kfaas_schedule_missed",
            "Ticks given up with no dead-letter destination (logged as a JSON line each)",
            LABELS,
            registry=r,
        )
