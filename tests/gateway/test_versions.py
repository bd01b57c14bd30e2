"""Which version an invocation runs (ADR 024): `name:N`, `name:alias` and `$LATEST` resolved by
the registry, the alias's weighted draw, Lambda's not-found messages, and the version carried by
keys, runtime environments, metrics and invocation records."""

from __future__ import annotations

import datetime
import json
import random
from typing import Any

import pytest
from prometheus_client import generate_latest
from version_digests import code_sha256

from kfaas import runtimetoken
from kfaas.events import invocation_record
from kfaas.gateway.asyncq import AsyncEvent, MemoryQueue, decode_event, encode_event
from kfaas.gateway.dispatcher import Dispatcher
from kfaas.gateway.errors import ResourceNotFound
from kfaas.gateway.invoker import Invoker
from kfaas.gateway.kube_clients import KubernetesBackend
from kfaas.gateway.metrics import GatewayMetrics
from kfaas.gateway.registry import AliasRoute, FunctionRegistry, alias_route, version_key
from kfaas.gateway.routing import Router
from kfaas.manifests import AsyncConfig, Function
from kfaas.names import FunctionRef, function_key, parse_function_key, parse_function_name
from kfaas.runtimeenv import runtime_environment
from kfaas.upstream import UpstreamPool
from kfaas.version_manifests import parse_alias

SPEC: dict[str, Any] = {
    "runtime": "python3.12",
    "handler": "app.handler",
    "code": {"inline": {"app.py": "def handler(event, context):\n    return 0\n"}},
}


def function(name: str = "fn", namespace: str = "default") -> Function:
    return Function.model_validate(
        {"metadata": {"name": name, "namespace": namespace}, "spec": SPEC}
    )


def version_function(number: int) -> Function:
    """Version ``number`` of `fn`, as the registry runs a published version."""
    return function().as_version(number)


def registry_with_canary(draws: list[float]) -> FunctionRegistry:
    registry = FunctionRegistry()
    registry.put(function())
    for number in (1, 2):
        registry.put(version_function(number))
    registry.put_alias("default", "fn", "live", AliasRoute("1", {"2": 0.1}))
    registry.put_alias("default", "fn", "head", AliasRoute("$LATEST"))
    numbers = iter(draws)
    registry.draw = lambda: next(numbers)
    return registry


def ref(text: str, qualifier: str | None = None) -> FunctionRef:
    return parse_function_name(text, "default", qualifier=qualifier)


def test_keys_carry_the_version_and_parse_back() -> None:
    assert function_key("ns", "fn") == "ns/fn"
    assert function_key("ns", "fn", "$LATEST") == "ns/fn"
    assert function_key("ns", "fn", "12") == "ns/fn:12"
    assert parse_function_key("ns/fn:12") == ("ns", "fn", "12")
    assert parse_function_key("ns/fn") == ("ns", "fn", "$LATEST")


def test_a_version_runs_its_template_under_the_functions_name() -> None:
    published = version_function(3)
    assert published.key == "default/fn:3" and published.version == "3"
    assert published.metadata.name == "fn"
    assert function().key == "default/fn" and function().version == "$LATEST"
    env = runtime_environment(published, task_root="/var/task", region="us-east-1")
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "3"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fn"


@pytest.mark.parametrize(
    ("name", "qualifier", "runs"),
    [
        ("fn", None, "default/fn"),
        ("fn:$LATEST", None, "default/fn"),
        ("fn", "$LATEST", "default/fn"),
        ("fn:2", None, "default/fn:2"),
        ("fn", "1", "default/fn:1"),
        ("arn:aws:lambda:us-east-1:default:function:fn:2", None, "default/fn:2"),
        ("default:function:fn:1", None, "default/fn:1"),
        ("default/fn:head", None, "default/fn"),
    ],
)
def test_a_qualifier_runs_exactly_that_version(name: str, qualifier: str | None, runs: str) -> None:
    registry = registry_with_canary([0.5])
    assert registry.resolve(ref(name, qualifier)).key == runs


def test_an_alias_draws_its_version_per_invocation() -> None:
    # choose_version: a draw below the weight runs the weighted version.
    registry = registry_with_canary([0.05, 0.5, 0.0999, 0.1])
    runs = [registry.resolve(ref("fn:live")).version for _ in range(4)]
    assert runs == ["2", "1", "2", "1"]


