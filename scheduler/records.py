"""What a tick sends: EventBridge's Scheduled Event, and Lambda's failure record when given up.

Pure builders (ADR 026). A function written for EventBridge reads the event as it would from
AWS (aws-lambda-powertools' ``EventBridgeEvent`` parses it); the event's ``id`` is derived from the
schedule's uid and the tick, so a redelivered tick carries the same id and a handler can drop the
duplicate. A tick given up goes to the dead-letter destination as the record Lambda sends an
asynchronous invocation's ``onFailure`` destination, so one consumer reads both.
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

from kfaas.events import iso_timestamp
from kfaas.names import LATEST, function_arn
from kfaas.schedule_manifests import Schedule

from .ticks import Condition, event_time, stamp


def event_id(uid: str, tick: datetime.datetime) -> str:
    """The tick's event id: the same on every replica and every redelivery."""
    try:
        namespace = uuid.UUID(uid)
    except ValueError:  # the API server's uids are UUIDs; anything else is still stable
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, uid)
    return str(uuid.uuid5(namespace, stamp(tick)))


def schedule_arn(region: str, namespace: str, name: str) -> str:
    # The namespace stands where AWS has the account, as in the functions' ARNs (ADR 024).
    return f"arn:aws:scheduler:{region}:{namespace}:schedule/default/{name}"


def scheduled_event(
    schedule: Schedule, uid: str, tick: datetime.datetime, *, region: str
) -> dict[str, Any]:
    """EventBridge's "Scheduled Event" for ``tick``."""
    metadata = schedule.metadata
    return {
        "version": "0",
        "id": event_id(uid, tick),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": metadata.namespace,
        "time": event_time(tick),
        "region": region,
        "resources": [schedule_arn(region, metadata.namespace, metadata.name)],
        "detail": {},
    }


def payload_of(schedule: Schedule, uid: str, tick: datetime.datetime, *, region: str) -> bytes:
    """What the function receives: the target's ``input`` as written, else the Scheduled Event."""
    text = schedule.spec.target.input
    if text is not None:
        return text.encode()
    return json.dumps(scheduled_event(schedule, uid, tick, region=region)).encode()


def failure_record(
    schedule: Schedule,
    uid: str,
    tick: datetime.datetime,
    *,
    region: str,
    condition: Condition,
    attempts: int,
    status_code: int,
    error: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    """Lambda's invocation record for a tick given up (``condition`` says why). The function
    never ran (the invocation was not accepted), so ``executedVersion`` and ``functionError`` are
    null and ``responsePayload`` carries the last delivery error."""
    target = schedule.spec.target
    payload = json.loads(payload_of(schedule, uid, tick, region=region))
    # Qualified as in Lambda's records of asynchronous invocations (`…:function:f:$LATEST`).
    arn = function_arn(
        schedule.metadata.namespace,
        target.function_name,
        region=region,
        qualifier=target.qualifier or LATEST,
    )
    return {
        "version": "1.0",
        "timestamp": iso_timestamp(now),
        "requestContext": {
            "requestId": event_id(uid, tick),
            "functionArn": arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": payload,
        "responseContext": {
            "statusCode": status_code,
            "executedVersion": None,
            "functionError": None,
        },
        "responsePayload": {"errorMessage": error},
    }


def missed_line(
    schedule: Schedule,
    tick: datetime.datetime,
    condition: str,
    attempts: int,
    error: str,
    count: int = 1,
) -> dict[str, Any]:
    """The JSON log line of ticks given up with no dead-letter destination (never silent):
    ``tick`` the last of them, ``ticks`` how many (a run of too-old ones is given up at once)."""
    return {
        "message": "schedule tick given up (no deadLetterConfig)",
        "schedule": schedule.key,
        "function": schedule.spec.target.function_name,
        "tick": stamp(tick),
        "ticks": count,
        "condition": condition,
        "approximateInvokeCount": attempts,
        "error": error,
    }
