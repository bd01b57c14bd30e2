"""Honest runtimes on the real node: each runtime's handler runs on that Python, a runtime with no
image is refused with the chart value to set, and `code.image` runs an image built FROM kfaas."""

from __future__ import annotations

import json
from pathlib import Path

from services import images
from services.image_fixtures import BuiltImages
from services.node import NodeCluster
from waiting import eventually

from node.kfaas_release import Release

VERSION = """\
import os, sys

def handler(event, context):
    return {"python": list(sys.version_info[:2]), "env": os.environ.get("AWS_EXECUTION_ENV"),
            "where": os.path.dirname(os.path.abspath(__file__))}
"""


def _invoke(release: Release, name: str) -> dict[str, object]:
    answer = release.lambda_client().invoke(FunctionName=release.qualified(name), Payload=b"{}")
    assert "FunctionError" not in answer, answer["Payload"].read()
    body: dict[str, object] = json.loads(answer["Payload"].read())
    return body


def test_each_python_runtime_runs_on_its_own_interpreter(release: Release) -> None:
    for runtime, version in (("python3.11", [3, 11]), ("python3.13", [3, 13])):
        name = release.function({"app.py": VERSION}, runtime=runtime)
        body = _invoke(release, name)
        assert body["python"] == version, (runtime, body)
        assert body["env"] == f"AWS_Lambda_{runtime}"


def test_a_runtime_without_an_image_is_refused_with_the_value_to_set(release: Release) -> None:
    name = release.function({"app.py": VERSION}, runtime="python3.12", ready=False)

    def refused() -> dict[str, str] | None:
        found = release.kubectl.json("-n", release.namespace, "get", "function", name)
        for condition in found.get("status", {}).get("conditions", []):
            if (condition["type"], condition["status"], condition.get("reason")) == (
                "Ready",
                "False",
                "RuntimeNotAvailable",
            ):
                return dict(condition)
        return None

    condition = eventually(refused, within=60, what="Ready=False RuntimeNotAvailable")
    assert "functions.runtimeImages.python3.12" in condition["message"]
    assert release.pods(name) == []


def test_code_image_built_from_the_kfaas_image(
    release: Release, cluster_service: NodeCluster, kfaas_images: BuiltImages, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(VERSION)
    built = images.function_image(kfaas_images.kfaas["3.11"], code, "localhost/e2e-function:v1")
    cluster_service.import_image(built.archive)
    name = release.function(code={"image": built.ref})
    body = eventually(lambda: _invoke(release, name), within=60, what="the image's handler")
    assert body["where"] == "/var/task" and body["python"] == [3, 11]
