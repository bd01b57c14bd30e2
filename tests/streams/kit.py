"""Helpers for stream tests and benchmarks against the real Kafka and Redis.

A test describes its functions and mappings with `project`, starts the real `kfaas dev` on them
(which runs the pollers) or a separate `kfaas poller`, and reads what the handler recorded
(tests/streams/functions/app.py appends one JSON line per invocation to the file in OUT).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis.exceptions
import yaml
from waiting import eventually_async

FUNCTIONS = Path(__file__).parent / "functions"
KFAAS = str(Path(sys.executable).with_name("kfaas"))
# Retries in tens of milliseconds, reclaiming after a second (DESIGN, "Configuration").
FAST = {
    "KFAAS_STREAM_RETRY_BASE_SECONDS": "0.02",
    "KFAAS_POLLER_CLAIM_IDLE_SECONDS": "1",
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Output:
    """What a handler recorded: one entry per invocation."""

    path: Path

    def invocations(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def values(self) -> list[str]:
        return [value for call in self.invocations() for value in call["values"]]

    async def wait_values(self, count: int, within: float = 30.0) -> list[str]:
        await eventually_async(
            lambda: len(self.values()) >= count,
            within=within,
            what=f"{count} records delivered to {self.path.name} (got {len(self.values())})",
        )
        return self.values()


@dataclass
class Project:
    """Function and EventSourceMapping manifests written to a folder for `kfaas dev`."""

    root: Path
    documents: list[dict[str, Any]] = field(default_factory=list)

    def function(
        self, name: str, *, mode: str = "ok", env: dict[str, str] | None = None, **spec: Any
    ) -> Output:
        out = self.root / f"{name}.jsonl"
        self.documents.append(
            {
                "apiVersion": "kfaas.dev/v1alpha1",
                "kind": "Function",
                "metadata": {"name": name},
                "spec": {
                    "runtime": "python3.11",
                    "handler": spec.pop("handler", "app.handler"),
                    "code": {"path": str(FUNCTIONS)},
                    "timeoutSeconds": 30,
                    "environment": {"OUT": str(out), "MODE": mode, **(env or {})},
                    **spec,
                },
            }
        )
        return Output(out)

    def mapping(self, name: str, function: str, **spec: Any) -> dict[str, Any]:
        document = {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "EventSourceMapping",
            "metadata": {"name": name},
            "spec": {"functionName": function, "maximumBatchingWindowSeconds": 0.05, **spec},
        }
        self.documents.append(document)
        return document

    def write(self) -> Path:
        folder = self.root / "manifests"
        folder.mkdir(exist_ok=True)
        (folder / "all.yaml").write_text(yaml.safe_dump_all(self.documents, sort_keys=False))
        return folder


class PollerProcess:
    """A `kfaas poller` subprocess for one mapping, which tests may kill -9 and start again."""

    def __init__(
        self,
        mapping: dict[str, Any],
        gateway_url: str,
        log: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.mapping = mapping
        self.gateway_url = gateway_url
        self.log = log
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **extra_env: str) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [KFAAS, "poller"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    **FAST,
                    "KFAAS_MAPPING": json.dumps(self.mapping),
                    "KFAAS_GATEWAY_URL": self.gateway_url,
                    "KFAAS_POLLER_METRICS_PORT": "0",
                    **self.env,
                    **extra_env,
                },
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            # Shown with the failing test: what the poller was doing when it would not stop.
            print(f"poller {self.log.name} ignored SIGTERM for 20 s; its output:\n{self.output()}")
            return self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class KafkaTools:
    """Producing, reading back and inspecting commits on the real broker."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.bootstrap = broker.bootstrap_servers

    def topic(self, partitions: int = 1) -> str:
        name = unique("t")
        self.broker.create_topic(name, partitions)
        return name

    async def produce(
        self,
        topic: str,
        values: list[bytes],
        *,
        partition: int | Callable[[int], int] | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            sent = []
            for index, value in enumerate(values):
                target = partition(index) if callable(partition) else partition
                sent.append(
                    await producer.send(
                        topic,
                        value,
                        key=key,
                        partition=target,
                        headers=headers,
                        timestamp_ms=timestamp_ms,
                    )
                )
            for future in sent:
                await future
        finally:
            await producer.stop()

    async def read(self, topic: str, count: int, within: float = 30) -> list[Any]:
        """The first `count` records of a topic (all partitions), without a group."""
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        found: list[Any] = []
        try:
            async with asyncio.timeout(within):
                while len(found) < count:
                    batches = await consumer.getmany(timeout_ms=200)
                    for records in batches.values():
                        found.extend(records)
        finally:
            await consumer.stop()
        return found

    async def committed(self, group: str, topic: str, partitions: int = 1) -> list[int | None]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group)
        await consumer.start()
        try:
            return [await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
        finally:
            await consumer.stop()

    async def wait_committed(
        self, group: str, topic: str, expected: list[int], within: float = 30
    ) -> None:

        async def committed() -> bool:
            found = await self.committed(group, topic, len(expected))
            assert found == expected, f"{group} committed {found}, expected {expected}"
            return True

        await eventually_async(
            committed, within=within, what=f"{group}'s commits", ignoring=(AssertionError,)
        )


class RedisTools:
    def __init__(self, server: Any) -> None:
        import redis.asyncio as aioredis

        self.server = server
        self.url = server.url
        self.client = aioredis.Redis.from_url(server.url, decode_responses=True)

    async def add(self, stream: str, entries: list[dict[str, str]]) -> list[str]:
        async with self.client.pipeline(transaction=False) as pipe:
            for fields in entries:
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
            return [str(entry_id) for entry_id in await pipe.execute()]

    async def entries(self, stream: str) -> list[tuple[str, dict[str, str]]]:
        entries = cast("list[tuple[str, dict[str, str]]]", await self.client.xrange(stream))
        return [(str(i), dict(f)) for i, f in entries]

    async def pending(self, stream: str, group: str) -> int:
        """Entries read and not acknowledged; -1 while the stream or group does not exist."""
        try:
            return int((await self.client.xpending(stream, group))["pending"])
        except redis.exceptions.ResponseError:
            return -1

    async def lag(self, stream: str, group: str) -> int:
        """Entries not yet handed to the group; -1 while the stream or group does not exist."""
        try:
            groups = await self.client.xinfo_groups(stream)
        except redis.exceptions.ResponseError:
            return -1
        for info in groups:
            if info["name"] in (group, group.encode()):
                return int(info["lag"] if info.get("lag") is not None else -1)
        return -1

    async def wait_pending(
        self, stream: str, group: str, expected: int, within: float = 30
    ) -> None:
        """Wait for ``expected`` entries pending; 0 also means every entry was handed out.

        A group a poller has just created has nothing pending before its first read, so 0
        pending alone does not mean the stream was worked off.
        """

        async def pending() -> bool:
            found = await self.pending(stream, group)
            assert found == expected, f"{found} pending"
            if expected == 0:
                assert (lag := await self.lag(stream, group)) == 0, f"lag {lag}"
            return True

        await eventually_async(
            pending,
            within=within,
            what=f"{stream}/{group}: {expected} pending",
            ignoring=(AssertionError,),
        )
