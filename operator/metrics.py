"""The operator's Prometheus metrics: what the autoscaler decided and how reconciles went.

Served on ``/metrics`` (``KFAAS_OPERATOR_METRICS_PORT``) next to the gateway's, with the same
``namespace``/``function`` labels, so a dashboard can set demand against instances.
"""

from __future__ import annotations

import contextlib

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

# The version scaled (`$LATEST` or N): each published version scales on its own (ADR 024).
LABELS = ("namespace", "function", "version")


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.active = Gauge(
            "kfaas_operator_active",
            "1 on the replica whose handlers and autoscaler run",
            registry=r,
        )
        self.demand = Gauge(
            "kfaas_autoscaler_concurrency",
            "Concurrency reported by all gateway replicas (in flight plus held)",
            LABELS,
            registry=r,
        )
        self.desired = Gauge(
            "kfaas_autoscaler_desired_instances", "Instances the scaling rule asks for", LABELS,
            registry=r,
        )  # fmt: skip
        self.reconciles = Counter(
            "kfaas_operator_reconciles",
            "Reconcile passes by kind and outcome (ok, failed)",
            ("kind", "result"),
            registry=r,
        )

    def forget(self, namespace: str, function: str, version: str) -> None:
        for gauge in (self.demand, self.desired):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, function, version)

    def app(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            return web.Response(
                body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        app = web.Application()
        app.router.add_get("/metrics", page)
        return app
