"""What the shared reserved-concurrency count costs (ADR 028): one Redis round trip per invocation.

Two `kfaas dev` side by side serve a no-op function with `concurrency.reserved: 50` (never
reached here, so every call is admitted) and an unreserved twin: one without KFAAS_REDIS_URL
(each process counts alone), one with it (each invocation of the reserved function takes a slot
from Redis and gives it back in the background). Every caller calls the four targets in turn, call
by call, so the machine's other load falls on all alike; 1 and 8 callers. The ratio is the shared
limiter's cost on the whole invoke path.

Run: .venv/bin/python bench/reserved.py (a private redis-server, or the one REDIS_URL names)
"""

from __future__ import annotations

import contextlib
import http.client
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from devserver import dev_server
from services.redis_server import RedisServer

MANIFEST = """
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: reserved}
spec:
  runtime: python3.11
  handler: app.handler
  code: {path: ./src}
  concurrency: {perInstance: 8, reserved: 50, provisioned: 1}
---
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: free}
spec:
  runtime: python3.11
  handler: app.handler
  code: {path: ./src}
  concurrency: {perInstance: 8, provisioned: 1}
"""


Target = tuple[str, str]  # (count, function)


def caller(urls: dict[str, str], rounds: int, seconds: dict[Target, list[float]]) -> None:
    """Call the four targets in turn, one call each per round, on keep-alive connections."""
    connections = {
        count: http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
        for count, url in urls.items()
    }
    for _ in range(rounds):
        for count, connection in connections.items():
            for function in ("free", "reserved"):
                started = time.perf_counter()
                connection.request("POST", f"/2015-03-31/functions/{function}/invocations", b"{}")
                answer = connection.getresponse()
                answer.read()
                assert answer.status == 200, answer.status
                seconds[count, function].append(time.perf_counter() - started)
    for connection in connections.values():
        connection.close()


def run(urls: dict[str, str], callers: int, rounds: int) -> dict[Target, list[float]]:
    caller(urls, 20, {target: [] for target in TARGETS})  # warm-up: instances, connections
    results = [{target: [] for target in TARGETS} for _ in range(callers)]
    threads = [
        threading.Thread(target=caller, args=(urls, rounds, results[i])) for i in range(callers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {target: [s for result in results for s in result[target]] for target in TARGETS}


COUNTS = ("per process", "shared (Redis)")
TARGETS = [(count, function) for count in COUNTS for function in ("free", "reserved")]


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-reserved-"))
    redis = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:  # a private one, as the tests start it
        redis = RedisServer(root / "services")
        redis_url = redis.up()["REDIS_URL"]
    try:
        measure(root, redis_url)
    finally:
        if redis is not None:
            redis.down()


def measure(root: Path, redis_url: str) -> None:
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("def handler(event, context):\n    return {}\n")
    (root / "functions.yaml").write_text(MANIFEST)
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print("| count | function | callers | p50 ms | p90 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    envs = dict(zip(COUNTS, ({}, {"KFAAS_REDIS_URL": redis_url}), strict=True))
    with contextlib.ExitStack() as stack:
        # Both servers run side by side and every caller takes the four targets in turn, call by
        # call: whatever else loads the machine loads all four alike.
        urls = {
            count: stack.enter_context(dev_server([root / "functions.yaml"], env=env)).url
            for count, env in envs.items()
        }
        for callers, rounds in ((1, 1500), (8, 200)):
            p50 = {}
            for (count, function), taken in run(urls, callers, rounds).items():
                cuts = statistics.quantiles(taken, n=100)
                p50[count, function] = cuts[49]
                print(
                    f"| {count} | {function} | {callers} | {cuts[49] * 1000:.2f} | "
                    f"{cuts[89] * 1000:.2f} | {cuts[98] * 1000:.2f} |"
                )
            shared = p50["shared (Redis)", "reserved"]
            print(
                f"{callers} caller(s): reserved p50 shared / per process "
                f"{shared / p50['per process', 'reserved']:.2f}x, shared reserved / free "
                f"{shared / p50['shared (Redis)', 'free']:.2f}x, "
                f"+{(shared - p50['per process', 'reserved']) * 1000:.2f} ms"
            )


if __name__ == "__main__":
    main()
