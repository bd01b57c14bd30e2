"""Code uploads at Lambda's limits, with the gateway's memory bounded (ADR 025, ADR 010).

CreateFunction and UpdateFunctionCode take a request of up to 70,167,211 bytes (a 50 MiB zip in
base64 JSON) and nothing else does; a zip over 50 MiB is 413 RequestEntityTooLargeException.
Upload bodies are held in a budget of their own the size of one largest upload: a second upload
while one holds it is 429 TooManyRequestsException with Retry-After, which botocore retries.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import urllib.parse
import urllib.request
import zipfile
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from botocore.exceptions import ClientError
from management_gateway import ManagementGateway
from waiting import eventually

from kfaas.code_archives import MAX_ZIPPED_BYTES
from kfaas.gateway.app import SERVICES
from kfaas.gateway.auth import body_limit_of
from kfaas.gateway.invoker import ASYNC_PAYLOAD_LIMIT, SYNC_PAYLOAD_LIMIT
from kfaas.gateway.limits import CODE_UPLOAD_LIMIT, code_upload

ROLE = "arn:aws:iam::123456789012:role/deployer"
HELD = re.compile(r"^kfaas_gateway_body_bytes_held (\S+)$", re.MULTILINE)


@pytest.mark.parametrize(
    ("method", "path", "upload"),
    [
        ("POST", "/2015-03-31/functions", True),
        ("POST", "/2015-03-31/functions/", True),
        ("PUT", "/2015-03-31/functions/team-a%2Fthumbnail/code", True),
        ("PUT", "/2015-03-31/functions/thumbnail/configuration", False),
        ("POST", "/2015-03-31/functions/thumbnail/invocations", False),
        ("GET", "/2015-03-31/functions", False),
        ("POST", "/2015-03-31/functions/thumbnail/versions", False),
        ("PUT", "/2017-10-31/functions/thumbnail/code", False),
    ],
)
def test_only_the_two_upload_routes_take_lambdas_largest_request(
    method: str, path: str, upload: bool
) -> None:
    request = make_mocked_request(method, path)
    assert code_upload(request) is upload
    assert body_limit_of(request) == (CODE_UPLOAD_LIMIT if upload else SYNC_PAYLOAD_LIMIT)
    event = make_mocked_request(method, path, headers={"X-Amz-Invocation-Type": "Event"})
    assert body_limit_of(event) == (CODE_UPLOAD_LIMIT if upload else ASYNC_PAYLOAD_LIMIT)


def test_a_zip_just_over_50_mib_is_413(lambda_api: Any) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("blob.bin", os.urandom(MAX_ZIPPED_BYTES))
    zipped = buffer.getvalue()
    assert MAX_ZIPPED_BYTES < len(zipped) < MAX_ZIPPED_BYTES + 1024
    with pytest.raises(ClientError) as refused:
        lambda_api.create_function(
            FunctionName="huge",
            Role=ROLE,
            Runtime="python3.12",
            Handler="app.handler",
            Code={"ZipFile": zipped},
        )
    response = refused.value.response
    assert response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert lambda_api.list_functions()["Functions"] == []


def _start(url: str, method: str, path: str, length: int) -> http.client.HTTPConnection:
    """A request whose head declares ``length`` bytes, its body not (yet) sent."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=10)
    connection.putrequest(method, path)
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(length))
    connection.endheaders()
    return connection


def _answer(connection: http.client.HTTPConnection) -> tuple[int, dict[str, Any], str | None]:
    response = connection.getresponse()
    body = json.loads(response.read() or b"{}")
    return response.status, body, response.getheader("Retry-After")


def _held(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as page:
        match = HELD.search(page.read().decode())
    return float(match.group(1)) if match else 0.0


def test_a_request_over_the_limit_is_refused_before_its_body(
    management_gateway: ManagementGateway,
) -> None:
    connection = _start(
        management_gateway.url, "POST", "/2015-03-31/functions", CODE_UPLOAD_LIMIT + 1
    )
    try:
        status, body, _ = _answer(connection)
    finally:
        connection.close()
    assert status == 413 and "too large" in body["message"]
    # Configuration keeps its small limit: the upload allowance is only the two routes'.
    connection = _start(
        management_gateway.url, "PUT", "/2015-03-31/functions/fn/configuration", 7_000_000
    )
    try:
        status, _, _ = _answer(connection)
    finally:
        connection.close()
    assert status == 413


def test_a_second_upload_beyond_the_budget_is_throttled(
    management_gateway: ManagementGateway,
) -> None:
    url = management_gateway.url
    holding = _start(url, "POST", "/2015-03-31/functions", 60_000_000)
    try:
        holding.send(b'{"FunctionName": "slow", "Code": {"ZipFile": "')
        eventually(lambda: _held(url) >= 60_000_000, within=10, what="the upload's bytes held")
        second = _start(url, "PUT", "/2015-03-31/functions/fn/code", 20_000_000)
        try:
            status, body, retry_after = _answer(second)
        finally:
            second.close()
        assert (status, body["__type"]) == (429, "TooManyRequestsException")
        assert retry_after == "1" and body["Reason"] == "ConcurrentInvocationLimitExceeded"
        # Other requests are not held back by an upload: they have their own budget.
        assert management_gateway.client.list_functions()["Functions"] == []
    finally:
        holding.close()
    eventually(lambda: _held(url) == 0, within=10, what="the budget given back")


def test_without_a_code_store_a_zip_is_refused(management_gateway: ManagementGateway) -> None:
    management_gateway.app[SERVICES].code_store = None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "x = 1\n")
    with pytest.raises(ClientError) as refused:
        management_gateway.client.create_function(
            FunctionName="nostore",
            Role=ROLE,
            Runtime="python3.12",
            Handler="app.handler",
            Code={"ZipFile": buffer.getvalue()},
        )
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert "ImageUri" in error["Message"] and "code store" in error["Message"]
