"""`kfaas dev` as a user lives with it: scaling from and to zero, provisioned instances, reloads."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from devserver import DevServer, dev_server
from waiting import eventually

MANIFEST = """
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: version}
spec:
  runtime: python3.11
  handler: app.handler
  code: {path: ./src}
  scaling: {maxInstances: 3, scaleToZeroAfterSeconds: SCALE_TO_ZERO}
  environment: {LABEL: first}
---
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: warm}
spec:
  runtime: python3.11
  handler: app.handler
  code: {path: ./src}
  concurrency: {provisioned: 1}
"""

CODE = """
import os, time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"version": VERSION, "label": os.environ.get("LABEL"), "pid": os.getpid(),
            "init": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")}
"""


def write(folder: Path, version: int, scale_to_zero: float = 2) -> None:
    (folder / "src").mkdir(exist_ok=True)
    (folder / "src" / "app.py").write_text(CODE.replace("VERSION", str(version)))
    (folder / "functions.yaml").write_text(MANIFEST.replace("SCALE_TO_ZERO", str(scale_to_zero)))


def invoke(dev: DevServer, name: str, payload: object = None) -> dict[str, object]:
    request = urllib.request.Request(
        f"{dev.url}/2015-03-31/functions/{name}/invocations",
        data=json.dumps(payload or {}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return dict(json.loads(reply.read()))


def ready_instances(dev: DevServer, name: str) -> int:
    with urllib.request.urlopen(f"{dev.url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found = re.search(
        rf'kfaas_ready_instances{{function="{name}",namespace="default",version="\$LATEST"}}'
        r" ([\d.]+)",
        text,
    )
    return int(float(found.group(1))) if found else 0


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, DevServer]]:
    write(tmp_path, 1)
    # A 3 s stable window lets instances go back to zero within the test.
    with dev_server([tmp_path], env={"KFAAS_SCALING_STABLE_WINDOW_SECONDS": "3"}) as dev:
        yield tmp_path, dev


def test_scale_from_zero_up_and_back_to_zero(project: tuple[Path, DevServer]) -> None:
    _, dev = project
    assert ready_instances(dev, "version") == 0
    assert invoke(dev, "version")["version"] == 1  # held until the first instance is ready
    with ThreadPoolExecutor(6) as pool:
        pids = {
            r["pid"] for r in pool.map(lambda _: invoke(dev, "version", {"sleep": 1}), range(6))
        }
    assert len(pids) >= 2, "concurrent demand beyond one worker must add instances"
    eventually(lambda: ready_instances(dev, "version") >= 2, within=20, what="scaled up")
    eventually(lambda: ready_instances(dev, "version") == 0, within=30, what="scaled to zero")


def test_provisioned_instance_is_ready_without_requests(project: tuple[Path, DevServer]) -> None:
    _, dev = project
    eventually(lambda: ready_instances(dev, "warm") == 1, within=20, what="one warm instance")


def test_provisioned_instances_say_so_and_on_demand_ones_too(
    project: tuple[Path, DevServer],
) -> None:
    """Lambda's AWS_LAMBDA_INITIALIZATION_TYPE: the provisioned instance, and those started for
    the load beyond it, or for a function with none provisioned (ADR 030)."""
    _, dev = project
    eventually(lambda: ready_instances(dev, "warm") == 1, within=20, what="one warm instance")
    assert invoke(dev, "warm")["init"] == "provisioned-concurrency"
    assert invoke(dev, "version")["init"] == "on-demand"
    with ThreadPoolExecutor(3) as pool:
        seen = list(pool.map(lambda _: invoke(dev, "warm", {"sleep": 1}), range(3)))
    assert {r["init"] for r in seen} == {"provisioned-concurrency", "on-demand"}
    by_pid = {r["pid"]: r["init"] for r in seen}
    assert list(by_pid.values()).count("provisioned-concurrency") == 1


def test_code_and_manifest_changes_reload(project: tuple[Path, DevServer]) -> None:
    folder, dev = project
    first = invoke(dev, "version")
    assert (first["version"], first["label"]) == (1, "first")
    write(folder, 2)
    try:
        eventually(lambda: invoke(dev, "version")["version"] == 2, within=20, what="version 2")
    except AssertionError:
        print(dev.output())
        raise
    manifest = folder / "functions.yaml"
    manifest.write_text(manifest.read_text().replace("LABEL: first", "LABEL: second"))
    eventually(lambda: invoke(dev, "version")["label"] == "second", within=20, what="label second")


def test_invalid_manifest_keeps_serving_the_last_good_one(project: tuple[Path, DevServer]) -> None:
    folder, dev = project
    assert invoke(dev, "version")["version"] == 1
    manifest = folder / "functions.yaml"
    manifest.write_text(manifest.read_text().replace("maxInstances: 3", "maxInstances: -1"))
    eventually(
        lambda: "spec.scaling.maxInstances" in dev.output(), within=20, what="the field refused"
    )
    assert invoke(dev, "version")["version"] == 1


def test_invalid_manifest_at_start_is_refused_with_the_field(tmp_path: Path) -> None:
    write(tmp_path, 1)
    manifest = tmp_path / "functions.yaml"
    manifest.write_text(manifest.read_text().replace("runtime: python3.11", "runtime: cobol", 1))
    with pytest.raises(RuntimeError) as raised, dev_server([tmp_path], timeout=20):
        pass
    assert "spec.runtime" in str(raised.value)
    shutil.rmtree(tmp_path / "src")
