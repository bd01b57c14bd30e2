"""A mapping whose FunctionName is qualified (Lambda's `name:alias`, `name:N`) invokes exactly that
through the gateway, and its on-failure records name the qualified function (ADR 024)."""

from __future__ import annotations

import pytest

from kfaas.config import Settings
from kfaas.manifests import EventSourceMapping
from kfaas.pollers.metrics import PollerMetrics
from kfaas.pollers.runner import MappingRunner


def mapping(qualifier: str | None) -> EventSourceMapping:
    spec: dict[str, object] = {
        "functionName": "resize",
        "redis": {"url": "redis://127.0.0.1:6379/0", "stream": "uploads"},
    }
    if qualifier is not None:
        spec["qualifier"] = qualifier
    return EventSourceMapping.model_validate(
        {"metadata": {"name": "uploads", "namespace": "media"}, "spec": spec}
    )


@pytest.mark.parametrize(
    ("qualifier", "path", "arn"),
    [
        (None, "media%2Fresize/invocations", "function:resize"),
        ("live", "media%2Fresize%3Alive/invocations", "function:resize:live"),
        ("3", "media%2Fresize%3A3/invocations", "function:resize:3"),
    ],
)
def test_a_qualified_mapping_invokes_that_version(
    qualifier: str | None, path: str, arn: str
) -> None:
    runner = MappingRunner(
        mapping(qualifier),
        gateway_url="http://gateway:8080",
        settings=Settings(),
        metrics=PollerMetrics(),
    )
    assert runner.invoker.path == f"/2015-03-31/functions/{path}"
    assert runner.delivery_config.function_arn.endswith(f":media:{arn}")
    # Labels and metrics keep naming the function itself.
    assert runner.metrics.labels == ("media", "resize", "uploads")


def test_a_qualifier_is_a_version_or_an_alias_name() -> None:
    with pytest.raises(ValueError, match="qualifier"):
        mapping("Live_1")
