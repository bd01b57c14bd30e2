"""A caller's W3C trace continues into a `kfaas.runtime.invoke` span and on to the handler.

The server runs in this process (its workers are still real processes) so the SDK's in-memory
exporter can see the span.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kfaas.runtime import logs
from kfaas.runtime.config import config_from_env
from kfaas.runtime.server import RuntimeServer
from kfaas.runtime.startup import prepare

APP = """
import os
def handler(event, context):
    return {k: os.environ.get(k) for k in ("TRACEPARENT", "TRACESTATE", "_X_AMZN_TRACE_ID")}
"""
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RuntimeServer]:
    (tmp_path / "app.py").write_text(APP)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "_HANDLER": "app.handler",
        "AWS_LAMBDA_FUNCTION_NAME": "traced",
        "KFAAS_RUNTIME_HOST": "127.0.0.1",
        "KFAAS_RUNTIME_PORT": "0",
        "KFAAS_RUNTIME_API_PORT": "0",
    }
    instance = RuntimeServer(prepare(config_from_env(env)), sink=logs.LogSink(io.BytesIO()))
    await instance.start()
    await instance.ready.wait()
    yield instance
    await instance.close()


async def test_span_is_a_child_and_the_handler_sees_the_trace(
    server: RuntimeServer, exporter: InMemorySpanExporter
) -> None:
    url = f"http://127.0.0.1:{server.port}/invoke"
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT}-01", "tracestate": "vendor=1"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=b"{}", headers=headers) as response:
            seen = json.loads(await response.read())
        async with session.post(
            url, data=b"{}", headers={**headers, "Lambda-Runtime-Trace-Id": "Root=1-given"}
        ) as response:
            given = json.loads(await response.read())
        async with session.post(url, data=b"{}") as response:
            untraced = json.loads(await response.read())

    spans = [span for span in exporter.get_finished_spans() if span.name == "kfaas.runtime.invoke"]
    assert len(spans) == 2
    span = spans[0]
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.kind == trace.SpanKind.SERVER
    assert span.attributes is not None and span.attributes["faas.name"] == "traced"
    assert span.attributes["faas.coldstart"] is True
    span_id = f"{span.context.span_id:016x}"
    assert seen["TRACEPARENT"] == f"00-{TRACE_ID}-{span_id}-01"
    assert seen["TRACESTATE"] == "vendor=1"
    assert (
        seen["_X_AMZN_TRACE_ID"]
        == f"Root=1-0af76519-16cd43dd8448eb211c80319c;Parent={span_id};Sampled=1"
    )
    assert given["_X_AMZN_TRACE_ID"] == "Root=1-given"  # the caller's X-Ray header wins
    assert untraced == {"TRACEPARENT": None, "TRACESTATE": None, "_X_AMZN_TRACE_ID": None}


async def test_an_unsampled_trace_is_handed_on_as_is_and_records_nothing(
    server: RuntimeServer, exporter: InMemorySpanExporter
) -> None:
    """ADR 030: every PassThrough invocation without context carries an unsampled trace; the
    runtime records no span for it (nor imports OpenTelemetry) and the handler sees it."""
    url = f"http://127.0.0.1:{server.port}/invoke"
    traceparent = f"00-{TRACE_ID}-{PARENT}-00"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=b"{}", headers={"traceparent": traceparent}) as response,
    ):
        seen = json.loads(await response.read())
    assert [s for s in exporter.get_finished_spans() if s.name == "kfaas.runtime.invoke"] == []
    assert seen["TRACEPARENT"] == traceparent
    assert seen["_X_AMZN_TRACE_ID"] == (
        f"Root=1-0af76519-16cd43dd8448eb211c80319c;Parent={PARENT};Sampled=0"
    )
