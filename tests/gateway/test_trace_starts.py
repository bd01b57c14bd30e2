"""`gateway/tracing.py` without an SDK (no OTEL_* export configured): nothing is recorded, and
the trace still reaches the handler — a caller's continued, an Active function's new (ADR 030)."""

from __future__ import annotations

import pytest
from opentelemetry import propagate, trace

from kfaas.gateway import tracing
from kfaas.gateway.tracing import FunctionTracing, TracingMode
from kfaas.trace_context import RootSampler, parse_traceparent

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@pytest.fixture(autouse=True)
def no_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "tracer", trace.NoOpTracer())


def handed_on(mode: TracingMode, rate: float, carrier: dict[str, str] | None = None) -> str:
    """The traceparent the gateway would send the runtime."""
    starts = FunctionTracing(RootSampler(rate, 0))
    headers: dict[str, str] = {}
    with starts.span("kfaas.gateway.invoke", mode, kind=trace.SpanKind.CLIENT, attributes={},
                     carrier=carrier):  # fmt: skip
        propagate.inject(headers)
    return headers["traceparent"]


@pytest.mark.parametrize(
    ("mode", "rate", "sampled"),
    [("Active", 1.0, True), ("Active", 0.0, False), ("PassThrough", 1.0, False)],
)
def test_a_new_trace_without_an_sdk(mode: TracingMode, rate: float, sampled: bool) -> None:
    parsed = parse_traceparent(handed_on(mode, rate))
    assert parsed is not None and parsed[2] is sampled


@pytest.mark.parametrize("mode", ["Active", "PassThrough"])
def test_a_callers_trace_passes_through_without_an_sdk(mode: TracingMode) -> None:
    assert handed_on(mode, 1.0, {"traceparent": CALLER}) == CALLER
