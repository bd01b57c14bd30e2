"""Async invocations end to end: the real `kfaas dev --async-queue redis://…|kafka://…`.

202 means stored (a gateway killed right after answering loses nothing), retries and destinations
(Lambda's invocation record on a Kafka topic and a Redis stream), event age expiry, and faults with
numbers: a dispatcher killed with SIGKILL mid-invocation, Redis and the Kafka broker restarted while
events flow. Figures are printed (`pytest -s`) as `ASYNC-FAULTS {...}` lines and appended to
$KFAAS_FAULT_REPORT when set.

The function under test appends a JSON line to the file named by `RECORD_FILE` (`start` before it
works, `end` after), so a test counts exactly how often each event ran, even across a `kill -9`.
An event `{"id": …, "sleep": s, "fail": true}` makes it sleep, then fail.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import yaml
from aiokafka import AIOKafkaConsumer
from devserver import DevServer, dev_server
from services.kafka_broker import KafkaBroker, run_coroutine
from services.redis_server import RedisServer
from waiting import eventually

from kfaas.gateway.asyncq import AsyncEvent
from kfaas.gateway.queues import make_queue

HANDLER = """\
import json, os, time

def handler(event, context):
    def note(phase):
        line = json.dumps({"phase": phase, "id": event.get("id"), "pid": os.getpid()})
        with open(os.environ["RECORD_FILE"], "a") as record:
            record.write(line + "\\n")
    note("start")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise RuntimeError(f"event {event.get('id')} asked to fail")
    note("end")
    return {"done": event.get("id")}
"""


def write_project(
    folder: Path, *, async_config: dict[str, Any] | None = None, per_instance: int = 8
) -> Path:
    """The manifest of function ``work``; returns the record file's path."""
    record = folder / "record.jsonl"
    record.touch()
    manifest = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "work"},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": HANDLER}},
            "timeoutSeconds": 30,
            "environment": {"RECORD_FILE": str(record)},
            "concurrency": {"perInstance": per_instance},
            "scaling": {"maxInstances": 2},
            "async": async_config or {},
        },
    }
    (folder / "functions.yaml").write_text(yaml.safe_dump(manifest))
    return record


