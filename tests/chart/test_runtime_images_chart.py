"""`functions.runtimeImages` reaches the operator as the image of each runtime (ADR 016).

Rendered with Helm (no cluster), the operator's environment read by `OperatorConfig.from_env` as
the operator does; the operator acting on it is in tests/operator/test_runtime_images_cluster.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart.platform import CHART, render
from kfaas.operator.config import OperatorConfig


def operator_config(helm: Path, *values: str) -> OperatorConfig:
    text = render(helm, "kfaas-system", *values, include_crds=False)
    objects: list[dict[str, Any]] = [doc for doc in yaml.safe_load_all(text) if doc]
    (operator,) = [
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "kfaas-operator"
    ]
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    # Secrets' values (the keys) are not rendered: any text stands for them.
    env = {entry["name"]: entry.get("value", "from-a-secret") for entry in container["env"]}
    return OperatorConfig.from_env(env)


def test_by_default_only_the_main_images_python_runs(helm: Path) -> None:
    config = operator_config(helm, "image.repository=localhost/kfaas", "image.tag=1.2")
    assert config.images() == {
        "python3.11": "localhost/kfaas:1.2",
        "provided": "localhost/kfaas:1.2",
    }


def test_each_runtime_gets_the_image_set_for_it(helm: Path) -> None:
    config = operator_config(
        helm,
        "image.repository=localhost/kfaas",
        "image.tag=1.2",
        "functions.runtimeImages.python3\\.13=localhost/kfaas-python3.13:1.2",
        "functions.runtimeImages.python3\\.12=registry.example/kfaas@sha256:" + "a" * 64,
    )
    assert config.images() == {
        "python3.11": "localhost/kfaas:1.2",
        "python3.12": "registry.example/kfaas@sha256:" + "a" * 64,
        "python3.13": "localhost/kfaas-python3.13:1.2",
        "provided": "localhost/kfaas:1.2",
    }
    # python3.11 may run another image than the platform's own (a patched interpreter, say).
    own = operator_config(helm, "functions.runtimeImages.python3\\.11=localhost/py311:9")
    assert own.images()["python3.11"] == "localhost/py311:9"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("functions.runtimeImages.python3\\.14=x", "additional properties 'python3.14'"),
        ("functions.runtimeImages.nodejs20\\.x=x", "additional properties"),
        ("functions.runtimeImages.python3\\.13=", "minLength"),
    ],
)
def test_the_schema_refuses_unknown_runtimes_and_empty_images(
    helm: Path, value: str, words: str
) -> None:
    done = subprocess.run(
        [str(helm), "template", "kfaas", str(CHART), "--set", value],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and words in done.stderr, (value, done.stderr)
