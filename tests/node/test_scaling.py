"""Scaling with real pods: from zero on the first invoke, up under concurrent load, back to zero,
and a code change rolled out under steady load without a failed invocation."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from waiting import eventually

from node.kfaas_release import Release

# Pods start, die and are replaced for real here: minutes, not the default 120 s.
pytestmark = pytest.mark.timeout(420)

SLEEPER = """\
import os, time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"pod": os.environ.get("HOSTNAME"), "version": VERSION}

VERSION = "%s"
"""


def call(release: Release, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    answer = release.lambda_client().invoke(
        FunctionName=release.qualified(name), Payload=json.dumps(payload).encode()
    )
    assert "FunctionError" not in answer, answer["Payload"].read()
    result: dict[str, Any] = json.loads(answer["Payload"].read())
    return result


def test_first_invoke_of_a_zero_instance_function_waits_for_a_real_pod(release: Release) -> None:
    name = release.function({"app.py": SLEEPER % "v1"})
    assert release.running_pods(name) == []  # Ready at zero instances: nothing runs yet
    started = time.monotonic()
    body = call(release, name, {})
    waited = time.monotonic() - started
    assert body["version"] == "v1"
    pods = [pod["metadata"]["name"] for pod in release.running_pods(name)]
    assert body["pod"] in pods, (body, pods)
    print(f"cold start through a real pod: {waited:.2f} s")  # bench/cold_start.py measures it


def test_scales_up_under_concurrent_load_and_back_to_zero_after_idle(release: Release) -> None:
    name = release.function(
        {"app.py": SLEEPER % "v1"},
        scaling={"maxInstances": 3, "scaleToZeroAfterSeconds": 5},
        concurrency={"perInstance": 1},
        timeoutSeconds=30,
    )
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: call(release, name, {"sleep": 4}), range(6)))
    served_by = {answer["pod"] for answer in answers}
    assert len(served_by) >= 2, f"6 concurrent 4 s calls were all served by {served_by}"
    eventually(
        lambda: release.running_pods(name) == [] and not release.pods(name),
        within=90,
        what="the function to scale back to zero pods after 5 s idle",
    )


def test_code_change_rolls_out_under_steady_load_with_zero_failures(release: Release) -> None:
    name = release.function({"app.py": SLEEPER % "v1"}, scaling={"minInstances": 1})
    eventually(lambda: release.running_pods(name) or None, within=60, what="a pod")
    failures: list[str] = []
    versions: list[str] = []
    stop = threading.Event()

    def load() -> None:
        client = release.lambda_client()
        while not stop.is_set():
            try:
                answer = client.invoke(FunctionName=release.qualified(name), Payload=b"{}")
                body = json.loads(answer["Payload"].read())
                if "FunctionError" in answer:
                    failures.append(json.dumps(body))
                else:
                    versions.append(body["version"])
            except Exception as error:  # every failure counts, whatever its type
                failures.append(repr(error))
            time.sleep(0.02)

    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(2)
        release.function({"app.py": SLEEPER % "v2"}, name=name, scaling={"minInstances": 1})
        eventually(
            lambda: versions[-20:] == ["v2"] * 20 if len(versions) >= 20 else None,
            within=120,
            what="answers from the new code only",
        )
        time.sleep(2)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert failures == [], (
        f"{len(failures)} failed of {len(failures) + len(versions)}: {failures[:5]}"
    )
    assert "v1" in versions and "v2" in versions
