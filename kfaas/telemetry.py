"""Logs as one JSON line per event, and OpenTelemetry tracing configured from ``OTEL_*``.

Every long-running component calls :func:`configure` once at start-up. Tracing exports over OTLP
only when the standard variables ask for it (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER=otlp``); W3C trace context is
always propagated, so traces pass through kfaas even when it exports nothing itself.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from kfaas.config import Settings

RESERVED = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "component": self.component,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(component: str, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log repeats what our own lines say; keep it for debugging only.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def configure_tracing(service_name: str, settings: Settings) -> None:
    """Install a tracer provider that exports over OTLP/HTTP, when the environment asks for it.

    Otherwise the API's no-op tracer stays: spans cost nothing on the invoke path, and the W3C
    context a client sent is still handed on unchanged (its trace id reaches the handler). The
    exporter reads its own ``OTEL_EXPORTER_OTLP_*`` variables, as OpenTelemetry specifies.
    """
    if not settings.otlp_traces:
        return
    install_otlp_exporter(settings.otel_service_name or service_name)


def install_otlp_exporter(service_name: str) -> None:
    """The process's tracer provider, exporting over OTLP/HTTP (``OTEL_EXPORTER_OTLP_*``)."""
    resource = Resource.create({"service.name": service_name})
    provider = TracerProvider(resource=resource)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def configure(component: str, settings: Settings) -> None:
    configure_logging(component, settings.log_level)
    configure_tracing(f"kfaas-{component}", settings)
