"""Timeouts, crashes, memory limits: the caller gets Lambda's error, the next a fresh worker."""

from __future__ import annotations

import re

from runtime.instances import Starter

APP = """
import ctypes, os, time
def handler(event, context):
    action = event["action"]
    if action == "sleep":
        time.sleep(event["seconds"])
    elif action == "exit":
        os._exit(3)
    elif action == "segfault":
        ctypes.string_at(0)
    elif action == "allocate":
        hog = b"x" * (event["mb"] * 1024 * 1024)
        time.sleep(2)
        return len(hog)
    return {"pid": os.getpid()}
"""


async def test_timeout_kills_and_replaces_the_worker(start: Starter) -> None:
    instance = await start({"app.py": APP}, KFAAS_TIMEOUT_SECONDS="1")
    pid = (await instance.invoke({"action": "pid"})).json()["pid"]
    reply = await instance.invoke(
        {"action": "sleep", "seconds": 30}, headers={"Lambda-Runtime-Aws-Request-Id": "slow-1"}
    )
    assert reply.function_error
    error = reply.json()
    assert error["errorType"] == "Sandbox.Timedout"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z slow-1 Task timed out after 1\.00 seconds",
        error["errorMessage"],
    )
    after = await instance.invoke({"action": "pid"})
    assert not after.function_error
    assert after.json()["pid"] != pid
    assert after.headers["X-Kfaas-Cold-Start"] == "1"  # a new worker, initialised afresh
    metrics = (await instance.get("/metrics")).body.decode()
    assert (
        'kfaas_worker_restarts_total{function="fn",namespace="tests",reason="timeout"} 1.0'
        in metrics
    )


async def test_crashes_are_exit_errors_and_the_worker_is_replaced(start: Starter) -> None:
    instance = await start({"app.py": APP})
    for action, reason in (("exit", "exit status 3"), ("segfault", "signal: segmentation fault")):
        reply = await instance.invoke(
            {"action": action}, headers={"Lambda-Runtime-Aws-Request-Id": "r"}
        )
        assert reply.function_error
        assert reply.json() == {
            "errorMessage": f"RequestId: r Error: Runtime exited with error: {reason}",
            "errorType": "Runtime.ExitError",
            "stackTrace": [],
        }
        assert not (await instance.invoke({"action": "pid"})).function_error
    restarts = [e["reason"] for e in instance.events() if e["event"] == "worker_restart"]
    assert restarts == ["crash", "crash"]


async def test_memory_limit_kills_the_worker(start: Starter) -> None:
    instance = await start(
        {"app.py": APP}, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="64", KFAAS_MEMORY_LIMIT="1"
    )
    assert (await instance.invoke({"action": "allocate", "mb": 8})).json() == 8 * 1024 * 1024
    reply = await instance.invoke(
        {"action": "allocate", "mb": 200}, headers={"X-Amz-Log-Type": "Tail"}
    )
    assert reply.function_error
    error = reply.json()
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    assert not (await instance.invoke({"action": "pid"})).function_error
    restarts = [e["reason"] for e in instance.events() if e["event"] == "worker_restart"]
    assert restarts == ["memory"]
