"""Examples are tests: every folder under examples/ is served by `kfaas dev` and exercised."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devserver import DevServer, dev_server, make_lambda_client
from waiting import eventually

EXAMPLES = Path(__file__).parent.parent.parent / "examples"
# aws-cli holds a deploy script, run as written by tests/e2e/test_aws_cli.py.
COVERED = {"hello", "http-api", "http-api-key", "async-destinations", "failing", "aws-cli"}


@pytest.fixture(scope="module")
def examples() -> Iterator[DevServer]:
    with dev_server([EXAMPLES], env={"KFAAS_ASYNC_RETRY_BASE_SECONDS": "0.05"}) as server:
        yield server


@pytest.fixture(scope="module")
def client(examples: DevServer) -> Any:
    return make_lambda_client(examples.url)


def call(client: Any, name: str, payload: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload), **kwargs)
    return json.loads(response["Payload"].read() or b"null"), response


def test_every_example_is_covered() -> None:
    assert {path.name for path in EXAMPLES.iterdir() if path.is_dir()} == COVERED


def test_hello(client: Any) -> None:
    body, response = call(client, "hello", {"name": "you"})
    assert body == {
        "message": "Hello, you!",
        "requestId": response["ResponseMetadata"]["RequestId"],
    }


def test_http_api(examples: DevServer) -> None:
    base = f"{examples.url}/fn/default/todo"
    post = urllib.request.Request(f"{base}/todos", data=b'{"title": "docs"}', method="POST")
    with urllib.request.urlopen(post, timeout=30) as reply:
        assert reply.status == 201
        assert json.loads(reply.read()) == {"id": 1, "title": "docs"}
        assert reply.headers.get_all("set-cookie") == ["last-todo=1"]
    with urllib.request.urlopen(f"{base}/todos", timeout=30) as reply:
        assert json.loads(reply.read()) == {"todos": [{"id": 1, "title": "docs"}]}


def test_http_api_key(examples: DevServer) -> None:
    url = f"{examples.url}/fn/default/notes/"
    keyed = urllib.request.Request(url, headers={"x-api-key": "example-key-change-me"})
    with urllib.request.urlopen(keyed, timeout=30) as reply:
        assert json.loads(reply.read()) == {"notes": ["buy milk"], "path": "/"}
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=30)
    assert refused.value.code == 401
    assert json.loads(refused.value.read()) == {"message": "Unauthorized"}


def records(client: Any, recorder: str, want: int) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]] | None:
        listed, _ = call(client, recorder, {"list": True})
        return list(listed) if len(listed) >= want else None

    return eventually(found, within=20, what=f"{want} records in {recorder}")


def test_async_destinations(client: Any) -> None:
    call(client, "resize", {"kind": "image"}, InvocationType="Event")
    call(client, "resize", {"kind": "video"}, InvocationType="Event")
    [success] = records(client, "audit", 1)
    [failure] = records(client, "dead-letters", 1)
    assert success["requestContext"]["condition"] == "Success"
    assert success["responsePayload"] == {"resized": True}
    assert failure["requestContext"]["condition"] == "RetriesExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["requestPayload"] == {"kind": "video"}


@pytest.mark.parametrize(
    ("mode", "error_type"),
    [("raise", "OrderRejected"), ("timeout", "Sandbox.Timedout"), ("crash", "Runtime.ExitError")],
)
def test_failing(client: Any, mode: str, error_type: str) -> None:
    body, response = call(client, "failing", {"mode": mode})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == error_type
    assert call(client, "failing", {"mode": "ok"})[0] == {"mode": "ok"}
