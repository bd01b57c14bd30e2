"""Handlers for the stream tests: each records what it got, then behaves as its MODE says.

Every invocation appends one JSON line to the file named by OUT: the record ids (Kafka offsets
prefixed by partition, Redis entry ids), their values as text, and what the handler answered.
Records whose value contains "poison" are the ones a mode treats as failing.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any


def _records(event: dict[str, Any]) -> list[dict[str, Any]]:
    if event.get("eventSource") == "SelfManagedKafka":
        found = []
        for records in event["records"].values():
            for record in records:
                value = base64.b64decode(record["value"]).decode() if "value" in record else ""
                found.append(
                    {
                        "id": str(record["offset"]),
                        "key": f"{record['partition']}:{record['offset']}",
                        "partition": record["partition"],
                        "value": value,
                    }
                )
        return found
    return [
        {"id": r["messageId"], "key": r["messageId"], "partition": 0, "value": r["body"]}
        for r in event["Records"]
    ]


def handler(event: dict[str, Any], context: Any) -> Any:
    mode = os.environ.get("MODE", "ok")
    records = _records(event)
    if os.environ.get("STARTED"):
        # A line as soon as a batch arrives, for tests that act while it is in flight.
        with open(os.environ["STARTED"], "a") as started:
            started.write(json.dumps([r["value"] for r in records]) + "\n")
    poisoned = [r for r in records if "poison" in r["value"]]
    outcome: Any = None
    if mode == "error_on_poison" and poisoned:
        outcome = "error"
    elif mode == "partial" and poisoned:
        outcome = {"batchItemFailures": [{"itemIdentifier": r["id"]} for r in poisoned]}
    elif mode == "invalid_partial" and poisoned:
        outcome = {"batchItemFailures": [{"itemIdentifier": "no-such-id"}]}
    elif mode == "error":
        outcome = "error"
    line = {
        "keys": [r["key"] for r in records],
        # SIZES=1 records each value's length instead of the value (for megabyte records).
        "values": [
            str(len(r["value"])) if os.environ.get("SIZES") else r["value"] for r in records
        ],
        "outcome": outcome,
        "event": event if os.environ.get("KEEP_EVENT") else None,
        "at": time.time(),
    }
    if os.environ.get("SLEEP"):
        time.sleep(float(os.environ["SLEEP"]))
    with open(os.environ["OUT"], "a") as out:
        out.write(json.dumps(line) + "\n")
    if outcome == "error":
        raise RuntimeError(f"poisoned batch of {len(records)}")
    return outcome


def noop(event: dict[str, Any], context: Any) -> None:
    return None
