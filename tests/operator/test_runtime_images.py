"""Each runtime runs its own image, and a runtime without one is refused (ADR 016), as pure pieces.

The same on the API server, with the chart's values, is in tests/operator/test_on_cluster.py
(`test_a_runtime_without_an_image_is_not_available_until_configured`).
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from kfaas import runtimes
from kfaas.manifests import Function, parse_manifest
from kfaas.operator import names
from kfaas.operator.autoscaler import Autoscaler
from kfaas.operator.config import OperatorConfig
from kfaas.operator.reconcile import reconcile_function
from kfaas.operator.resources import function as fn

MAIN = "registry.example/kfaas:1.0"


def doc(runtime: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "thumb", "namespace": "media", "uid": "u-1", "generation": 2},
        "spec": {
            "runtime": runtime,
            "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(e, c): return 1\n"}},
        }
        | spec,
    }


def function(runtime: str, **spec: Any) -> Function:
    manifest = parse_manifest(doc(runtime, **spec), "fn.yaml")
    assert isinstance(manifest, Function)
    return manifest


def image_of(deployment: dict[str, Any]) -> str:
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def test_the_defaults_run_python311_and_provided_on_the_main_image_only() -> None:
    assert runtimes.runtime_images("", MAIN) == {"python3.11": MAIN, "provided": MAIN}
    config = OperatorConfig.from_env({"KFAAS_IMAGE": MAIN})
    assert config.images() == {"python3.11": MAIN, "provided": MAIN}
    assert OperatorConfig(image=MAIN).images() == config.images()
    # What the chart renders by default: an empty object.
    assert OperatorConfig.from_env({"KFAAS_IMAGE": MAIN, "KFAAS_RUNTIME_IMAGES": "{}"}) == config


def test_images_from_the_chart_value() -> None:
    value = {"python3.13": "localhost/kfaas:py313", "python3.11": "localhost/kfaas:py311"}
    config = OperatorConfig.from_env(
        {"KFAAS_IMAGE": MAIN, "KFAAS_RUNTIME_IMAGES": json.dumps(value)}
    )
    assert config.images() == {**value, "provided": MAIN}
    assert image_of(fn.make_deployment(function("python3.13"), "u", config)) == value["python3.13"]
    assert image_of(fn.make_deployment(function("python3.11"), "u", config)) == value["python3.11"]
    assert image_of(fn.make_deployment(function("provided"), "u", config)) == MAIN
    assert fn.runtime_refusal(function("python3.12"), config) is not None
    # null (or "") takes a runtime away, even the main image's own.
    gone = OperatorConfig.from_env(
        {"KFAAS_IMAGE": MAIN, "KFAAS_RUNTIME_IMAGES": '{"python3.11": null, "provided": ""}'}
    )
    assert gone.images() == {}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("[]", "must be a JSON object"),
        ("not json", "must be a JSON object"),
        ('{"python3.14": "x"}', "'python3.14' is not a runtime"),
        ('{"nodejs20.x": "x"}', "'nodejs20.x' is not a runtime"),
        ('{"python3.13": 5}', "the image of python3.13 must be an image reference"),
        ('{"python3.13": " x"}', "must be an image reference"),
        ('{"python3.13": "x\\ny"}', "must be an image reference"),
        ('{"python3.13": ["x"]}', "must be an image reference"),
    ],
)
def test_a_malformed_value_stops_the_operator_naming_it(raw: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        OperatorConfig.from_env({"KFAAS_RUNTIME_IMAGES": raw})
    assert "KFAAS_RUNTIME_IMAGES" in str(caught.value)


def test_a_code_image_runs_whatever_its_runtime() -> None:
    config = OperatorConfig(image=MAIN)
    for runtime in runtimes.RUNTIMES:
        own = function(runtime, code={"image": "registry.example/mine:2"})
        assert fn.runtime_refusal(own, config) is None
        assert image_of(fn.make_deployment(own, "u", config)) == "registry.example/mine:2"


def test_the_refusal_names_the_chart_value_to_set() -> None:
    message = fn.runtime_refusal(function("python3.12"), OperatorConfig(image=MAIN))
    assert message is not None
    assert message.startswith(
        "runtime python3.12 has no image: set functions.runtimeImages.python3.12 in the chart "
        "values (helm --set functions.runtimeImages.python3\\.12=IMAGE, an image of kfaas built "
        "on Python 3.12) and restart the operator"
    )
    with pytest.raises(ValueError, match=r"runtime python3\.13 has no image"):
        fn.make_deployment(function("python3.13"), "u", OperatorConfig(image=MAIN))
    assert "an image of kfaas)" in runtimes.missing_image_message("provided")


class _Cluster:
    """Just enough of KubeClient: one live Deployment (or none), applies recorded."""

    def __init__(self, deployment: dict[str, Any] | None) -> None:
        self.deployment = deployment
        self.applied: list[tuple[dict[str, Any], str | None]] = []

    async def find(self, api_version: str, plural: str, namespace: str, name: str) -> Any:
        assert (plural, namespace, name) == ("deployments", "media", "thumb-fn"), (plural, name)
        return self.deployment

    async def apply(
        self, body: dict[str, Any], plural: str, *, field_manager: str | None = None
    ) -> dict[str, Any]:
        self.applied.append((body, field_manager))
        return body

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the reconciler called {name} for a refused runtime")


def reconcile(stored: dict[str, Any], cluster: _Cluster, config: OperatorConfig) -> Any:
    return asyncio.run(reconcile_function(cluster, copy.deepcopy(stored), config))  # type: ignore[arg-type]


def test_the_reconciler_builds_nothing_for_a_runtime_without_an_image() -> None:
    cluster = _Cluster(None)
    result = reconcile(doc("python3.12"), cluster, OperatorConfig(image=MAIN))
    valid, missing = result.outcomes
    assert (valid.type, valid.status) == ("SpecValid", "True")
    assert (missing.type, missing.status, missing.reason) == (
        "RuntimeAvailable",
        "False",
        "RuntimeNotAvailable",
    )
    assert "set functions.runtimeImages.python3.12" in missing.message
    assert cluster.applied == [] and result.written == []
    assert result.extra["url"].endswith("/functions/media%2Fthumb/invocations")


def test_pods_of_an_earlier_runtime_are_stopped_when_the_new_one_has_no_image() -> None:
    running = {"metadata": {"name": "thumb-fn"}, "spec": {"replicas": 2, "template": {}}}
    cluster = _Cluster(running)
    result = reconcile(doc("python3.13"), cluster, OperatorConfig(image=MAIN))
    assert result.outcomes[-1].message.endswith(
        "its running instances (Deployment thumb-fn) were stopped"
    )
    ((body, manager),) = cluster.applied
    assert manager == names.AUTOSCALER_FIELD_MANAGER and body["spec"] == {"replicas": 0}


def test_the_autoscaler_leaves_a_function_without_an_image_stopped() -> None:
    def scaled(images: dict[str, str]) -> list[Any]:
        cluster = _Cluster(None)
        autoscaler = Autoscaler(cluster, platform_namespace="platform", images=images)  # type: ignore[arg-type]
        autoscaler.deployments.objects["media/thumb-fn"] = {"spec": {"replicas": 0}}
        stored = doc("python3.13", scaling={"minInstances": 2})
        autoscaler.functions.objects["media/thumb"] = stored
        asyncio.run(autoscaler.tick())
        return [body["spec"] for body, _ in cluster.applied]

    assert scaled({"python3.11": MAIN}) == []
    assert scaled({"python3.11": MAIN, "python3.13": "kfaas:py313"}) == [{"replicas": 2}]
