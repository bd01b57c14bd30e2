"""Abuse benchmark: slowloris, header, body and connection floods against `kfaas dev`, side by side.

Each attack runs for a bounded time against a fresh `kfaas dev tests/security/fuzz_functions` on
127.0.0.1 while a probe makes one valid Invoke call (new connection, `echo`) every 50 ms. Printed
per attack, next to the same probe with no attack: probe p50/p99 latency and failures, the dev
process's RSS before / peak / after (after: once the attack's connections are closed and 2 s have
passed), how many attack connections the server still held when the attack ended, and the longest
time it held one before closing it (`>=` the attack time when it never did). Attacks:

- slowloris: N connections each dribbling a header line one byte per second, never ending it;
- idle-flood: N connections opened at once, sending nothing;
- header-flood: requests with 10,000 headers and requests with one 1 MB header, in a loop;
- chunked-dribble: N requests whose chunked body gets one 1-byte chunk per second, forever;
- body-flood: 48 connections (`--body-connections`) looping 6 MB sync calls to a function that
  runs 2 at a time (1 s each);
- event-flood: 800 Event calls of 1 MB to that function (the in-memory queue takes them all).

Run: `.venv/bin/python bench/abuse.py` (about 2 minutes; `--seconds`, `--connections`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from devserver import dev_server
from security.fuzz_client import Connection

FUNCTIONS = Path(__file__).parent.parent / "tests" / "security" / "fuzz_functions"
INVOKE = "/2015-03-31/functions"
HOST = "127.0.0.1"


def request(path: str, body: bytes = b"", headers: bytes = b"") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n".encode()
    return head + headers + b"\r\n" + body


@dataclass
class Held:
    """Attack connections: when each opened and when the server closed it (None: never)."""

    opened: list[float] = field(default_factory=list)
    closed: list[float | None] = field(default_factory=list)
    refused: int = 0
    answers: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.answers[outcome] = self.answers.get(outcome, 0) + 1


@dataclass
class Result:
    name: str
    probe_ms: list[float]
    probe_failed: dict[str, int]
    rss: dict[str, float]
    held: Held
    seconds: float

    def row(self) -> str:
        ms = sorted(self.probe_ms) or [float("nan")]
        p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
        still = sum(1 for closed in self.held.closed if closed is None)
        holds = [
            (closed if closed is not None else time.monotonic()) - opened
            for opened, closed in zip(self.held.opened, self.held.closed, strict=True)
        ]
        longest = max(holds, default=0.0)
        longest_text = f">={self.seconds:.0f}" if still else f"{longest:.1f}"
        return (
            f"{self.name:<16} {statistics.median(ms):>8.1f} {p99:>8.1f} "
            f"{len(self.probe_ms):>5}/{sum(self.probe_failed.values()):<4} "
            f"{self.rss['before']:>6.0f} {self.rss['peak']:>6.0f} {self.rss['after']:>6.0f} "
            f"{len(self.held.opened):>6} {still:>6} {longest_text:>8}  {self.held.answers}"
            + (f" probe failures: {self.probe_failed}" if self.probe_failed else "")
        )


async def probe(port: int, stop: asyncio.Event, latencies: list[float]) -> dict[str, int]:
    """A valid call on a new connection every 50 ms until ``stop``; returns the failures by
    status (or outcome)."""
    failed: dict[str, int] = {}
    index = 0
    while not stop.is_set():
        index += 1
        body = json.dumps({"probe": index}).encode()
        connection = Connection(HOST, port)
        started = time.perf_counter()
        answer = await connection.exchange(
            request(f"{INVOKE}/echo/invocations", body), answer_within=10
        )
        await connection.close()
        if answer.status == 200 and json.loads(answer.body or b"null") == {"probe": index}:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            outcome = str(answer.status or answer.outcome)
            failed[outcome] = failed.get(outcome, 0) + 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)  # pacing
    return failed


async def hold(
    port: int, held: Held, first: bytes, drip: bytes, every: float, stop: asyncio.Event
) -> None:
    """Open a connection, send ``first``, then one ``drip`` every ``every`` s until the server
    answers or closes, or ``stop``."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        held.refused += 1
        return
    slot = len(held.opened)
    held.opened.append(time.monotonic())
    held.closed.append(None)

    async def watch() -> None:
        data = await reader.read(65536)
        held.closed[slot] = time.monotonic()
        held.count(data[:12].decode("latin-1") if data else "closed")

    watcher = asyncio.create_task(watch())
    try:
        writer.write(first)
        while not stop.is_set() and not watcher.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if drip and not watcher.done():
                writer.write(drip)
                with contextlib.suppress(OSError):
                    await writer.drain()
    except OSError:
        pass
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await watcher
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def loop_requests(port: int, held: Held, data: bytes, stop: asyncio.Event) -> None:
    while not stop.is_set():
        connection = Connection(HOST, port)
        answer = await connection.exchange(data, answer_within=30)
        await connection.close()
        held.count(str(answer.status) if answer.status else answer.outcome)


Attack = Callable[[int, Held, asyncio.Event, int], Coroutine[None, None, None]]


async def slowloris(port: int, held: Held, stop: asyncio.Event, connections: int) -> None:
    first = f"POST {INVOKE}/echo/invocations HTTP/1.1\r\nHost: {HOST}\r\nX-a: ".encode()
    await asyncio.gather(*(hold(port, held, first, b"a", 1.0, stop) for _ in range(connections)))


