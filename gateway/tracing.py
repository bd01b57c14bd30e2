"""Where an invocation's trace comes from: the caller's, or one the platform starts (ADR 030).

The gateway knows which function a request is for only once it has routed it, so the decision is
made here, at the span every invocation passes (``kfaas.gateway.invoke``, and ``.accept`` for an
Event invocation), not in the request middleware. The rule, Lambda's:

- a caller's context (``traceparent``, the middleware's server span continuing it, an async
  event's carrier, or an ``X-Amzn-Trace-Id`` with a Root) is continued, and its sampled flag is
  honoured, whatever the function's mode (an X-Ray ``Sampled=?`` is decided as below);
- without one, an ``Active`` function gets a new trace, sampled by the ``RootSampler``
  (``KFAAS_TRACING_SAMPLE_RATE``, ``KFAAS_TRACING_RESERVOIR_PER_SECOND``); a ``PassThrough``
  function gets a trace id with ``Sampled=0``, as Lambda hands one to every handler: nothing is
  recorded or exported for it.

A sampled new trace is a root span of the installed tracer provider (its exporter gets it); with
no SDK installed (no ``OTEL_*`` export configured) the trace id is still made here, so the
handler sees it either way.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from typing import Literal

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags

from kfaas.trace_context import RootSampler, parse_xray

tracer = trace.get_tracer("kfaas.gateway")

TracingMode = Literal["PassThrough", "Active"]
MODE_ATTRIBUTE = "kfaas.tracing.mode"


def incoming(
    carrier: dict[str, str] | None, xray: str | None, decide: Callable[[], bool]
) -> Context | None:
    """The caller's trace context, or None when the invocation arrived without one.

    In order: a carrier's W3C headers (an async event's), the current span (the middleware's
    server span when the request carried ``traceparent``), then the X-Ray header. An X-Ray
    header that leaves the sampling to the receiver (``Sampled=?`` or none) gets ``decide()``'s
    answer; one without ``Parent`` a parent id of its own, in the caller's trace all the same.
    """
    if carrier:
        found = extract(carrier)
        if trace.get_current_span(found).get_span_context().is_valid:
            return found
    current = context.get_current()
    if trace.get_current_span(current).get_span_context().is_valid:
        return current
    parsed = parse_xray(xray)
    if parsed is None:
        return None
    sampled = decide() if parsed.sampled is None else parsed.sampled
    parent_id = parsed.parent_id or secrets.token_hex(8)
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    remote = SpanContext(
        int(parsed.trace_id, 16), int(parent_id, 16), is_remote=True, trace_flags=flags
    )
    return trace.set_span_in_context(NonRecordingSpan(remote), Context())


def handed_xray(value: str | None) -> str | None:
    """The caller's X-Ray header as the handler gets it: as sent when it names the parent and
    the decision, as Lambda passes it; otherwise None, and the runtime writes the header of the
    trace as continued (the caller's Root, the gateway's decision)."""
    parsed = parse_xray(value)
    if parsed is not None and (parsed.parent_id is None or parsed.sampled is None):
        return None
    return value


def _minted(sampled: bool) -> SpanContext:
    """A new trace's context with no span of ours behind it (for a trace nothing records)."""
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return SpanContext(
        int.from_bytes(secrets.token_bytes(16)) or 1,
        int.from_bytes(secrets.token_bytes(8)) or 1,
        is_remote=False,
        trace_flags=flags,
    )


class FunctionTracing:
    """Starts the gateway's span of one invocation under the caller's trace or a new one."""

    def __init__(self, sampler: RootSampler | None = None) -> None:
        self.sampler = sampler or RootSampler()

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        mode: TracingMode,
        *,
        kind: SpanKind,
        attributes: dict[str, str],
        carrier: dict[str, str] | None = None,
        xray: str | None = None,
    ) -> Iterator[Span]:
        """The span, current while the block runs; what the block injects carries its trace."""

        def decide() -> bool:
            return mode == "Active" and self.sampler.sample()

        parent = incoming(carrier, xray, decide)
        sampled = False
        if parent is None:
            sampled = decide()
            # A sampled new trace starts at the gateway's span, as a root of the installed
            # provider (whose own sampler, the user's OTEL_TRACES_SAMPLER, still applies).
            parent = Context()
            if not sampled:
                minted = NonRecordingSpan(_minted(sampled=False))
                parent = trace.set_span_in_context(minted, Context())
        attributes = {**attributes, MODE_ATTRIBUTE: mode}
        span = tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
        if not span.get_span_context().is_valid:
            # No SDK installed (no OTEL_* export): nothing is recorded, but the handler still
            # gets the new trace's id.
            span = NonRecordingSpan(_minted(sampled))
        with trace.use_span(span, end_on_exit=True):
            yield span
