"""Where an invocation's trace comes from (ADR 030): a client's W3C or X-Ray context continues
through the gateway into the runtime and reaches the handler; without one an `Active` function
gets a trace the platform starts, sampled at the configured rate, and a `PassThrough` one an
unsampled trace id and no recorded span.

The gateway runs in this process, so the SDK's in-memory exporter (tests/conftest.py) sees its
spans; the runtime's own spans are exported by its process, shown in test_tracing_otlp.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from traced_functions import write_functions
from waiting import eventually_async

from kfaas.cli.dev import DevServer
from kfaas.config import Settings
from kfaas.trace_context import parse_traceparent, parse_xray

FUNCTIONS = Path(__file__).parent.parent / "functions"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


async def test_trace_context_from_client_to_handler(spans: InMemorySpanExporter) -> None:
    server = DevServer(
        [str(FUNCTIONS)],
        host="127.0.0.1",
        port=0,
        settings=Settings.from_env({}),
        out=io.StringIO(),
    )
    await server.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{server.url}/2015-03-31/functions/context/invocations",
                data=b"{}",
                headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"},
            ) as reply,
        ):
            seen = await reply.json()
    finally:
        await server.stop()

    finished = {span.name: span for span in spans.get_finished_spans()}
    server_span = next(s for s in finished.values() if s.kind == SpanKind.SERVER)
    invoke_span = finished["kfaas.gateway.invoke"]
    assert f"{server_span.context.trace_id:032x}" == TRACE_ID
    assert server_span.parent is not None and f"{server_span.parent.span_id:016x}" == CLIENT_SPAN
    assert invoke_span.parent is not None
    assert invoke_span.parent.span_id == server_span.context.span_id
    # The handler sees the same trace, in X-Ray form and as W3C context.
    assert seen["trace_id"].startswith(f"Root=1-{TRACE_ID[:8]}-{TRACE_ID[8:]};")
    assert seen["traceparent"].split("-")[1] == TRACE_ID


async def _dev(tmp_path: Path, environ: dict[str, str]) -> DevServer:
    write_functions(tmp_path)
    server = DevServer(
        [str(tmp_path)],
        host="127.0.0.1",
        port=0,
        settings=Settings.from_env(environ),
        out=io.StringIO(),
        state=tmp_path / ".kfaas",
    )
    await server.start()
    return server


@pytest.fixture
async def sampled_all(tmp_path: Path) -> AsyncIterator[DevServer]:
    """Every trace the platform starts is sampled (rate 1)."""
    server = await _dev(tmp_path, {"KFAAS_TRACING_SAMPLE_RATE": "1"})
    yield server
    await server.stop()


@pytest.fixture
async def sampled_none(tmp_path: Path) -> AsyncIterator[DevServer]:
    """No trace the platform starts is sampled (rate 0, no reservoir)."""
    environ = {"KFAAS_TRACING_SAMPLE_RATE": "0", "KFAAS_TRACING_RESERVOIR_PER_SECOND": "0"}
    server = await _dev(tmp_path, environ)
    yield server
    await server.stop()


async def invoke(
    server: DevServer, name: str, headers: dict[str, str] | None = None
) -> dict[str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.url}/2015-03-31/functions/{name}/invocations",
            data=b"{}",
            headers=headers or {},
        ) as reply,
    ):
        assert reply.status == 200, await reply.text()
        return dict(json.loads(await reply.read()))


def handler_trace(seen: dict[str, str]) -> tuple[str, bool]:
    """The trace id and sampled flag the handler saw, checked to agree in both its forms."""
    parsed = parse_traceparent(seen["TRACEPARENT"])
    xray = parse_xray(seen["_X_AMZN_TRACE_ID"])
    assert parsed is not None and xray is not None
    assert xray.trace_id == parsed[0] and xray.sampled == parsed[2]
    return parsed[0], parsed[2]


def gateway_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name.startswith("kfaas.gateway.")]


async def test_active_without_context_starts_a_sampled_trace(
    sampled_all: DevServer, spans: InMemorySpanExporter
) -> None:
    seen = await invoke(sampled_all, "active")
    trace_id, sampled = handler_trace(seen)
    assert sampled
    (span,) = gateway_spans(spans)
    assert span.name == "kfaas.gateway.invoke" and span.parent is None  # the trace's root
    assert f"{span.context.trace_id:032x}" == trace_id
    assert span.attributes is not None and span.attributes["kfaas.tracing.mode"] == "Active"
    # Each invocation without context is a trace of its own.
    again, _ = handler_trace(await invoke(sampled_all, "active"))
    assert again != trace_id


async def test_active_at_rate_zero_records_nothing(
    sampled_none: DevServer, spans: InMemorySpanExporter
) -> None:
    seen = await invoke(sampled_none, "active")
    _, sampled = handler_trace(seen)
    assert not sampled and seen["_X_AMZN_TRACE_ID"].endswith("Sampled=0")
    assert gateway_spans(spans) == []


async def test_passthrough_without_context_starts_no_sampled_trace(
    sampled_all: DevServer, spans: InMemorySpanExporter
) -> None:
    seen = await invoke(sampled_all, "passthrough")
    _, sampled = handler_trace(seen)  # Lambda hands every handler a trace id, Sampled=0 here
    assert not sampled
    assert spans.get_finished_spans() == ()


@pytest.mark.parametrize("name", ["active", "passthrough"])
async def test_a_callers_trace_is_continued(
    sampled_all: DevServer, spans: InMemorySpanExporter, name: str
) -> None:
    seen = await invoke(sampled_all, name, {"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"})
    assert handler_trace(seen) == (TRACE_ID, True)
    invoke_span = next(s for s in gateway_spans(spans) if s.name == "kfaas.gateway.invoke")
    assert f"{invoke_span.context.trace_id:032x}" == TRACE_ID


@pytest.mark.parametrize("name", ["active", "passthrough"])
async def test_a_callers_unsampled_trace_stays_unsampled(
    sampled_all: DevServer, spans: InMemorySpanExporter, name: str
) -> None:
    seen = await invoke(sampled_all, name, {"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-00"})
    assert handler_trace(seen) == (TRACE_ID, False)
    assert spans.get_finished_spans() == ()


async def test_an_xray_header_is_a_callers_context(
    sampled_all: DevServer, spans: InMemorySpanExporter
) -> None:
    header = f"Root=1-{TRACE_ID[:8]}-{TRACE_ID[8:]};Parent={CLIENT_SPAN};Sampled=1"
    seen = await invoke(sampled_all, "passthrough", {"X-Amzn-Trace-Id": header})
    assert seen["_X_AMZN_TRACE_ID"] == header  # the caller's own header, as Lambda passes it
    (span,) = gateway_spans(spans)
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == CLIENT_SPAN
    # Sampled=0 is honoured: continued, not recorded.
    spans.clear()
    unsampled = header.replace("Sampled=1", "Sampled=0")
    await invoke(sampled_all, "active", {"X-Amzn-Trace-Id": unsampled})
    assert gateway_spans(spans) == []


@pytest.mark.parametrize(("name", "sampled"), [("active", True), ("passthrough", False)])
async def test_an_xray_header_that_leaves_the_decision_gets_the_functions(
    sampled_all: DevServer, spans: InMemorySpanExporter, name: str, sampled: bool
) -> None:
    """`Sampled=?` (or none, or no Parent): the caller's trace, sampled by the function's mode;
    the handler's header is the trace's as continued, not the undecided one."""
    for header in (
        f"Root=1-{TRACE_ID[:8]}-{TRACE_ID[8:]};Parent={CLIENT_SPAN};Sampled=?",
        f"Root=1-{TRACE_ID[:8]}-{TRACE_ID[8:]}",
    ):
        spans.clear()
        seen = await invoke(sampled_all, name, {"X-Amzn-Trace-Id": header})
        assert handler_trace(seen) == (TRACE_ID, sampled)
        assert len(gateway_spans(spans)) == int(sampled)


async def test_an_event_invocation_is_one_trace_from_accept_to_handler(
    sampled_all: DevServer, spans: InMemorySpanExporter
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sampled_all.url}/2015-03-31/functions/active/invocations",
            data=b"{}",
            headers={"X-Amz-Invocation-Type": "Event"},
        ) as reply,
    ):
        assert reply.status == 202

    def both() -> dict[str, ReadableSpan] | None:
        names = {s.name: s for s in gateway_spans(spans)}
        return names if "kfaas.gateway.invoke" in names else None

    names = await eventually_async(both, within=30, what="the event invoked")
    accept, invoked = names["kfaas.gateway.accept"], names["kfaas.gateway.invoke"]
    assert accept.parent is None and accept.kind == SpanKind.PRODUCER
    assert invoked.context.trace_id == accept.context.trace_id
    assert invoked.parent is not None and invoked.parent.span_id == accept.context.span_id
