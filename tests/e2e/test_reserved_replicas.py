"""Reserved concurrency holds across gateway replicas (issue 12, point 6; ADR 028).

Three real `kfaas dev` processes stand for three gateway replicas: each serves the same function
from its own state folder and runs its own instances, and all three share one platform Redis
(KFAAS_REDIS_URL), as the chart's replicas do. What is capped is the function's concurrent
executions platform-wide, so the function counts itself: every invocation takes a lock on one
file, bumps the number running and the highest seen, and lowers it again when it ends. A flood
of 60 callers through all three must never see more than `reserved` running — also while the
Redis is down (each replica then admits only its share) and after it is back.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from devserver import DevServer, dev_server
from services.redis_server import RedisServer
from waiting import eventually

RESERVED = 3

MANIFEST = """
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {{name: counted}}
spec:
  runtime: python3.11
  handler: app.handler
  code: {{path: ./src}}
  concurrency: {{reserved: {reserved}}}
  scaling: {{maxInstances: {reserved}}}
  environment: {{COUNT_FILE: "{count_file}"}}
"""

HANDLER = """\
import fcntl, os, time

def change(delta):
    with open(os.environ["COUNT_FILE"], "a+") as counts:
        fcntl.flock(counts, fcntl.LOCK_EX)
        counts.seek(0)
        running, peak = map(int, (counts.read() or "0 0").split())
        running += delta
        counts.seek(0)
        counts.truncate()
        counts.write(f"{running} {max(peak, running)}")

def handler(event, context):
    change(1)
    try:
        time.sleep(0.3)
    finally:
        change(-1)
    return {"ok": True}
"""


def counts(path: Path) -> tuple[int, int]:
    running, peak = map(int, (path.read_text() or "0 0").split())
    return running, peak


def invoke(url: str) -> str:
    """ "ok", or the throttle's Reason; anything else fails the test."""
    request = urllib.request.Request(
        f"{url}/2015-03-31/functions/counted/invocations", data=b"{}", method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return "ok" if answer.status == 200 else f"status {answer.status}"
    except urllib.error.HTTPError as error:
        body = json.loads(error.read() or b"{}")
        if error.code == 429 and error.headers["x-amzn-ErrorType"] == "TooManyRequestsException":
            return str(body.get("Reason"))
        return f"status {error.code}: {body}"


def flood(servers: list[DevServer], seconds: float, callers: int = 60) -> Counter[str]:
    """``callers`` threads calling through all servers in turn for ``seconds``."""
    deadline = time.monotonic() + seconds
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def caller(index: int) -> None:
        while time.monotonic() < deadline:
            outcome = invoke(servers[index % len(servers)].url)
            with lock:
                outcomes[outcome] += 1
            if outcome != "ok":
                time.sleep(0.2)  # a throttled client backs off a moment

    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(caller, range(callers)))
    return outcomes


def degraded(server: DevServer) -> float:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as page:
        for line in page.read().decode().splitlines():
            if line.startswith("kfaas_reserved_limiter_degraded "):
                return float(line.split()[1])
    raise AssertionError("no kfaas_reserved_limiter_degraded gauge")


@pytest.mark.redis
def test_three_gateways_never_run_more_than_reserved_even_while_redis_is_down(
    tmp_path: Path,
) -> None:
    # A Redis of this test's own: it is stopped mid-flood, and the session's serves other tests.
    redis = RedisServer(tmp_path / "services")
    redis.up()
    count_file = tmp_path / "counts"
    count_file.write_text("0 0")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(HANDLER)
    (tmp_path / "counted.yaml").write_text(
        MANIFEST.format(reserved=RESERVED, count_file=count_file)
    )
    try:
        with contextlib.ExitStack() as stack:
            servers = [
                stack.enter_context(
                    dev_server([tmp_path / "counted.yaml"], env={"KFAAS_REDIS_URL": redis.url})
                )
                for _ in range(3)
            ]
            started = time.monotonic()
            # One call each first: every gateway has a warm instance (a loaded machine can take
            # seconds to start one, and a flood would spend its time waiting for them).
            assert [invoke(server.url) for server in servers] == ["ok"] * 3
            shared = flood(servers, 4)
            assert counts(count_file)[1] <= RESERVED, shared
            assert shared["ok"] >= 3, shared
            assert shared["ReservedFunctionConcurrentInvocationLimitExceeded"] >= 10, shared
            assert set(shared) == {"ok", "ReservedFunctionConcurrentInvocationLimitExceeded"}

            # Each replica counted the other two (two ticks after it started): share 3 // 3.
            time.sleep(max(0.0, started + 5 - time.monotonic()))
            redis.down()
            outage = flood(servers, 4)
            assert counts(count_file)[1] <= RESERVED, outage
            assert outage["ok"] >= 3, outage
            assert all(degraded(server) == 1 for server in servers)

            redis.up()
            eventually(
                lambda: all(degraded(server) == 0 for server in servers),
                within=30,
                what="every gateway back on the shared count",
            )
            back = flood(servers, 4)
            running, peak = counts(count_file)
            assert peak <= RESERVED, back
            assert running == 0
            assert back["ok"] >= 3, back
            assert back["ReservedFunctionConcurrentInvocationLimitExceeded"] >= 10, back
            for server in servers:
                output = server.output()
                assert output.count("the shared count in Redis is unreachable") == 1, output
                assert output.count("the shared count in Redis answers again") == 1, output
    finally:
        redis.down()
