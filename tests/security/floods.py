"""The two memory floods of issue 8, run against a ``kfaas dev`` process while its RSS is sampled.

Shared by tests/security/test_limits.py (the bounds hold, answers are right) and bench/floods.py
(the figures in docs/benchmarks.md), so both measure the same thing. The gateway is the ``kfaas
dev`` process itself; function instances are its children and are not counted.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

MB = 1024 * 1024


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class FloodResult:
    rss_before: int = 0
    rss_peak: int = 0
    rss_after: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    refusals: list[Answer] = field(default_factory=list)
    valid_calls: list[Answer] = field(default_factory=list)
    seconds: float = 0.0


def call(
    url: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    timeout: float = 120.0,
) -> Answer:
    """One request on a fresh connection; transport errors are an ``Answer`` with status 0."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        reply = connection.getresponse()
        return Answer(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
    except OSError as exc:
        return Answer(0, {}, repr(exc).encode())
    finally:
        connection.close()


def invoke_path(name: str) -> str:
    return f"/2015-03-31/functions/{name}/invocations"


@contextmanager
def rss_sampled(pid: int, result: FloodResult) -> Iterator[None]:
    """Sample the process's RSS every 20 ms while the block runs (before, peak, and 2 s after)."""
    process = psutil.Process(pid)
    result.rss_before = process.memory_info().rss
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            result.rss_peak = max(result.rss_peak, process.memory_info().rss)
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        yield
    finally:
        result.seconds = time.monotonic() - started
        time.sleep(2)
        stop.set()
        sampler.join()
        result.rss_after = process.memory_info().rss
        result.rss_peak = max(result.rss_peak, result.rss_after)


def _flood(
    url: str,
    pid: int,
    send: Callable[[], Answer],
    count: int,
    concurrency: int,
    valid: Callable[[], Answer],
) -> FloodResult:
    result = FloodResult()
    lock = threading.Lock()

    def one(_: int) -> None:
        answer = send()
        with lock:
            result.statuses[answer.status] += 1
            if answer.status != 202 and answer.status != 200 and len(result.refusals) < 50:
                result.refusals.append(answer)

    with rss_sampled(pid, result), ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(one, index) for index in range(count)]
        # The valid calls go while the flood is under way, on connections of their own.
        time.sleep(0.5)
        for _ in range(3):
            result.valid_calls.append(valid())
        for future in futures:
            future.result()
    return result


def valid_call(url: str) -> Answer:
    return call(url, invoke_path("echo"), json.dumps({"valid": True}).encode(), timeout=60)


def event_flood(url: str, pid: int, *, count: int = 800, concurrency: int = 32) -> FloodResult:
    """``count`` Event calls of 1 MB each to a function that takes one event at a time."""
    body = json.dumps({"seconds": 2, "pad": "x" * (MB - 64)}).encode()
    headers = {"X-Amz-Invocation-Type": "Event", "Content-Type": "application/json"}

    def send() -> Answer:
        return call(url, invoke_path("throttled"), body, headers)

    return _flood(url, pid, send, count, concurrency, lambda: valid_call(url))


def sync_flood(url: str, pid: int, *, count: int = 48, concurrency: int = 48) -> FloodResult:
    """``count`` concurrent 6 MB sync calls to a function with one slow instance."""
    body = json.dumps({"seconds": 3, "pad": "x" * (6 * MB - 64)}).encode()

    def send() -> Answer:
        return call(url, invoke_path("slow"), body, {"Content-Type": "application/json"})

    return _flood(url, pid, send, count, concurrency, lambda: valid_call(url))
