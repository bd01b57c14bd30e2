"""Spans reach the configured exporter: `kfaas dev` (gateway) and its runtime instances export over
OTLP/HTTP, as `OTEL_EXPORTER_OTLP_ENDPOINT` asks, to a receiver that decodes OpenTelemetry's own
protobuf messages (ADR 030).

The receiver is a small HTTP server in this test, not an OpenTelemetry Collector: a collector build
from the Go module proxy takes far longer than a test may on this machine. It accepts what a
collector's OTLP/HTTP receiver accepts (`POST /v1/traces`, `application/x-protobuf`).
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from devserver import DevServer, dev_server
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from traced_functions import write_functions
from waiting import eventually

from kfaas.trace_context import parse_traceparent


@dataclass(frozen=True)
class Received:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str


class Receiver(ThreadingHTTPServer):
    spans: list[Received]


class _Traces(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.server.spans.append(
                        Received(
                            service,
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                        )
                    )
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), _Traces)
    server.spans = []
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def dev(tmp_path: Path, receiver: Receiver) -> Iterator[DevServer]:
    write_functions(tmp_path)
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within a tenth of a second
        "KFAAS_TRACING_SAMPLE_RATE": "1",
    }
    with dev_server([tmp_path], env=env) as server:
        yield server


def invoke(dev: DevServer, name: str) -> str:
    """The trace id the handler saw."""
    request = urllib.request.Request(
        f"{dev.url}/2015-03-31/functions/{name}/invocations", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        seen = json.loads(reply.read())
    parsed = parse_traceparent(seen["TRACEPARENT"])
    assert parsed is not None
    return parsed[0]


def of_trace(receiver: Receiver, trace_id: str) -> dict[str, Received]:
    return {span.name: span for span in list(receiver.spans) if span.trace_id == trace_id}


def test_an_active_trace_reaches_the_collector_from_gateway_and_runtime(
    dev: DevServer, receiver: Receiver
) -> None:
    trace_id = invoke(dev, "active")

    def exported() -> dict[str, Received] | None:
        found = of_trace(receiver, trace_id)
        return found if {"kfaas.gateway.invoke", "kfaas.runtime.invoke"} <= set(found) else None

    found = eventually(exported, within=20, what="gateway and runtime spans exported")
    gateway, runtime = found["kfaas.gateway.invoke"], found["kfaas.runtime.invoke"]
    assert gateway.service == "kfaas-dev" and gateway.parent_id == ""  # the trace's root
    assert runtime.service == "active" and runtime.parent_id == gateway.span_id

    # PassThrough without context: a trace id for the handler, nothing exported for it. The next
    # Active trace arriving shows the exporters have sent what came before.
    unsampled = invoke(dev, "passthrough")
    marker = invoke(dev, "active")
    eventually(
        lambda: {"kfaas.gateway.invoke", "kfaas.runtime.invoke"} <= set(of_trace(receiver, marker)),
        within=20,
        what="the next trace exported",
    )
    assert of_trace(receiver, unsampled) == {}
