"""EventSourceMappings with real poller pods, which invoke through the gateway by its DNS name."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis
from node.kfaas_release import Release, eventually

# The handler notes every record it is given in a sink stream, so the test counts deliveries;
# records whose payload says "poison" fail, to reach the mapping's dead-letter destination.
SINK = """\
import json, os
import redis

SINK = redis.Redis.from_url(os.environ["SINK_URL"])

def handler(event, context):
    for record in event["Records"]:  # SQS-shaped: the entry's fields as JSON in body
        fields = json.loads(record["body"])
        if fields.get("kind") == "poison":
            raise ValueError("poison record " + fields.get("n", "?"))
        SINK.xadd(os.environ["SINK_STREAM"], {"n": fields["n"]})
    return {"count": len(event["records"])}
"""


def _mapping(release: Release, name: str, function: str, spec: dict[str, Any]) -> None:
    release.apply({
        "apiVersion": "kfaas.dev/v1alpha1", "kind": "EventSourceMapping",
        "metadata": {"name": name, "namespace": release.namespace},
        "spec": {"functionName": function, **spec},
    })  # fmt: skip


def test_redis_stream_poller_pod_killed_mid_stream_loses_nothing(
    release: Release, platform_redis_url: str, kill_pod: Callable[[dict[str, Any]], None]
) -> None:
    tag = str(time.monotonic_ns())
    source, sink, dead = f"orders-{tag}", f"sink-{tag}", f"dead-{tag}"
    store = redis.Redis.from_url(platform_redis_url, decode_responses=True)
    function = release.function(
        {"app.py": SINK},
        environment={"SINK_URL": platform_redis_url, "SINK_STREAM": sink},
        timeoutSeconds=30,
    )
    _mapping(release, f"m-{tag[-8:]}", function, {
        "redis": {"url": platform_redis_url, "stream": source, "startingPosition": "TRIM_HORIZON"},
        "batchSize": 10,
        "maximumRetryAttempts": 1,
        "destinationConfig": {"onFailure": {"redis": {"stream": dead, "url": platform_redis_url}}},
    })  # fmt: skip
    total = 300
    for n in range(total // 2):
        store.xadd(source, {"n": str(n)})
    store.xadd(source, {"n": "poison-1", "kind": "poison"})
    poller = eventually(
        lambda: (release.running_pods(function, "poller") or [None])[0],
        within=120,
        what="a running poller pod",
    )
    eventually(lambda: store.xlen(sink) > 20 or None, within=120, what="the first deliveries")
    kill_pod(poller)
    for n in range(total // 2, total):
        store.xadd(source, {"n": str(n)})

    def all_delivered() -> list[str] | None:
        seen = [fields["n"] for _, fields in store.xrange(sink)]
        return seen if set(seen) >= {str(n) for n in range(total)} else None

    seen = eventually(all_delivered, within=240, what=f"all {total} records in the sink")
    print(f"{total} records, {len(seen) - total} duplicates after killing poller {poller}")

    def dead_letters() -> list[dict[str, str]] | None:
        entries = [fields for _, fields in store.xrange(dead)]
        return entries if any(e.get("kfaas-kind") == "failure-record" for e in entries) else None

    entries = eventually(dead_letters, within=120, what="the DLQ records")
    assert {"n": "poison-1", "kind": "poison"} in [
        {k: v for k, v in entry.items() if not k.startswith("kfaas-")} for entry in entries
    ]
    failure = next(e for e in entries if e.get("kfaas-kind") == "failure-record")
    assert json.loads(failure["body"])["requestContext"]["condition"] == "RetryAttemptsExhausted"
