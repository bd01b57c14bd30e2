"""HTTP triggers: API Gateway HTTP API payload 2.0 in, its response format mapped back out."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from devserver import DevServer


def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_payload_2_0_and_response_mapping(dev: DevServer) -> None:
    status, headers, body = request(
        f"{dev.url}/fn/default/web/items/42?x=1&x=2&y=3",
        "POST",
        b'{"k": "v"}',
        {"content-type": "application/json", "cookie": "s=1; t=2"},
    )
    assert status == 201
    assert headers["x-path"] == "/items/42"
    assert headers.get_all("set-cookie") == ["a=1; Path=/", "b=2"]
    seen = json.loads(body)
    assert seen == {
        "rawPath": "/items/42",
        "method": "POST",
        "query": {"x": "1,2", "y": "3"},
        "body": '{"k": "v"}',
        "isBase64Encoded": False,
    }


def test_root_path_and_binary_body(dev: DevServer) -> None:
    status, _, body = request(
        f"{dev.url}/fn/default/web", "PUT", bytes(range(256)), {"content-type": "image/png"}
    )
    assert status == 201
    seen = json.loads(body)
    assert seen["rawPath"] == "/"
    assert seen["isBase64Encoded"] is True


def test_plain_json_return_is_200_json(dev: DevServer) -> None:
    status, headers, body = request(f"{dev.url}/fn/default/plain/")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"hello": "world"}


@pytest.mark.parametrize("path", ["/fn/default/echo/", "/fn/default/missing/"])
def test_functions_without_http_are_not_reachable(dev: DevServer, path: str) -> None:
    status, headers, _ = request(dev.url + path)
    assert status == 404
    assert headers["x-amzn-ErrorType"] == "ResourceNotFoundException"


def test_function_error_is_a_502(dev: DevServer) -> None:
    status, headers, body = request(f"{dev.url}/fn/default/web-fail/")
    assert status == 502
    assert json.loads(body) == {"message": "Internal Server Error"}
    assert headers["x-amzn-RequestId"]
