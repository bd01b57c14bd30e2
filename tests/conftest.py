"""Session-wide test setup: one in-memory span exporter (and the real-service fixtures).

OpenTelemetry allows a single global tracer provider per process, so it is installed here once and
tests read spans through the ``spans`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# redis_service, kafka_service, kwok_service: the real services (tests/services/fixtures.py);
# network_policy_enforcer, prometheus_service: the real node's add-ons (addon_fixtures.py);
# kfaas_images: the images built here (image_fixtures.py); each service's marker on every test
# that reaches it (markers.py); pytester, for the tests of that plumbing (tests/tooling).
pytest_plugins = [
    "services.markers",  # first: the fixture plugins import it
    "services.fixtures",
    "services.addon_fixtures",
    "services.image_fixtures",
    "pytester",
]


EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans finished during the test (the exporter is emptied before and after)."""
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()
