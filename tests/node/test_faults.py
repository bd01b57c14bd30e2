"""Real pods die: a function pod SIGKILLed mid-invocation, gateway pods killed after their 202s."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
import redis
from waiting import eventually

from node.kfaas_release import Release

# Pods start, die and are replaced for real here: minutes, not the default 120 s.
pytestmark = pytest.mark.timeout(420)

SLOW = """\
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"n": event.get("n")}
"""


def test_function_pod_killed_mid_invocation(
    release: Release, kill_pod: Callable[[dict[str, Any]], None]
) -> None:
    name = release.function({"app.py": SLOW}, timeoutSeconds=30, scaling={"minInstances": 1})
    pod = eventually(lambda: next(iter(release.running_pods(name)), None), within=60, what="a pod")
    outcome: dict[str, Any] = {}

    def slow_call() -> None:
        client = release.lambda_client()
        try:
            outcome["answer"] = client.invoke(
                FunctionName=release.qualified(name), Payload=b'{"sleep": 20}'
            )
        except Exception as error:  # the shape of the error is what is checked
            outcome["error"] = error

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(2)
    kill_pod(pod)
    caller.join(timeout=60)
    assert not caller.is_alive()
    error = outcome.get("error")
    assert error is not None, f"the call survived its pod being killed: {outcome}"
    body = getattr(error, "response", {}).get("Error", {})
    # Lambda's shape for a platform-side failure: a modeled error with a type and a message.
    assert body.get("Code") == "ServiceException", error
    assert "could not be reached" in body.get("Message", ""), body

    # Later invocations succeed on the replacement.
    def answered() -> bool:
        try:
            answer = release.lambda_client().invoke(
                FunctionName=release.qualified(name), Payload=b'{"n": 7}'
            )
        except Exception:
            return False
        return "FunctionError" not in answer and json.loads(answer["Payload"].read()) == {"n": 7}

    eventually(answered, within=90, what="an invocation on the replacement pod")


@pytest.mark.parametrize("events", [40])
def test_gateway_pods_killed_after_their_202s_lose_no_event(
    release: Release,
    platform_redis_url: str,
    kill_pod: Callable[[dict[str, Any]], None],
    events: int,
) -> None:
    stream = f"done-{time.monotonic_ns()}"
    spec: dict[str, Any] = {"async": {"onSuccess": {"redis": {"stream": stream}}}}
    name = release.function(
        {"app.py": SLOW},
        timeoutSeconds=30,
        scaling={"maxInstances": 2},
        **spec,
    )
    client = release.lambda_client()
    for n in range(events):
        answer = client.invoke(
            FunctionName=release.qualified(name),
            InvocationType="Event",
            Payload=json.dumps({"n": n, "sleep": 0.3}).encode(),
        )
        assert answer["StatusCode"] == 202
    gateways = release.kubectl.json(
        "-n", "kfaas-system", "get", "pods", "-l", "app.kubernetes.io/component=gateway"
    )["items"]
    for pod in gateways:
        kill_pod(pod)
    store = redis.Redis.from_url(platform_redis_url)

    def delivered() -> list[int] | None:
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", store.xrange(stream))
        seen = [json.loads(fields[b"body"])["responsePayload"]["n"] for _, fields in entries]
        return seen if set(seen) == set(range(events)) else None

    seen = eventually(delivered, within=240, what=f"{events} success records")
    duplicates = len(seen) - events
    print(f"{events} events, {duplicates} duplicates after killing {len(gateways)} gateway pods")
