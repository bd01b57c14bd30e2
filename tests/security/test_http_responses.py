"""HTTP trigger responses as API Gateway builds them, whatever the function returns (issue 8.2).

A function's framing and hop-by-hop headers never reach the client; a status outside 200-599, a
header name that is not a token or a header or cookie value with CR, LF or NUL is a 502
``{"message":"Internal Server Error"}`` with one warning line naming the function. Tested on the
pure mapping and through ``kfaas dev``, on one keep-alive connection, so a mis-framed answer
would show as the next answer going wrong.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devserver import DevServer, dev_server

from kfaas.events import http_response_from_result

FUNCTIONS = Path(__file__).parent / "framing_functions"
BAD_GATEWAY = b'{"message":"Internal Server Error"}'
HOP_BY_HOP = {
    "Content-Length": "1",
    "Transfer-Encoding": "chunked",
    "Connection": "close",
    "Keep-Alive": "timeout=1",
    "Upgrade": "websocket",
    "TE": "trailers",
    "Trailer": "X-T",
    "Proxy-Authenticate": "Basic",
    "Proxy-Connection": "keep-alive",
}


def result(**fields: Any) -> bytes:
    return json.dumps({"statusCode": 200, "body": "hello", **fields}).encode()


def test_framing_and_hop_by_hop_headers_are_dropped() -> None:
    response = http_response_from_result(
        result(
            headers={**HOP_BY_HOP, "X-Kept": "1"},
            multiValueHeaders={"content-length": ["9"], "x-multi": ["a", "b"]},
        )
    )
    assert response.status == 200 and response.problem is None
    assert response.headers == [
        ("X-Kept", "1"),
        ("x-multi", "a"),
        ("x-multi", "b"),
        ("content-type", "application/json"),
    ]
    assert response.body == b"hello"


MALFORMED = {
    "status 100": result(statusCode=100),
    "status 101": result(statusCode=101, headers={"Upgrade": "websocket"}),
    "status 199": result(statusCode=199),
    "status 600": result(statusCode=600),
    "status -1": result(statusCode=-1),
    "status float": result(statusCode=200.0),
    "status string with spaces": result(statusCode=" 200"),
    "status bool": result(statusCode=True),
    "status null": result(statusCode=None),
    "CRLF in a value": result(headers={"X-A": "1\r\nSet-Cookie: stolen=1"}),
    "LF in a value": result(headers={"X-A": "1\nX-B: 2"}),
    "CR in a value": result(headers={"X-A": "1\rX-B: 2"}),
    "NUL in a value": result(headers={"X-A": "1\u0000"}),
    "CRLF in a multi value": result(multiValueHeaders={"X-A": ["ok", "1\r\n\r\nHTTP/1.1 200"]}),
    "CRLF in a name": result(headers={"X-A\r\nX-B": "1"}),
    "space in a name": result(headers={"X A": "1"}),
    "colon in a name": result(headers={"X:A": "1"}),
    "empty name": result(headers={"": "1"}),
    "CRLF in a cookie": result(cookies=["a=1\r\nSet-Cookie: admin=1"]),
    "NUL in a cookie": result(cookies=["a=\u00001"]),
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_responses_are_502_with_a_one_line_reason(payload: bytes) -> None:
    response = http_response_from_result(payload)
    assert (response.status, response.body) == (502, BAD_GATEWAY)
    assert response.problem is not None
    assert "\r" not in response.problem and "\n" not in response.problem


def test_statuses_200_to_599_and_digit_strings_pass() -> None:
    for status in (200, 204, 301, 404, 599, "201"):
        assert http_response_from_result(result(statusCode=status)).status == int(status)


def test_result_nested_past_pythons_limit() -> None:
    deep = b"[" * 5000 + b"]" * 5000
    assert http_response_from_result(deep).status == 200
    assert http_response_from_result(b'{"statusCode":' + deep + b"}").status == 502
    assert http_response_from_result(deep[:-1]).status == 502


# -- through kfaas dev -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with dev_server([FUNCTIONS]) as server:
        yield server


def ask(connection: http.client.HTTPConnection, response: Any) -> http.client.HTTPResponse:
    """Make the `respond` function answer with ``response`` (its HTTP API 2.0 result)."""
    connection.request("POST", "/fn/default/respond/", json.dumps({"response": response}))
    reply = connection.getresponse()
    reply.body = reply.read()  # type: ignore[attr-defined]
    return reply


def test_clients_always_get_a_complete_answer(dev: DevServer) -> None:
    """Every shape on one keep-alive connection, each followed by a well-formed call: if one
    answer were mis-framed, the next would read garbage or hang."""
    host, port = dev.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    shapes = [json.loads(payload) for payload in MALFORMED.values()]
    shapes.append({"statusCode": 200, "headers": HOP_BY_HOP, "body": "x" * 10})
    for shape in shapes:
        reply = ask(connection, shape)
        if reply.status == 200:
            assert reply.body == b"x" * 10  # type: ignore[attr-defined]
            assert reply.headers["Content-Length"] == "10"
            for name in HOP_BY_HOP:
                if name not in ("Content-Length", "Connection", "Keep-Alive"):
                    assert name not in reply.headers, name
            assert reply.headers.get("Upgrade") is None
            assert reply.headers.get("Transfer-Encoding") is None
            assert reply.headers.get("Connection", "keep-alive") != "close"
        else:
            assert reply.status == 502, shape
            assert reply.body == BAD_GATEWAY  # type: ignore[attr-defined]
            assert reply.headers["x-amzn-RequestId"]
            assert "stolen" not in str(reply.headers) and "admin" not in str(reply.headers)
        well_formed = ask(connection, {"statusCode": 201, "body": "next"})
        assert (well_formed.status, well_formed.body) == (201, b"next")  # type: ignore[attr-defined]
    connection.close()
    warnings = [
        json.loads(line)
        for line in dev.output().splitlines()
        if line.startswith("{") and "answered 502" in line
    ]
    assert len(warnings) == len(MALFORMED)
    assert all(w["level"] == "warning" and "default/respond" in w["message"] for w in warnings)
    assert "Traceback" not in dev.output()
