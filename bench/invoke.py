"""Sync invoke latency and throughput, side by side, in one run.

Measures with the same aiohttp client, at concurrency 1 and 16:
  - bare:    a bare aiohttp echo server (the floor for any HTTP round trip here),
  - direct:  POST /invoke on the runtime instance of a no-op function (runtime + worker),
  - gateway: the Lambda Invoke API through `kfaas dev` (gateway + runtime + worker),
then cold starts: the first invoke of each of several zero-instance functions.
Prints a table and the ratios the issue sets targets for. Run: `.venv/bin/python bench/invoke.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from devserver import dev_server

from kfaas import runtimetoken

BENCH_KEY = "kfaas-bench-key"

ECHO_SERVER = textwrap.dedent(
    """
    import sys
    from aiohttp import web
    async def echo(request):
        return web.Response(body=await request.read(), content_type="application/json")
    app = web.Application()
    app.router.add_post("/echo", echo)
    ready = lambda *args: print("ready", flush=True)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=ready)
    """
)

NOOP = "def handler(event, context):\n    return event\n"


def manifests(folder: Path, cold_functions: int, workers: int) -> None:
    docs = [
        {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "noop"},
            "spec": {
                "runtime": "python3.11",
                "handler": "app.handler",
                "code": {"inline": {"app.py": NOOP}},
                "concurrency": {"perInstance": workers},
                "scaling": {"minInstances": 1, "maxInstances": 1},
            },
        }
    ]
    for index in range(cold_functions):
        docs.append(
            {
                "apiVersion": "kfaas.dev/v1alpha1",
                "kind": "Function",
                "metadata": {"name": f"cold-{index}"},
                "spec": {
                    "runtime": "python3.11",
                    "handler": "app.handler",
                    "code": {"inline": {"app.py": NOOP + f"# {index}\n"}},
                },
            }
        )
    (folder / "functions.yaml").write_text("\n---\n".join(json.dumps(doc) for doc in docs))


async def load(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    concurrency: int,
    total: int,
    headers: dict[str, str] | None = None,
) -> tuple[list[float], float]:
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as reply:
                await reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"{url} answered {reply.status}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, total / (time.perf_counter() - started)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(
    targets: dict[str, str], requests: int, headers: dict[str, dict[str, str]]
) -> dict[tuple[str, int], dict[str, float]]:
    results: dict[tuple[str, int], dict[str, float]] = {}
    body = b'{"hello": "world"}'
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for concurrency in (1, 16):
            for name, url in targets.items():
                extra = headers.get(name)
                warm_up = max(50, requests // 10)
                await load(session, url, body, concurrency, warm_up, extra)
                latencies, throughput = await load(session, url, body, concurrency, requests, extra)
                results[(name, concurrency)] = {
                    "p50_ms": statistics.median(latencies) * 1000,
                    "p99_ms": percentile(latencies, 0.99) * 1000,
                    "rps": throughput,
                }
    return results


async def cold_starts(url: str, count: int) -> list[float]:
    timings = []
    async with aiohttp.ClientSession() as session:
        for index in range(count):
            started = time.perf_counter()
            target = f"{url}/2015-03-31/functions/cold-{index}/invocations"
            async with session.post(target, data=b"{}") as reply:
                await reply.read()
                assert reply.status == 200, reply.status
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per measurement")
    parser.add_argument("--cold", type=int, default=10, help="cold starts to measure")
    parser.add_argument("--workers", type=int, default=16, help="workers of the no-op instance")
    args = parser.parse_args()

    port = free_port()
    echo = subprocess.Popen(
        [sys.executable, "-c", ECHO_SERVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    assert echo.stdout is not None
    echo.stdout.readline()
    folder = Path(tempfile.mkdtemp(prefix="kfaas-bench-"))
    manifests(folder, args.cold, args.workers)
    try:
        # A known platform key, so "direct" can present the instance's runtime token (ADR 011).
        with dev_server([folder], env={runtimetoken.KEY_ENV: BENCH_KEY}) as dev:
            deadline = time.monotonic() + 60
            direct = None
            while direct is None and time.monotonic() < deadline:
                found = re.search(r"of default/noop ready on port (\d+)", dev.output())
                direct = f"http://127.0.0.1:{found.group(1)}/invoke" if found else None
                time.sleep(0.05)
            assert direct, "the no-op instance did not start"
            targets = {
                "bare": f"http://127.0.0.1:{port}/echo",
                "direct": direct,
                "gateway": f"{dev.url}/2015-03-31/functions/noop/invocations",
            }
            token = runtimetoken.derive(BENCH_KEY, "default", "noop")
            direct_headers = {"direct": {runtimetoken.HEADER: token}}
            results = asyncio.run(measure(targets, args.requests, direct_headers))
            colds = asyncio.run(cold_starts(dev.url, args.cold))
    finally:
        echo.terminate()
        echo.wait()

    print(
        f"# kfaas invoke benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"{'target':<8} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for (name, concurrency), row in results.items():
        print(
            f"{name:<8} {concurrency:>4} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} "
            f"{row['rps']:>8.0f}"
        )
    print(
        f"cold start (first invoke of a zero-instance function, n={len(colds)}): "
        f"p50 {statistics.median(colds):.1f} ms, min {min(colds):.1f}, max {max(colds):.1f}"
    )
    for concurrency in (1, 16):
        gateway, bare, direct_row = (
            results[("gateway", concurrency)],
            results[("bare", concurrency)],
            results[("direct", concurrency)],
        )
        print(
            f"c={concurrency}: gateway p50 / bare echo p50 = "
            f"{gateway['p50_ms'] / bare['p50_ms']:.2f}x (target <= 4x); "
            f"gateway / direct throughput = {gateway['rps'] / direct_row['rps']:.0%} "
            f"(target >= 50%)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
