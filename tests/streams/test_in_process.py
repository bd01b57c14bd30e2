"""The pollers run in this process (as `kfaas dev` runs them), so their spans can be inspected."""

from __future__ import annotations

import pytest
from devserver import dev_server
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kfaas.config import Settings
from kfaas.manifests import EventSourceMapping
from kfaas.pollers.group import PollerGroup
from streams.kit import FAST, Project, RedisTools, unique

pytestmark = pytest.mark.redis

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def test_the_batch_span_links_each_producer_and_the_group_follows_its_mappings(
    project: Project, redis: RedisTools, spans: InMemorySpanExporter
) -> None:
    stream, group = unique("s"), unique("g")
    out = project.function("traced")
    document = project.mapping(
        "traced",
        "traced",
        redis={
            "url": redis.url,
            "stream": stream,
            "consumerGroup": group,
            "startingPosition": "TRIM_HORIZON",
        },
    )
    project.documents.remove(document)
    mapping = EventSourceMapping.model_validate(document, by_alias=True, by_name=False)
    await redis.add(stream, [{"body": "hello", "traceparent": TRACEPARENT}, {"body": "plain"}])
    with dev_server([project.write()], env=FAST) as dev:
        pollers = PollerGroup(gateway_url=dev.url, settings=Settings(), metrics_port=0)
        await pollers.start()
        try:
            lines = await pollers.update([mapping])
            assert lines == [
                f"mapping default/traced: polling redis stream {stream} ({redis.url}) -> traced"
            ]
            await out.wait_values(2)
            await redis.wait_pending(stream, group, 0)
            # Disabling the mapping stops its consumer; a later entry stays in the stream.
            disabled = mapping.model_copy(deep=True)
            disabled.spec.enabled = False
            assert (await pollers.update([disabled]))[0].startswith(
                "mapping default/traced: disabled"
            )
            await redis.add(stream, [{"body": "later"}])
            # Removing it stops everything.
            assert await pollers.update([]) == []
            assert pollers.running == {}
        finally:
            await pollers.stop()
    batch_spans = [s for s in spans.get_finished_spans() if s.name == "redis batch"]
    assert batch_spans
    links = [format(link.context.trace_id, "032x") for s in batch_spans for link in s.links]
    assert links == [TRACE_ID]
    assert "later" not in out.values()