def test_the_weighted_split_of_the_registry_s_own_draw() -> None:
    registry = registry_with_canary([])
    registry.draw = random.Random(11).random
    second = sum(registry.resolve(ref("fn:live")).version == "2" for _ in range(2000))
    # Binomial(2000, 0.1): mean 200, deviation 13.4; four deviations either side.
    assert 146 <= second <= 254


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("fn:7", "Function not found: arn:aws:lambda:us-east-1:default:function:fn:7"),
        ("fn:nope", "Function not found: arn:aws:lambda:us-east-1:default:function:fn:nope"),
        ("other:1", "Function not found: arn:aws:lambda:us-east-1:default:function:other:1"),
        ("other", "Function not found: arn:aws:lambda:us-east-1:default:function:other"),
    ],
)
def test_a_missing_version_or_alias_is_lambdas_not_found(name: str, message: str) -> None:
    registry = registry_with_canary([0.5])
    with pytest.raises(ResourceNotFound) as excinfo:
        registry.resolve(ref(name))
    assert excinfo.value.message == message


def test_an_alias_on_a_deleted_version_is_not_found() -> None:
    registry = registry_with_canary([0.05])
    registry.remove("default/fn:2")
    with pytest.raises(ResourceNotFound):
        registry.resolve(ref("fn:live"))


def test_versions_are_listed_apart_from_functions() -> None:
    registry = registry_with_canary([])
    assert [f.key for f in registry.list()] == ["default/fn"]
    assert [f.key for f in registry.versions()] == ["default/fn:1", "default/fn:2"]
    registry.remove_alias("default", "fn", "live")
    assert registry.alias("default", "fn", "live") is None


def test_a_versions_put_reaches_the_listeners_under_its_own_key() -> None:
    registry = FunctionRegistry()
    seen: list[tuple[str, bool]] = []
    registry.subscribe(lambda key, fn: seen.append((key, fn is not None)))
    registry.put(version_function(4))
    registry.remove("default/fn:4")
    assert seen == [("default/fn:4", True), ("default/fn:4", False)]


def test_metrics_carry_the_executed_version() -> None:
    metrics = GatewayMetrics()

    class Outcome:
        duration_seconds = 0.01
        function_error = None
        cold_start = False
        init_duration_seconds = None

    metrics.record(("default", "fn", "2"), Outcome())
    metrics.record(("default", "fn", "$LATEST"), Outcome())
    text = generate_latest(metrics.registry).decode()
    assert 'kfaas_invocations_total{function="fn",namespace="default",version="2"} 1.0' in text
    assert (
        'kfaas_invocations_total{function="fn",namespace="default",version="$LATEST"} 1.0' in text
    )


def test_an_async_event_keeps_the_version_chosen_when_accepted() -> None:
    event = AsyncEvent.new("default/fn:2", b"{}", request_id="r")
    decoded, _ = decode_event(encode_event(event))
    assert decoded.function_key == "default/fn:2"


def test_the_invocation_record_names_the_executed_version() -> None:
    record = invocation_record(
        request_id="r",
        function_arn="arn:aws:lambda:us-east-1:default:function:fn:2",
        condition="Success",
        approximate_invoke_count=1,
        request_payload={},
        status_code=200,
        function_error=None,
        response_payload=None,
        timestamp=datetime.datetime.now(datetime.UTC),
        executed_version="2",
    )
    assert record["responseContext"]["executedVersion"] == "2"
    assert record["requestContext"]["functionArn"].endswith(":fn:2")


def test_an_alias_object_becomes_its_route() -> None:
    alias = parse_alias(
        {
            "metadata": {"name": "fn.live", "namespace": "default"},
            "spec": {
                "functionName": "fn",
                "name": "live",
                "functionVersion": "1",
                "routingConfig": {"additionalVersionWeights": {"2": 0.25}},
            },
        }
    )
    assert alias_route(alias) == AliasRoute("1", {"2": 0.25})


def test_a_version_object_s_key_is_its_run_key() -> None:
    assert version_key("team/fn.12") == "team/fn:12"


def _slice(labels: dict[str, str], address: str) -> dict[str, Any]:
    entry = {"addresses": [address], "conditions": {"ready": True}}
    return {
        "metadata": {"labels": labels},
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{**entry, "targetRef": {"name": f"pod-{address}"}}],
    }


def watch_handlers(registry: FunctionRegistry) -> KubernetesBackend:
    """A cluster gateway's backend whose watch handlers the test calls itself (no API server)."""
    return KubernetesBackend(
        None,  # type: ignore[arg-type]  # only the watches' handlers are called
        registry,
        platform_namespace="platform",
        replica="r",
        runtime_token_key="key",
    )


