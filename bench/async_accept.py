"""Durable async accept rate and enqueue-to-invoke latency, memory vs Redis vs Kafka, in one run.

For each queue, `kfaas dev --async-queue …` serves a function that appends the wall-clock time it
started to a file; the client sends Event invocations (payload: the time it sent them) at a fixed
concurrency and measures how many 202s per second come back. Enqueue-to-invoke latency is the
handler's start time minus the send time, over every event. Redis and Kafka come from
`scripts/services up redis kafka` (REDIS_URL, KAFKA_BOOTSTRAP_SERVERS); a queue whose service is
not set is skipped.

Run: eval "$(scripts/services up redis kafka)" && .venv/bin/python bench/async_accept.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from devserver import dev_server

HANDLER = """\
import json, os, time
def handler(event, context):
    started = time.time()
    with open(os.environ["RECORD_FILE"], "a") as record:
        record.write(json.dumps({"sent": event["sent"], "started": started}) + "\\n")
    return None
"""


def write_project(folder: Path, workers: int) -> Path:
    record = folder / "record.jsonl"
    record.touch()
    manifest = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "sink"},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": HANDLER}},
            "environment": {"RECORD_FILE": str(record)},
            "concurrency": {"perInstance": workers},
            "scaling": {"minInstances": 1, "maxInstances": 1},
        },
    }
    (folder / "functions.yaml").write_text(yaml.safe_dump(manifest))
    return record


async def send_all(url: str, events: int, concurrency: int) -> float:
    """Send ``events`` Event invocations, ``concurrency`` at a time; returns the seconds taken."""
    endpoint = f"{url}/2015-03-31/functions/sink/invocations"
    headers = {"X-Amz-Invocation-Type": "Event"}
    remaining = iter(range(events))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in remaining:
            body = json.dumps({"sent": time.time()})
            async with session.post(endpoint, data=body, headers=headers) as reply:
                if reply.status != 202:
                    raise RuntimeError(f"not accepted: {reply.status} {await reply.text()}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - started


async def send_paced(url: str, events: int, rate: float) -> None:
    """Send one Event invocation every 1/rate seconds (below capacity: no backlog builds)."""
    endpoint = f"{url}/2015-03-31/functions/sink/invocations"
    headers = {"X-Amz-Invocation-Type": "Event"}
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            body = json.dumps({"sent": time.time()})
            async with session.post(endpoint, data=body, headers=headers) as reply:
                if reply.status != 202:
                    raise RuntimeError(f"not accepted: {reply.status} {await reply.text()}")

        started = time.perf_counter()
        sends = []
        for index in range(events):
            # Pacing is the point here: wait for this event's slot in the schedule.
            await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
            sends.append(asyncio.create_task(one()))
        await asyncio.gather(*sends)


def wait_lines(record: Path, count: int, what: str) -> list[str]:
    deadline = time.monotonic() + 300
    while len(lines := record.read_text().splitlines()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: only {len(lines)}/{count} events ran")
        time.sleep(0.05)
    return lines


def latencies_ms(lines: list[str]) -> list[float]:
    return [(entry["started"] - entry["sent"]) * 1000 for entry in map(json.loads, lines)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(
    queue: str, events: int, concurrency: int, workers: int, rate: float
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kfaas-bench-async-") as raw:
        folder = Path(raw)
        record = write_project(folder, workers)
        env = {"KFAAS_LOG_LEVEL": "warning"}
        with dev_server([folder], env=env, args=["--async-queue", queue]) as dev:
            # Warm up: the instance is provisioned; these make sure it runs.
            asyncio.run(send_all(dev.url, 20, 4))
            wait_lines(record, 20, queue)
            record.write_text("")
            # 1. Burst: how many 202/s the gateway answers (events then drain behind it).
            seconds = asyncio.run(send_all(dev.url, events, concurrency))
            burst = latencies_ms(wait_lines(record, events, queue))
            record.write_text("")
            # 2. Steady load below capacity: the latency an event sees without a backlog.
            paced = max(50, events // 10)
            asyncio.run(send_paced(dev.url, paced, rate))
            steady = latencies_ms(wait_lines(record, paced, queue))
    return {
        "accepted_per_second": events / seconds,
        "burst_p50_ms": statistics.median(burst),
        "burst_p99_ms": percentile(burst, 0.99),
        "p50_ms": statistics.median(steady),
        "p99_ms": percentile(steady, 0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32, help="client requests in flight")
    parser.add_argument("--workers", type=int, default=16, help="function workers (perInstance)")
    parser.add_argument("--rate", type=float, default=200.0, help="events/s of the steady phase")
    args = parser.parse_args()
    queues = {"memory": "memory"}
    if redis_url := os.environ.get("REDIS_URL"):
        queues["redis"] = f"{redis_url}?prefix=kfaas-bench:{uuid.uuid4().hex[:8]}"
    if kafka := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        queues["kafka"] = f"kafka://{kafka}/kfaas-bench-{uuid.uuid4().hex[:8]}?partitions=4"
    print(
        f"# async accept: {args.events} events, client concurrency {args.concurrency}, "
        f"{args.workers} function workers, steady phase at {args.rate:g}/s; "
        f"{platform.node()} {platform.machine()} "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"{'queue':<8} {'202/s':>8} {'steady p50 ms':>14} {'steady p99 ms':>14} "
        f"{'burst p50 ms':>13} {'burst p99 ms':>13}"
    )
    for name, queue in queues.items():
        r = measure(queue, args.events, args.concurrency, args.workers, args.rate)
        print(
            f"{name:<8} {r['accepted_per_second']:>8.0f} {r['p50_ms']:>14.1f} {r['p99_ms']:>14.1f} "
            f"{r['burst_p50_ms']:>13.1f} {r['burst_p99_ms']:>13.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
