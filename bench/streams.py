"""Stream poller throughput against a raw consumer loop on the same data, in one run.

For Kafka and for Redis Streams, the same number of records is read twice:
  - raw:   a bare client loop — aiokafka `getmany` + commit per partition batch, or
           XREADGROUP COUNT 100 + XACK — doing nothing with the records;
  - kfaas: `kfaas poller` (batch size 100) invoking a no-op function through `kfaas dev`'s gateway
           (Invoke API → runtime → worker), committing after each batch.
Throughput is measured the same way for both, from the outside: records committed (Kafka offsets,
Redis entries acknowledged) between the first and the last commit. The issue's target: kfaas at
least 50% of raw.

Needs the real services: `eval "$(scripts/services up redis kafka)"`, then
`.venv/bin/python bench/streams.py [--records 50000] [--partitions 4]`. BENCH_CPU=1 prints the
poller's CPU time; BENCH_PROFILE=FILE runs it under cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from devserver import KFAAS, dev_server

BATCH = 100
NOOP = "def handler(event, context):\n    return None\n"
Progress = Callable[[], Awaitable[int]]


async def timed(progress: Progress, total: int, within: float = 600) -> tuple[float, int]:
    """Poll committed progress; (seconds between first and last commit, records in between)."""
    first_at: float | None = None
    first_count = 0
    deadline = time.monotonic() + within
    while True:
        done = await progress()
        now = time.monotonic()
        if done and first_at is None:
            first_at, first_count = now, done
        if done >= total:
            assert first_at is not None
            return max(now - first_at, 1e-6), total - first_count
        if now > deadline:
            raise TimeoutError(f"only {done} of {total} records committed")
        await asyncio.sleep(0.02)


# -- Kafka -----------------------------------------------------------------------------------


async def kafka_topic(bootstrap: str, partitions: int, records: int, size: int) -> str:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        value = b"x" * size
        pending = [
            await producer.send(topic, value, partition=n % partitions) for n in range(records)
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return topic


def kafka_progress(bootstrap: str, topic: str, group: str, partitions: int) -> Progress:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    started = False

    async def committed() -> int:
        nonlocal started
        if not started:
            await consumer.start()
            started = True
        offsets = [await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
        return sum(offset or 0 for offset in offsets)

    committed.consumer = consumer  # type: ignore[attr-defined]
    return committed


async def raw_kafka(bootstrap: str, topic: str, partitions: int, records: int) -> float:
    group = f"raw-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=6 << 20,
    )
    await consumer.start()
    seen = 0
    first_at: float | None = None
    first_count = 0
    try:
        while seen < records:
            batches = await consumer.getmany(timeout_ms=100, max_records=BATCH)
            for tp, batch in batches.items():
                await consumer.commit({tp: batch[-1].offset + 1})
                seen += len(batch)
                if first_at is None:
                    first_at, first_count = time.monotonic(), seen
    finally:
        await consumer.stop()
    assert first_at is not None
    return (records - first_count) / (time.monotonic() - first_at)


async def kfaas_kafka(
    url: str, bootstrap: str, topic: str, partitions: int, records: int, log: Path
) -> float:
    group = f"kfaas-{uuid.uuid4().hex[:8]}"
    mapping = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "bench-kafka"},
        "spec": {
            "functionName": "noop",
            "kafka": {
                "bootstrapServers": bootstrap,
                "topic": topic,
                "consumerGroupId": group,
                "startingPosition": "TRIM_HORIZON",
            },
            "batchSize": BATCH,
            "maximumBatchingWindowSeconds": 0,
        },
    }
    progress = kafka_progress(bootstrap, topic, group, partitions)
    with poller(mapping, url, log):
        seconds, counted = await timed(progress, records)
    await progress.consumer.stop()  # type: ignore[attr-defined]
    return counted / seconds


# -- Redis -----------------------------------------------------------------------------------


async def redis_stream(client: aioredis.Redis, records: int, size: int) -> str:
    stream = f"bench-{uuid.uuid4().hex[:8]}"
    body = "x" * size
    for start in range(0, records, 1000):
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(start, min(start + 1000, records)):
                pipe.xadd(stream, {"body": body})
            await pipe.execute()
    return stream


def redis_progress(client: aioredis.Redis, stream: str, group: str) -> Progress:
    async def acknowledged() -> int:
        try:
            groups = await client.xinfo_groups(stream)
        except aioredis.ResponseError:
            return 0
        for info in groups:
            if info["name"] in (group, group.encode()):
                return int(info["entries-read"] or 0) - int(info["pending"])
        return 0

    return acknowledged


async def raw_redis(client: aioredis.Redis, stream: str, records: int) -> float:
    group = f"raw-{uuid.uuid4().hex[:8]}"
    await client.xgroup_create(stream, group, id="0")
    seen = 0
    first_at: float | None = None
    first_count = 0
    while seen < records:
        reply = await client.xreadgroup(group, "raw", {stream: ">"}, count=BATCH, block=100)
        for _, entries in reply or []:
            await client.xack(stream, group, *[entry_id for entry_id, _ in entries])
            seen += len(entries)
            if first_at is None:
                first_at, first_count = time.monotonic(), seen
    assert first_at is not None
    return (records - first_count) / (time.monotonic() - first_at)


async def kfaas_redis(
    url: str, redis_url: str, client: aioredis.Redis, stream: str, records: int, log: Path
) -> float:
    group = f"kfaas-{uuid.uuid4().hex[:8]}"
    mapping = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "bench-redis"},
        "spec": {
            "functionName": "noop",
            "redis": {
                "url": redis_url,
                "stream": stream,
                "consumerGroup": group,
                "startingPosition": "TRIM_HORIZON",
            },
            "batchSize": BATCH,
            "maximumBatchingWindowSeconds": 0,
        },
    }
    with poller(mapping, url, log):
        seconds, counted = await timed(redis_progress(client, stream, group), records)
    return counted / seconds


# -- plumbing --------------------------------------------------------------------------------


class poller:
    """A `kfaas poller` process for one mapping, stopped on exit."""

    def __init__(self, mapping: dict[str, object], gateway: str, log: Path) -> None:
        self.args = (mapping, gateway, log)

    def __enter__(self) -> subprocess.Popen[bytes]:
        mapping, gateway, log = self.args
        with log.open("ab") as sink:
            profile = os.environ.get("BENCH_PROFILE")
            command = [KFAAS, "poller"]
            if profile:
                command = [sys.executable, "-m", "cProfile", "-o", profile, *command]
            self.process = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "KFAAS_MAPPING": json.dumps(mapping),
                    "KFAAS_GATEWAY_URL": gateway,
                    "KFAAS_POLLER_METRICS_PORT": "0",
                    "KFAAS_LOG_LEVEL": "warning",
                },
            )
        return self.process

    def __exit__(self, *exc: object) -> None:
        if os.environ.get("BENCH_CPU"):
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().split()
            ticks = os.sysconf("SC_CLK_TCK")
            cpu = (int(fields[13]) + int(fields[14])) / ticks
            print(f"poller cpu: {cpu:.2f}s", file=sys.stderr)
        self.process.terminate()
        self.process.wait(30)


def function_manifest(folder: Path, workers: int) -> None:
    doc = {
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
    (folder / "noop.yaml").write_text(yaml.safe_dump(doc))


def row(name: str, raw: float, kfaas: float) -> str:
    return f"| {name:<14} | {raw:>12,.0f} | {kfaas:>12,.0f} | {kfaas / raw:>6.0%} |"


async def main(args: argparse.Namespace) -> int:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    redis_url = os.environ.get("REDIS_URL")
    if not bootstrap or not redis_url:
        print('run `eval "$(scripts/services up redis kafka)"` first', file=sys.stderr)
        return 2
    results: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        function_manifest(folder, args.partitions)
        log = folder / "poller.log"
        with dev_server([folder], env={"KFAAS_LOG_LEVEL": "warning"}) as dev:
            if "kafka" in args.sources:
                topic = await kafka_topic(bootstrap, args.partitions, args.records, args.size)
                raw = await raw_kafka(bootstrap, topic, args.partitions, args.records)
                ours = await kfaas_kafka(
                    dev.url, bootstrap, topic, args.partitions, args.records, log
                )
                results.append(row(f"Kafka ({args.partitions} part.)", raw, ours))
            if "redis" in args.sources:
                client = aioredis.Redis.from_url(redis_url)
                stream = await redis_stream(client, args.records, args.size)
                raw = await raw_redis(client, stream, args.records)
                ours = await kfaas_redis(dev.url, redis_url, client, stream, args.records, log)
                results.append(row("Redis Streams", raw, ours))
                await client.aclose()
    print(
        f"\n{args.records:,} records of {args.size} bytes, batch size {BATCH}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}\n"
    )
    print("| source         |  raw (rec/s) | kfaas (rec/s) | ratio |")
    print("| -------------- | -----------: | -----------: | ----: |")
    for line in results:
        print(line)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=100, help="bytes per record value")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--sources", nargs="+", default=["kafka", "redis"])
    raise SystemExit(asyncio.run(main(parser.parse_args())))