def test_a_cluster_gateway_never_serves_a_version_under_another_code_s_digest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ADR 031: applied by hand with a codeSha256 that is not its template's code's (the API
    server cannot check it), a version is not served; the operator's status says why."""
    registry = FunctionRegistry()
    backend = watch_handlers(registry)
    spec: dict[str, Any] = {"functionName": "fn", "version": 1, "codeSha256": code_sha256(SPEC),
                            "configSha256": "0" * 64, "template": SPEC}  # fmt: skip
    version = {"metadata": {"name": "fn.1", "namespace": "default"}, "spec": spec}
    backend._version_changed("default/fn.1", version)
    facts = registry.facts("default/fn:1")
    assert facts.code is not None and facts.code.sha256 == code_sha256(SPEC)
    # The same object edited to another digest: no longer served, and the log says why.
    spec["codeSha256"] = "c2hh"
    backend._version_changed("default/fn.1", version)
    assert registry.find("default/fn:1") is None
    assert "not serving default/fn.1" in caplog.text and "'c2hh'" in caplog.text


def test_a_cluster_gateway_runs_a_version_on_its_own_slices() -> None:
    """The operator labels a version's Service (so its EndpointSlices) with its version: the
    gateway feeds those addresses to `namespace/name:N` alone, with the function's token."""
    registry = FunctionRegistry()
    backend = watch_handlers(registry)
    fed: dict[str, list[str]] = {}
    tokens: set[str] = set()

    def listener(key: str, endpoints: list[Any]) -> None:
        fed[key] = [e.url for e in endpoints]
        tokens.update(e.token for e in endpoints)

    backend.subscribe(listener)
    backend._function_changed("default/fn", {"metadata": {"name": "fn"}, "spec": SPEC})
    version = {
        "metadata": {"name": "fn.1", "namespace": "default"},
        "spec": {
            "functionName": "fn",
            "version": 1,
            "codeSha256": code_sha256(SPEC),
            "configSha256": "0" * 64,
            "template": SPEC,
        },
    }
    alias = {
        "metadata": {"name": "fn.live", "namespace": "default"},
        "spec": {"functionName": "fn", "name": "live", "functionVersion": "1"},
    }
    backend._version_changed("default/fn.1", version)
    backend._alias_changed("default/fn.live", alias)
    assert [f.key for f in registry.versions()] == ["default/fn:1"]
    assert registry.resolve(ref("fn")).key == "default/fn"
    assert registry.resolve(ref("fn:1")).key == registry.resolve(ref("fn:live")).key
    assert registry.resolve(ref("fn:live")).key == "default/fn:1"
    with pytest.raises(ResourceNotFound):
        registry.resolve(ref("fn:2"))
    base = {"kfaas.dev/function": "fn", "kfaas.dev/component": "runtime"}
    backend.slices.objects["default/fn-fn-x"] = _slice(base, "10.0.0.1")
    backend.slices.objects["default/fn-1-fnv-x"] = _slice(
        {**base, "kfaas.dev/version": "1"}, "10.0.0.2"
    )
    backend._slice_changed("default/fn-fn-x", backend.slices.objects["default/fn-fn-x"])
    backend._slice_changed("default/fn-1-fnv-x", backend.slices.objects["default/fn-1-fnv-x"])
    assert fed["default/fn"] == ["http://10.0.0.1:8080"]
    assert fed["default/fn:1"] == ["http://10.0.0.2:8080"]
    assert tokens == {runtimetoken.derive("key", "default", "fn")}
    # A deleted slice republishes its namespace's functions and versions.
    del backend.slices.objects["default/fn-1-fnv-x"]
    backend._slice_changed("default/fn-1-fnv-x", None)
    assert fed["default/fn:1"] == [] and fed["default/fn"] == ["http://10.0.0.1:8080"]
    backend._version_changed("default/fn.1", None)
    backend._alias_changed("default/fn.live", None)
    assert registry.versions() == [] and registry.alias("default", "fn", "live") is None


async def test_a_qualified_destination_queues_the_record_for_that_version() -> None:
    registry = registry_with_canary([0.05])
    source = function("source").model_copy(deep=True)
    source.spec.async_ = AsyncConfig.model_validate(
        {"onSuccess": {"function": {"name": "fn", "qualifier": "live"}}}
    )
    registry.put(source)
    queue = MemoryQueue()
    invoker = Invoker(registry, Router(lambda key, demand: None), GatewayMetrics(), UpstreamPool())
    dispatcher = Dispatcher(queue, invoker, retry_base_seconds=1)
    event = AsyncEvent.new("default/source", b"{}", request_id="r")
    await dispatcher._finish(source, event, "Success", None)
    delivery = await queue.take()
    # The alias drew version 2 when the record was queued (draw 0.05 < weight 0.1).
    assert delivery.event.function_key == "default/fn:2"
    record = json.loads(delivery.event.payload)
    assert record["requestContext"]["functionArn"].endswith(":function:source:$LATEST")
    assert record["responseContext"]["executedVersion"] == "$LATEST"
