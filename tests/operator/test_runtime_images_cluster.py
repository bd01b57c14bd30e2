"""A runtime with no image is not available until the platform names one (ADR 016), on the real
API server with the operator configured as the chart configures it.

The operator is a local process as the chart's ServiceAccount (chart/platform.py), its settings
taken from the operator Deployment the chart renders with the values under test: the first run
has the chart's defaults (no python3.13 image), the second `--set functions.runtimeImages...`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart.platform import Platform, install, operator_process, render
from services.cluster import Cluster

PY313_IMAGE = "localhost/kfaas-python3.13:test"


@pytest.fixture(scope="module")
def platform(
    helm: Path, kwok_service: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    installed = install(helm, kwok_service, tmp_path_factory.mktemp("runtimes"))
    yield installed
    kwok_service.kubectl("delete", "namespace", installed.namespace, "--wait=false")


def chart_env(helm: Path, platform: Platform, *values: str) -> dict[str, str]:
    """The operator's image settings as the chart renders them with ``values``."""
    text = render(helm, platform.namespace, *values, include_crds=False)
    (operator,) = [
        doc
        for doc in yaml.safe_load_all(text)
        if doc and doc["kind"] == "Deployment" and doc["metadata"]["name"] == "kfaas-operator"
    ]
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    wanted = ("KFAAS_IMAGE", "KFAAS_RUNTIME_IMAGES")
    return {e["name"]: e["value"] for e in container["env"] if e["name"] in wanted}


def get(platform: Platform, namespace: str, *what: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        platform.kubectl("-n", namespace, "get", *what, "-o", "json")
    )
    return found


def wait(platform: Platform, namespace: str, condition: str, target: str) -> None:
    platform.kubectl("-n", namespace, "wait", f"--for={condition}", "--timeout=60s", target)


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for item in body.get("status", {}).get("conditions", []):
        if item["type"] == kind:
            return dict(item)
    raise AssertionError(f"no {kind} condition in {body.get('status')}")


def function_doc(name: str, namespace: str, runtime: str) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runtime": runtime,
            "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}},
            "scaling": {"minInstances": 1},
        },
    }


def test_a_runtime_without_an_image_is_not_available_until_configured(
    helm: Path, platform: Platform
) -> None:
    namespace = f"fns-{uuid.uuid4().hex[:6]}"
    platform.kubectl("create", "namespace", namespace)
    defaults = chart_env(helm, platform, "image.repository=localhost/kfaas", "image.tag=test")
    with operator_process(platform, **defaults):
        platform.apply(function_doc("newer", namespace, "python3.13"))
        platform.apply(function_doc("older", namespace, "python3.11"))
        wait(platform, namespace, "condition=Ready=False", "function/newer")
        wait(platform, namespace, "condition=Ready", "function/older")
        newer = get(platform, namespace, "function/newer")
        ready = condition(newer, "Ready")
        assert ready["reason"] == "RuntimeNotAvailable"
        assert ready["message"].startswith(
            "runtime python3.13 has no image: set functions.runtimeImages.python3.13 in the "
            "chart values (helm --set functions.runtimeImages.python3\\.13=IMAGE"
        )
        assert condition(newer, "RuntimeAvailable")["status"] == "False"
        # Nothing that would run it: no Deployment, no pod, no code ConfigMap.
        selector = "kfaas.dev/function=newer"
        for kind in ("deployments", "pods", "configmaps"):
            assert get(platform, namespace, kind, "-l", selector)["items"] == [], kind
        older = get(platform, namespace, "deployment", "older-fn")
        (container,) = older["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "localhost/kfaas:test"
    # The platform team sets the value; the restarted operator runs the function on that image.
    configured = chart_env(
        helm,
        platform,
        "image.repository=localhost/kfaas",
        "image.tag=test",
        f"functions.runtimeImages.python3\\.13={PY313_IMAGE}",
    )
    with operator_process(platform, **configured):
        wait(platform, namespace, "condition=Ready", "function/newer")
        wait(platform, namespace, "jsonpath={.status.readyInstances}=1", "function/newer")
        newer = get(platform, namespace, "function/newer")
        available = condition(newer, "RuntimeAvailable")
        assert (available["status"], available["message"]) == ("True", f"python3.13: {PY313_IMAGE}")
        deployment = get(platform, namespace, "deployment", "newer-fn")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == PY313_IMAGE
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["KFAAS_RUNTIME"] == "python3.13"
    platform.kubectl("delete", "namespace", namespace, "--wait=false")
