"""The Invoke API as boto3 sees it: every status, header and error Lambda defines.

boto3 talks to a real ``kfaas dev`` over tests/functions with dummy credentials and no retries;
these tests are the judge that unmodified Lambda clients work.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError


def invoke(client: Any, name: str, payload: Any = None, **kwargs: Any) -> dict[str, Any]:
    if payload is not None:
        kwargs["Payload"] = payload if isinstance(payload, bytes) else json.dumps(payload)
    response: dict[str, Any] = client.invoke(FunctionName=name, **kwargs)
    response["Body"] = response["Payload"].read()
    return response


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def test_request_response_returns_the_handler_result(lambda_client: Any) -> None:
    response = invoke(lambda_client, "echo", {"a": [1, 2, {"b": None}]})
    assert response["StatusCode"] == 200
    assert json.loads(response["Body"]) == {"a": [1, 2, {"b": None}]}
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response


def test_request_id_is_the_handlers_aws_request_id(lambda_client: Any) -> None:
    response = invoke(lambda_client, "context", {})
    body = json.loads(response["Body"])
    assert body["aws_request_id"] == response["ResponseMetadata"]["RequestId"]
    assert body["function_name"] == "context"
    assert body["memory_limit_in_mb"] == "256"
    assert body["invoked_function_arn"] == "arn:aws:lambda:us-east-1:default:function:context"
    assert 0 < body["remaining_ms"] <= 3000
    assert body["env"] == {
        "GREETING": "hi",
        "AWS_REGION": "us-east-1",
        "TZ": ":UTC",
        "_HANDLER": "app.context_info",
    }


def test_empty_payload_is_an_empty_object(lambda_client: Any) -> None:
    assert json.loads(invoke(lambda_client, "echo")["Body"]) == {}


def test_event_is_accepted_and_dry_run_checks_only(lambda_client: Any) -> None:
    assert invoke(lambda_client, "echo", {}, InvocationType="Event")["StatusCode"] == 202
    assert invoke(lambda_client, "echo", {}, InvocationType="DryRun")["StatusCode"] == 204


def test_log_tail(lambda_client: Any) -> None:
    response = invoke(lambda_client, "sleep", {"seconds": 0.01}, LogType="Tail")
    log = base64.b64decode(response["LogResult"]).decode()
    request_id = response["ResponseMetadata"]["RequestId"]
    assert f"START RequestId: {request_id}" in log
    assert "slept 0.01" in log
    assert f"END RequestId: {request_id}" in log
    assert f"REPORT RequestId: {request_id}" in log and "Billed Duration" in log


def test_megabytes_of_output_keep_only_the_last_4_kb(lambda_client: Any) -> None:
    response = invoke(lambda_client, "chatty", {"kilobytes": 2048}, LogType="Tail")
    assert json.loads(response["Body"]) == {"ok": True}
    log = base64.b64decode(response["LogResult"])
    assert len(log) <= 4096
    assert b"the end" in log and b"REPORT RequestId" in log


def test_function_error_is_200_with_unhandled(lambda_client: Any) -> None:
    response = invoke(lambda_client, "fail", {"x": 1})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Body"])
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == 'bad input: {"x": 1}'
    assert any("app.py" in frame for frame in error["stackTrace"])
    assert not any("kfaas" in frame for frame in error["stackTrace"])


@pytest.mark.parametrize(
    ("name", "error_type"),
    [
        ("no-import", "Runtime.ImportModuleError"),
        ("no-handler", "Runtime.HandlerNotFound"),
        ("unserializable", "Runtime.MarshalError"),
        ("big-response", "Function.ResponseSizeTooLarge"),
        ("crash", "Runtime.ExitError"),
        ("hog", "Runtime.ExitError"),
    ],
)
def test_runtime_faults_are_function_errors(lambda_client: Any, name: str, error_type: str) -> None:
    response = invoke(lambda_client, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Body"])["errorType"] == error_type


def test_timeout_kills_the_worker_and_the_next_call_works(lambda_client: Any) -> None:
    response = invoke(lambda_client, "sleep", {"seconds": 5})
    error = json.loads(response["Body"])
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in error["errorMessage"]
    assert json.loads(invoke(lambda_client, "sleep", {"seconds": 0.01})["Body"])["slept"] == 0.01


def test_crashed_worker_is_replaced(lambda_client: Any) -> None:
    invoke(lambda_client, "crash", {})
    response = invoke(lambda_client, "crash", {})
    assert json.loads(response["Body"])["errorType"] == "Runtime.ExitError"
    assert json.loads(invoke(lambda_client, "echo", {"still": "up"})["Body"]) == {"still": "up"}


def test_large_payloads_within_the_limits(lambda_client: Any) -> None:
    big = {"data": "z" * (5 * 1024 * 1024)}
    assert json.loads(invoke(lambda_client, "echo", big)["Body"]) == big
    almost = json.dumps("a" * (1024 * 1024 - 100)).encode()
    assert invoke(lambda_client, "echo", almost, InvocationType="Event")["StatusCode"] == 202


def test_unknown_function(lambda_client: Any) -> None:
    for invocation_type in ("RequestResponse", "Event", "DryRun"):
        with pytest.raises(ClientError) as raised:
            invoke(lambda_client, "nope", {}, InvocationType=invocation_type)
        assert error_code(raised) == "ResourceNotFoundException"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_invalid_json_payload(lambda_client: Any) -> None:
    with pytest.raises(ClientError) as raised:
        invoke(lambda_client, "echo", b"{not json")
    assert error_code(raised) == "InvalidRequestContentException"
    assert "Could not parse request body into json" in str(raised.value)


def test_oversized_payloads(lambda_client: Any) -> None:
    with pytest.raises(ClientError) as raised:
        invoke(lambda_client, "echo", json.dumps("x" * (6 * 1024 * 1024)).encode())
    assert error_code(raised) == "RequestTooLargeException"
    with pytest.raises(ClientError) as raised:
        invoke(
            lambda_client,
            "echo",
            json.dumps("x" * (1024 * 1024)).encode(),
            InvocationType="Event",
        )
    assert error_code(raised) == "RequestTooLargeException"


@pytest.mark.parametrize(
    "name",
    [
        "team-a/hello",
        "arn:aws:lambda:us-east-1:team-a:function:hello",
        "arn:aws:lambda:us-east-1:team-a:function:hello:$LATEST",
        "team-a:function:hello",
        "team-a/hello:$LATEST",
    ],
)
def test_function_name_forms(lambda_client: Any, name: str) -> None:
    body = json.loads(invoke(lambda_client, name, {"name": "kfaas"})["Body"])
    assert body == {"hello": "kfaas", "namespace": "team-a"}


def test_qualifier_parameter_and_mismatch(lambda_client: Any) -> None:
    assert invoke(lambda_client, "echo", {}, Qualifier="$LATEST")["StatusCode"] == 200
    with pytest.raises(ClientError) as raised:
        invoke(lambda_client, "echo:$LATEST", {}, Qualifier="3")
    assert error_code(raised) == "InvalidParameterValueException"
    with pytest.raises(ClientError) as raised:
        invoke(lambda_client, "echo", {}, Qualifier="7")
    assert error_code(raised) == "ResourceNotFoundException"


def test_client_context_reaches_the_handler(lambda_client: Any) -> None:
    context = {"custom": {"tenant": "t1"}, "env": {"locale": "en"}, "client": {}}
    encoded = base64.b64encode(json.dumps(context).encode()).decode()
    body = json.loads(invoke(lambda_client, "context", {}, ClientContext=encoded)["Body"])
    assert body["client_context"] == {"custom": {"tenant": "t1"}, "env": {"locale": "en"}}


def test_reserved_concurrency_throttles_with_reason(lambda_client: Any) -> None:
    def call(_: int) -> str:
        try:
            invoke(lambda_client, "sleep", {"seconds": 0.8})
            return "ok"
        except ClientError as error:
            assert error.response["Error"]["Code"] == "TooManyRequestsException"
            return str(error.response.get("Reason"))

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(call, range(8)))
    assert outcomes.count("ok") >= 1
    assert "ReservedFunctionConcurrentInvocationLimitExceeded" in outcomes
    assert outcomes.count("ok") <= 4


def test_list_and_get_function(lambda_client: Any) -> None:
    names = {f["FunctionName"] for f in lambda_client.list_functions()["Functions"]}
    assert {"echo", "context", "hello"} <= names
    configuration = lambda_client.get_function(FunctionName="context")["Configuration"]
    assert configuration["MemorySize"] == 256
    assert configuration["Handler"] == "app.context_info"
    assert configuration["Runtime"] == "python3.11"
    assert lambda_client.get_function(FunctionName="sleep")["Concurrency"] == {
        "ReservedConcurrentExecutions": 4
    }
