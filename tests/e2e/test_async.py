"""Event invocations: retries, and Lambda's invocation record delivered to function destinations."""

from __future__ import annotations

import json
from typing import Any

from waiting import eventually


def recorded(client: Any, request_id: str) -> dict[str, Any]:
    """Wait (bounded) until the recorder function holds the record of ``request_id``."""

    def record() -> dict[str, Any] | None:
        reply = client.invoke(FunctionName="recorder", Payload=json.dumps({"list": True}))
        for entry in json.loads(reply["Payload"].read()):
            if entry["requestContext"]["requestId"] == request_id:
                return dict(entry)
        return None

    return eventually(record, within=20, what=f"the invocation record of {request_id}")


def test_failed_event_is_retried_then_sent_to_on_failure(lambda_client: Any) -> None:
    accepted = lambda_client.invoke(
        FunctionName="async-fail", InvocationType="Event", Payload=json.dumps({"n": 1})
    )
    assert accepted["StatusCode"] == 202
    request_id = accepted["ResponseMetadata"]["RequestId"]
    record = recorded(lambda_client, request_id)
    assert record["version"] == "1.0"
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"].endswith(":function:async-fail:$LATEST")
    assert record["requestPayload"] == {"n": 1}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "RuntimeError"


def test_successful_event_is_sent_to_on_success(lambda_client: Any) -> None:
    accepted = lambda_client.invoke(
        FunctionName="async-ok", InvocationType="Event", Payload=json.dumps({"ok": 1})
    )
    record = recorded(lambda_client, accepted["ResponseMetadata"]["RequestId"])
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responsePayload"] == {"ok": 1}
    assert record["responseContext"]["statusCode"] == 200
