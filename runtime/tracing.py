"""Continuing a caller's W3C trace into the runtime and on to the handler.

When `/invoke` carries a `traceparent`, the runtime records a span `kfaas.runtime.invoke` as its
child with OpenTelemetry's global tracer provider (the CLI installs exporters). The handler then
sees the trace in two documented ways: `TRACEPARENT`/`TRACESTATE` in its environment (the
OpenTelemetry convention for handing context to a process; set per invocation by the default
Python bootstrap) and `_X_AMZN_TRACE_ID`, which is the caller's `Lambda-Runtime-Trace-Id` when it
sent one and otherwise the X-Ray form of the same trace: X-Ray trace ids are W3C trace ids split as
`1-<first 8 hex>-<last 24 hex>`. OpenTelemetry is imported on the first traced request only.
"""

from __future__ import annotations

from typing import Any

from kfaas.trace_context import parse_traceparent, xray_header

__all__ = ["end_invoke_span", "parse_traceparent", "start_invoke_span", "xray_trace_header"]


def xray_trace_header(traceparent: str) -> str | None:
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    return xray_header(*parsed)


def install_exporter(service_name: str) -> None:
    """Export the runtime's spans over OTLP, as the gateway's (``OTEL_*`` asked for it).

    Called once the instance is ready, in a thread: the SDK and exporter imports (~100 ms) are
    paid neither by the cold start nor by the first traced invocation.
    """
    from kfaas import telemetry

    telemetry.install_otlp_exporter(service_name)


def start_invoke_span(
    traceparent: str, tracestate: str | None, attributes: dict[str, Any]
) -> tuple[Any, str, str | None]:
    """Start the runtime's span under the caller's; returns it and the context to hand on."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    parent = propagator.extract(carrier)
    span = trace.get_tracer("kfaas.runtime").start_span(
        "kfaas.runtime.invoke", context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
    )
    out: dict[str, str] = {}
    propagator.inject(out, context=trace.set_span_in_context(span, parent))
    return span, out.get("traceparent", traceparent), out.get("tracestate", tracestate)


def end_invoke_span(span: Any, function_error: bool, error_type: str | None) -> None:
    from opentelemetry.trace import Status, StatusCode

    if function_error:
        span.set_attribute("faas.error_type", error_type or "Unhandled")
        span.set_status(Status(StatusCode.ERROR, error_type or "function error"))
    span.end()