async def idle_flood(port: int, held: Held, stop: asyncio.Event, connections: int) -> None:
    await asyncio.gather(*(hold(port, held, b"", b"", 1.0, stop) for _ in range(connections)))


async def chunked_dribble(port: int, held: Held, stop: asyncio.Event, connections: int) -> None:
    first = (
        f"POST {INVOKE}/echo/invocations HTTP/1.1\r\nHost: {HOST}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n1\r\n[\r\n"
    ).encode()
    await asyncio.gather(
        *(hold(port, held, first, b"1\r\n \r\n", 1.0, stop) for _ in range(connections))
    )


async def header_flood(port: int, held: Held, stop: asyncio.Event, connections: int) -> None:
    many = b"".join(b"X-Flood-%d: %d\r\n" % (i, i) for i in range(10_000))
    huge = b"X-Huge: " + b"h" * (1024 * 1024) + b"\r\n"
    path = f"{INVOKE}/echo/invocations"
    loops = [loop_requests(port, held, request(path, b"{}", many), stop) for _ in range(8)]
    loops += [loop_requests(port, held, request(path, b"{}", huge), stop) for _ in range(8)]
    await asyncio.gather(*loops)


BODY_LOOPS = 48  # --body-connections


async def body_flood(port: int, held: Held, stop: asyncio.Event, connections: int) -> None:
    body = b'"' + b"b" * (6 * 1024 * 1024 - 100) + b'"'
    data = request(f"{INVOKE}/slow/invocations", body)
    await asyncio.gather(*(loop_requests(port, held, data, stop) for _ in range(BODY_LOOPS)))


async def event_flood(port: int, held: Held, stop: asyncio.Event, connections: int) -> None:
    body = b'"' + b"e" * (1024 * 1024 - 100) + b'"'
    data = request(f"{INVOKE}/slow/invocations", body, b"X-Amz-Invocation-Type: Event\r\n")
    remaining = iter(range(800))

    async def sender() -> None:
        for _ in remaining:
            if stop.is_set():
                return
            connection = Connection(HOST, port)
            answer = await connection.exchange(data, answer_within=30)
            await connection.close()
            held.count(str(answer.status) if answer.status else answer.outcome)

    await asyncio.gather(*(sender() for _ in range(16)))


ATTACKS: dict[str, Attack | None] = {
    "no attack": None,
    "slowloris": slowloris,
    "idle-flood": idle_flood,
    "chunked-dribble": chunked_dribble,
    "header-flood": header_flood,
    "body-flood": body_flood,
    "event-flood": event_flood,
}


async def run_attack(
    name: str, attack: Attack | None, port: int, pid: int, seconds: float, connections: int
) -> Result:
    process = psutil.Process(pid)
    mb = 1024 * 1024
    rss = {"before": process.memory_info().rss / mb}
    rss["peak"] = rss["before"]
    stop, probe_stop, sample_stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    latencies: list[float] = []
    held = Held()

    async def sample() -> None:
        while not sample_stop.is_set():
            rss["peak"] = max(rss["peak"], process.memory_info().rss / mb)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sample_stop.wait(), 0.1)

    sampler = asyncio.create_task(sample())
    prober = asyncio.create_task(probe(port, probe_stop, latencies))
    attacking = asyncio.create_task(attack(port, held, stop, connections)) if attack else None
    await asyncio.sleep(seconds)  # the attack's duration
    probe_stop.set()
    failed = await prober
    stop.set()
    if attacking is not None:
        # Loops stop between requests; a request waiting on the throttled function is cut off.
        done, _ = await asyncio.wait([attacking], timeout=2.0)
        if not done:
            attacking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await attacking
    await asyncio.sleep(2.0)  # let the server notice the closes before "after" is read
    sample_stop.set()
    await sampler
    rss["after"] = process.memory_info().rss / mb
    return Result(name, latencies, failed, rss, held, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="duration of each attack")
    parser.add_argument("--connections", type=int, default=1000, help="slowloris/idle connections")
    parser.add_argument("--only", nargs="*", default=list(ATTACKS), help="attacks to run")
    parser.add_argument(
        "--body-connections", type=int, default=48, help="connections looping 6 MB bodies"
    )
    args = parser.parse_args()
    global BODY_LOOPS
    BODY_LOOPS = args.body_connections
    print(
        f"# kfaas abuse benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; {args.seconds:g} s per "
        f"attack, {args.connections} connections for slowloris/idle/dribble"
    )
    print(
        f"{'attack':<16} {'p50 ms':>8} {'p99 ms':>8} {'ok/fail':>10} {'RSS MB':>6} {'peak':>6} "
        f"{'after':>6} {'conns':>6} {'held':>6} {'longest s':>8}  answers"
    )
    for name in args.only:
        env = {"KFAAS_LOG_LEVEL": "critical"}
        with dev_server([FUNCTIONS], env=env) as dev:
            port = int(dev.url.rsplit(":", 1)[1])
            result = asyncio.run(
                run_attack(
                    name, ATTACKS[name], port, dev.process.pid, args.seconds, args.connections
                )
            )
            alive = "" if dev.process.poll() is None else "  (kfaas dev died)"
        print(result.row() + alive, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
