"""A client's W3C trace continues through the gateway into the runtime and reaches the handler."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from kfaas.cli.dev import DevServer
from kfaas.config import Settings

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
