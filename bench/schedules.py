"""What one scheduler poll costs over many Schedules, against the bare listing it starts with.

Every replica lists every Schedule each poll (ADR 026; no watch), then decides for each whether a
tick is due. Here N Schedules (`rate(1 hour)`, none due) sit in kfaas dev's folder store on tmpfs;
one poll of the engine (`ScheduleEngine.run_once`) and one bare `list("schedules")` of the same
store are timed in turn, round by round, so the machine's other load falls on both alike. The
ratio poll/list is the engine's own cost on top of reading the objects; the per-Schedule figure
says how far one replica stretches within the default 2 s poll period.

Run: .venv/bin/python bench/schedules.py [N ...]   (default 500 2000)
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kfaas.dir_store import DirectoryObjectStore
from kfaas.manifests import StreamDestination
from kfaas.object_store import SCHEDULES
from kfaas.scheduler.engine import ScheduleEngine
from kfaas.scheduler.metrics import ScheduleMetrics
from kfaas.scheduler.settings import SchedulerSettings

ROUNDS = 15


class NoDelivery:
    """Nothing is due in this benchmark: a delivery would be a bug in it."""

    async def invoke_async(
        self, namespace: str, function: str, qualifier: str | None, payload: bytes
    ) -> None:
        raise AssertionError(f"{namespace}/{function} delivered: nothing should be due")


class NoDeadLetters:
    async def send(
        self, destination: StreamDestination, record: dict[str, Any], *, namespace: str
    ) -> None:
        raise AssertionError("no dead letter expected")


def schedule(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {"scheduleExpression": "rate(1 hour)", "target": {"functionName": "tick"}},
    }


async def measure(count: int, folder: Path) -> tuple[float, float]:
    """Median seconds of one bare listing and of one engine poll over ``count`` Schedules."""
    with DirectoryObjectStore.open(folder / "state") as objects:
        for n in range(count):
            await objects.create(SCHEDULES, schedule(f"s{n:05d}"), field_manager="bench")
        engine = ScheduleEngine(
            objects,
            NoDelivery(),
            NoDeadLetters(),
            replica="bench",
            region="eu-west-1",
            settings=SchedulerSettings(),
            metrics=ScheduleMetrics(),
        )
        # The first poll writes each Schedule's nextFireTime; wait for those writes to end.
        await engine.run_once()
        await asyncio.gather(*engine._workers.values())
        listings, polls = [], []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            await objects.list(SCHEDULES, None)
            listings.append(time.perf_counter() - started)
            started = time.perf_counter()
            await engine.run_once()
            polls.append(time.perf_counter() - started)
        assert not engine._workers, "a poll with nothing due started a worker"
        return statistics.median(listings), statistics.median(polls)


def main(argv: list[str]) -> int:
    counts = [int(arg) for arg in argv] or [500, 2000]
    print(f"# bench/schedules.py  {time.strftime('%Y-%m-%d')}  {platform.machine()}")
    print(f"# {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, {ROUNDS} rounds, medians")
    print(f"{'schedules':>10} {'list ms':>9} {'poll ms':>9} {'poll/list':>10} {'µs/schedule':>12}")
    shm = Path("/dev/shm")
    for count in counts:
        with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as folder:
            listing, poll = asyncio.run(measure(count, Path(folder)))
        print(
            f"{count:>10} {listing * 1000:>9.1f} {poll * 1000:>9.1f} {poll / listing:>9.2f}x "
            f"{poll / count * 1e6:>12.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