def send_event(url: str, payload: dict[str, Any], name: str = "work") -> int:
    """POST an Event invocation; the status (202 when accepted, else the error's)."""
    request = urllib.request.Request(
        f"{url}/2015-03-31/functions/{name}/invocations",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"X-Amz-Invocation-Type": "Event"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def phases(record: Path, phase: str) -> Counter[str]:
    """How many times each event id reached ``phase`` (``start`` or ``end``)."""
    counts: Counter[str] = Counter()
    for line in record.read_text().splitlines():
        entry = json.loads(line)
        if entry["phase"] == phase:
            counts[str(entry["id"])] += 1
    return counts


# -- fixtures and helpers of the end-to-end tests ----------------------------------------------

# Retries in tenths of a second; a silent dispatcher's events move on after 2 s (Kafka: 6 s,
# the broker's minimum session timeout).
FAST = {"KFAAS_ASYNC_RETRY_BASE_SECONDS": "0.1", "KFAAS_ASYNC_REDELIVERY_SECONDS": "2"}


@pytest.fixture
def platform(redis_service: RedisServer, kafka_service: KafkaBroker) -> dict[str, str]:
    """Environment of `kfaas dev`: fast retries and the platform's own Redis and Kafka."""
    return {
        **FAST,
        "KFAAS_REDIS_URL": redis_service.url,
        "KFAAS_KAFKA_BOOTSTRAP_SERVERS": kafka_service.bootstrap_servers,
    }


def report(name: str, **figures: Any) -> None:
    line = json.dumps({"test": name, **figures})
    print(f"\nASYNC-FAULTS {line}")
    if path := os.environ.get("KFAAS_FAULT_REPORT"):
        with open(path, "a") as sink:
            sink.write(line + "\n")


def redis_records(url: str, stream: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(url)
    try:
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(stream))
    finally:
        client.close()
    return [json.loads(fields[b"body"]) for _, fields in entries]


def kafka_records(bootstrap_servers: str, topic: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=2000)
        finally:
            await consumer.stop()
        return [json.loads(r.value) for records in batches.values() for r in records]

    return run_coroutine(read())


def record_for(records: list[dict[str, Any]], request_id: str) -> dict[str, Any] | None:
    return next((r for r in records if r["requestContext"]["requestId"] == request_id), None)


def send_event_with_id(url: str, payload: dict[str, Any]) -> str:
    request = urllib.request.Request(
        f"{url}/2015-03-31/functions/work/invocations",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"X-Amz-Invocation-Type": "Event"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 202
        return str(reply.headers["x-amzn-RequestId"])


def kill_dispatcher(server: DevServer) -> None:
    """SIGKILL `kfaas dev` (gateway and dispatcher): no drain, no acknowledgement, no goodbye."""
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)


# -- 202 means stored ----------------------------------------------------------------------------


def test_202_means_stored_even_if_the_gateway_dies_right_after(
    queue_url: str, platform: dict[str, str], tmp_path: Path
) -> None:
    record = write_project(tmp_path)
    ids = [f"e{n}" for n in range(20)]
    with dev_server([tmp_path], env=platform, args=["--async-queue", queue_url]) as first:
        for event_id in ids:
            assert send_event(first.url, {"id": event_id}) == 202
        kill_dispatcher(first)
    ran_before_kill = len(phases(record, "end"))
    with dev_server([tmp_path], env=platform, args=["--async-queue", queue_url]):
        eventually(
            lambda: set(phases(record, "end")) >= set(ids),
            within=60,
            what="every accepted event ran",
        )
    ends = phases(record, "end")
    report(
        "202-then-kill",
        queue=queue_url.split(":")[0],
        accepted=len(ids),
        ran_before_kill=ran_before_kill,
        lost=len(set(ids) - set(ends)),
        duplicates=sum(ends.values()) - len(ends),
    )


# -- retries, destinations, event age ---------------------------------------------------------


def test_retries_then_kafka_and_redis_destinations_get_the_invocation_record(
    queue_url: str,
    platform: dict[str, str],
    redis_service: RedisServer,
    kafka_service: KafkaBroker,
    tmp_path: Path,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    stream, topic = f"async-dest-{suffix}", f"async-dest-{suffix}"
    if queue_url.startswith("redis"):
        # A Kafka destination on the platform's cluster, a Redis one naming its server.
        on_success = {"kafka": {"topic": topic}}
        on_failure = {"redis": {"stream": stream, "url": redis_service.url}}
    else:
        # A Redis destination on the platform's server, a Kafka one naming its cluster.
        on_success = {"redis": {"stream": stream}}
        on_failure = {
            "kafka": {"topic": topic, "bootstrapServers": kafka_service.bootstrap_servers}
        }
    record = write_project(
        tmp_path,
        async_config={
            "maximumRetryAttempts": 2,
            "onSuccess": on_success,
            "onFailure": on_failure,
        },
    )

    def destination(kind: dict[str, Any]) -> list[dict[str, Any]]:
        if "kafka" in kind:
            return kafka_records(kafka_service.bootstrap_servers, topic)
        return redis_records(redis_service.url, stream)

    with dev_server([tmp_path], env=platform, args=["--async-queue", queue_url]) as dev:
        good = send_event_with_id(dev.url, {"id": "good"})
        bad = send_event_with_id(dev.url, {"id": "bad", "fail": True})
        eventually(
            lambda: phases(record, "start")["bad"] >= 3, within=30, what="two retries of bad"
        )
        eventually(
            lambda: record_for(destination(on_success), good) is not None,
            within=30,
            what="onSuccess",
        )
        eventually(
            lambda: record_for(destination(on_failure), bad) is not None,
            within=30,
            what="onFailure",
        )

    assert phases(record, "start")["bad"] == 3  # one attempt and maximumRetryAttempts (2)
    success = record_for(destination(on_success), good)
    failure = record_for(destination(on_failure), bad)
    assert success is not None and failure is not None
    assert success["version"] == "1.0"
    assert success["requestContext"]["condition"] == "Success"
    assert success["requestContext"]["approximateInvokeCount"] == 1
    assert success["requestContext"]["functionArn"].endswith(":function:work:$LATEST")
    assert success["requestPayload"] == {"id": "good"}
    assert success["responseContext"]["statusCode"] == 200
    assert success["responseContext"]["executedVersion"] == "$LATEST"
    assert success["responseContext"].get("functionError") is None
    assert success["responsePayload"] == {"done": "good"}
    assert failure["requestContext"]["condition"] == "RetriesExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["requestPayload"] == {"id": "bad", "fail": True}
    assert failure["responseContext"]["functionError"] == "Unhandled"
    assert failure["responsePayload"]["errorType"] == "RuntimeError"


def test_an_event_older_than_its_maximum_age_goes_to_on_failure_unrun(
    queue_url: str, platform: dict[str, str], redis_service: RedisServer, tmp_path: Path
) -> None:
    stream = f"async-age-{uuid.uuid4().hex[:8]}"
    record = write_project(
        tmp_path,
        async_config={"maximumEventAgeSeconds": 60, "onFailure": {"redis": {"stream": stream}}},
    )
    # Accepted two minutes ago (as if the dispatchers had been down since): stored straight
    # into the queue the gateway will read.
    stale = AsyncEvent(
        request_id=f"stale-{uuid.uuid4().hex[:8]}",
        function_key="default/work",
        payload=b'{"id": "stale"}',
        accepted_at=time.time() - 120,
    )

    async def enqueue() -> None:
        queue = make_queue(queue_url)
        await queue.start()
        try:
            await queue.put(stale)
        finally:
            await queue.close()

    run_coroutine(enqueue())
    with dev_server([tmp_path], env=platform, args=["--async-queue", queue_url]):
        eventually(
            lambda: (
                record_for(redis_records(redis_service.url, stream), stale.request_id) is not None
            ),
            within=30,
            what="the EventAgeExceeded record",
        )
    expired = record_for(redis_records(redis_service.url, stream), stale.request_id)
    assert expired is not None
    assert expired["requestContext"]["condition"] == "EventAgeExceeded"
    assert expired["requestContext"]["approximateInvokeCount"] == 0
    assert expired["requestPayload"] == {"id": "stale"}
    assert "stale" not in phases(record, "start")


# -- faults with numbers ----------------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.timeout(180)
def test_dispatcher_killed_mid_invocation_redelivers_and_loses_nothing(
    queue_url: str, platform: dict[str, str], tmp_path: Path
) -> None:
    record = write_project(tmp_path, per_instance=8)
    ids = [f"k{n}" for n in range(16)]
    with dev_server([tmp_path], env=platform, args=["--async-queue", queue_url]) as first:
        for event_id in ids:
            assert send_event(first.url, {"id": event_id, "sleep": 2}) == 202
        eventually(
            lambda: len(phases(record, "start")) >= 8, within=30, what="invocations under way"
        )
        in_flight = len(phases(record, "start")) - len(phases(record, "end"))
        kill_dispatcher(first)
    with dev_server([tmp_path], env=platform, args=["--async-queue", queue_url]):
        eventually(
            lambda: set(phases(record, "end")) >= set(ids), within=90, what="every event finished"
        )
        # The killed dispatcher's instances may finish its events on their way out; the events it
        # never acknowledged must still come back (Kafka: after the group's rebalance).
        eventually(
            lambda: sum(phases(record, "start").values()) >= len(ids) + in_flight,
            within=90,
            what="unacknowledged events redelivered",
        )
    starts, ends = phases(record, "start"), phases(record, "end")
    figures: dict[str, Any] = {
        "queue": queue_url.split(":")[0],
        "events": len(ids),
        "in_flight_at_kill": in_flight,
        "lost": len(set(ids) - set(ends)),
        "invocations": sum(starts.values()),
        "duplicate_invocations": sum(starts.values()) - len(ids),
        "duplicate_completions": sum(ends.values()) - len(ends),
    }
    report("kill-9-mid-invocation", **figures)
    assert figures["lost"] == 0
    assert in_flight > 0 and figures["duplicate_invocations"] >= in_flight


def _flow_through_a_restart(
    url: str, ids: list[str], restart: Callable[[], None]
) -> tuple[int, float]:
    """Send every event (a refused one again until accepted) while ``restart`` runs once a
    third are in; returns how many sends were refused and how long the restart took."""
    refused = 0
    third = threading.Event()
    restart_seconds: list[float] = []

    def restarter() -> None:
        third.wait(60)
        started = time.monotonic()
        restart()
        restart_seconds.append(time.monotonic() - started)

    thread = threading.Thread(target=restarter, name="restart-service")
    thread.start()
    try:
        for index, event_id in enumerate(ids):
            if index == len(ids) // 3:
                third.set()
            while send_event(url, {"id": event_id}) != 202:
                refused += 1  # not accepted: the client keeps it and tries again, as boto3 does
    finally:
        third.set()
        thread.join(120)
    return refused, restart_seconds[0] if restart_seconds else 0.0


def _restart_while_flowing(
    name: str,
    queue: str,
    platform: dict[str, str],
    folder: Path,
    restart: Callable[[], None],
    events: int = 300,
) -> None:
    record = write_project(folder)
    ids = [f"r{n}" for n in range(events)]
    with dev_server([folder], env=platform, args=["--async-queue", queue]) as dev:
        started = time.monotonic()
        refused, restart_seconds = _flow_through_a_restart(dev.url, ids, restart)
        eventually(
            lambda: set(phases(record, "end")) >= set(ids),
            within=120,
            what="every accepted event ran",
        )
        elapsed = time.monotonic() - started
    ends = phases(record, "end")
    figures = {
        "queue": queue.split(":")[0],
        "accepted": len(ids),
        "refused_during_restart": refused,
        "restart_seconds": round(restart_seconds, 1),
        "lost": len(set(ids) - set(ends)),
        "duplicates": sum(ends.values()) - len(ends),
        "seconds": round(elapsed, 1),
    }
    report(name, **figures)
    assert figures["lost"] == 0


@pytest.mark.faults
@pytest.mark.timeout(240)
def test_redis_restarted_while_events_flow_loses_nothing(
    redis_queue: str, platform: dict[str, str], redis_service: RedisServer, tmp_path: Path
) -> None:
    _restart_while_flowing("redis-restart", redis_queue, platform, tmp_path, redis_service.restart)


@pytest.mark.faults
@pytest.mark.timeout(300)
def test_kafka_broker_restarted_while_events_flow_loses_nothing(
    kafka_queue: str, platform: dict[str, str], kafka_service: KafkaBroker, tmp_path: Path
) -> None:
    _restart_while_flowing("kafka-restart", kafka_queue, platform, tmp_path, kafka_service.restart)
