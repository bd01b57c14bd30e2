"""Event shapes as AWS builds them, judged by aws-lambda-powertools where it can parse them."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.shared.cookies import Cookie
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

from kfaas.events import (
    HttpApiEvent,
    HttpResponse,
    api_error_body,
    http_api_event,
    http_response_from_result,
    invocation_record,
)

NOW_MS = 1584039838123  # 2020-03-12T19:03:58.123Z


def request(
    *,
    method: str = "GET",
    path: str = "/",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> HttpApiEvent:
    return http_api_event(
        method=method,
        raw_path=path,
        raw_query=query,
        headers=headers or [],
        body=body,
        source_ip="10.0.0.7",
        request_id="req-1",
        domain_name="gw.example.com",
        path_parameters={"proxy": path.lstrip("/")} if path != "/" else None,
        now_ms=NOW_MS,
    )


class TestHttpApiEvent:
    def test_powertools_reads_every_field(self) -> None:
        event = request(
            method="post",
            path="/items/7",
            query="a=1&a=2&empty=&sp=x%20y",
            headers=[
                ("Content-Type", "application/json"),
                ("User-Agent", "curl/8"),
                ("X-Many", "1"),
                ("x-many", "2"),
                ("Cookie", "s=1; t=2"),
            ],
            body=b'{"n": 1}',
        )
        parsed = APIGatewayProxyEventV2(dict(event))
        assert parsed.version == "2.0"
        assert parsed.route_key == "$default"
        assert parsed.raw_path == "/items/7"
        assert parsed.raw_query_string == "a=1&a=2&empty=&sp=x%20y"
        assert parsed.query_string_parameters == {"a": "1,2", "empty": "", "sp": "x y"}
        assert parsed.path_parameters == {"proxy": "items/7"}
        assert parsed.cookies == ["s=1", "t=2"]
        assert parsed.headers["x-many"] == "1,2"
        assert "cookie" not in parsed.headers
        assert parsed.json_body == {"n": 1}
        assert parsed.is_base64_encoded is False
        context = parsed.request_context
        assert context.account_id == "anonymous"
        assert context.domain_name == "gw.example.com"
        assert context.domain_prefix == "gw"
        assert context.http.method == "POST"
        assert context.http.path == "/items/7"
        assert context.http.protocol == "HTTP/1.1"
        assert context.http.source_ip == "10.0.0.7"
        assert context.http.user_agent == "curl/8"
        assert context.request_id == "req-1"
        assert context.stage == "$default"
        assert context.time == "12/Mar/2020:19:03:58 +0000"
        assert context.time_epoch == NOW_MS

    def test_powertools_parser_model_validates_it(self) -> None:
        model = parse(event=dict(request(body=b"hi")), model=APIGatewayProxyEventV2Model)
        assert model.requestContext.timeEpoch == datetime.fromtimestamp(NOW_MS / 1000, UTC)
        assert model.body == "hi"

    def test_no_query_and_no_body_leave_their_fields_out(self) -> None:
        event = request()
        assert "queryStringParameters" not in event
        assert "body" not in event
        assert "cookies" not in event
        assert "pathParameters" not in event
        assert event["requestContext"]["http"]["userAgent"] == ""

    @pytest.mark.parametrize(
        ("content_type", "body", "encoded"),
        [
            (None, b"plain", False),
            ("text/plain; charset=utf-8", "héllo".encode(), False),
            ("application/json", b"{}", False),
            ("application/vnd.api+json", b"{}", False),
            ("application/xml", b"<a/>", False),
            ("application/octet-stream", b"bytes", True),
            ("image/png", b"\x89PNG", True),
            ("application/x-www-form-urlencoded", b"a=1", True),
            (None, b"\xff\xfe", True),
            ("text/plain", b"\xff", True),
        ],
    )
    def test_body_is_text_or_base64(
        self, content_type: str | None, body: bytes, encoded: bool
    ) -> None:
        headers = [("content-type", content_type)] if content_type else []
        event = request(method="POST", headers=headers, body=body)
        assert event["isBase64Encoded"] is encoded
        if encoded:
            assert base64.b64decode(event["body"]) == body
        else:
            assert APIGatewayProxyEventV2(dict(event)).decoded_body == body.decode()


app = APIGatewayHttpResolver()


@app.get("/hello/<name>")
def hello(name: str) -> dict[str, Any]:
    return {"hello": name, "query": app.current_event.query_string_parameters}


@app.get("/image")
def image() -> Response[bytes]:
    return Response(
        status_code=201,
        content_type="image/png",
        body=b"\x89PNG\x00",
        cookies=[Cookie("a", "1"), Cookie("b", "2")],
        headers={"x-trace": "t"},
    )


def through_powertools(event: HttpApiEvent) -> HttpResponse:
    result = app.resolve(dict(event), None)  # type: ignore[arg-type]
    return http_response_from_result(json.dumps(result).encode())


class TestHttpResponse:
    def test_powertools_json_route(self) -> None:
        response = through_powertools(request(path="/hello/bob", query="x=1"))
        assert response.status == 200
        assert ("Content-Type", "application/json") in response.headers
        assert json.loads(response.body) == {"hello": "bob", "query": {"x": "1"}}

    def test_powertools_binary_route_with_cookies(self) -> None:
        response = through_powertools(request(path="/image"))
        assert response.status == 201
        assert response.body == b"\x89PNG\x00"
        assert ("Content-Type", "image/png") in response.headers
        assert ("x-trace", "t") in response.headers
        cookies = [value for name, value in response.headers if name == "set-cookie"]
        assert cookies == ["a=1; Secure", "b=2; Secure"]

    def test_powertools_not_found(self) -> None:
        assert through_powertools(request(path="/nope")).status == 404

    @pytest.mark.parametrize("payload", [b'"hello"', b"42", b'{"a": 1}', b"[1, 2]", b"null"])
    def test_json_without_status_code_is_200_json_as_received(self, payload: bytes) -> None:
        assert http_response_from_result(payload) == HttpResponse(
            200, [("content-type", "application/json")], payload
        )

    def test_status_code_without_content_type_defaults_to_json(self) -> None:
        response = http_response_from_result(b'{"statusCode": 204}')
        assert response == HttpResponse(204, [("content-type", "application/json")], b"")

    def test_header_values_are_stringified_and_multi_value_headers_kept(self) -> None:
        payload = {
            "statusCode": "200",
            "headers": {"content-type": "text/plain", "x-n": 5, "x-b": True},
            "multiValueHeaders": {"x-m": ["1", "2"]},
            "body": "ok",
        }
        response = http_response_from_result(json.dumps(payload).encode())
        assert response.status == 200
        assert response.headers == [
            ("content-type", "text/plain"),
            ("x-n", "5"),
            ("x-b", "true"),
            ("x-m", "1"),
            ("x-m", "2"),
        ]
        assert response.body == b"ok"

    def test_base64_body_is_decoded(self) -> None:
        payload = {
            "statusCode": 200,
            "body": base64.b64encode(b"\x00\x01").decode(),
            "isBase64Encoded": True,
        }
        assert http_response_from_result(json.dumps(payload).encode()).body == b"\x00\x01"

    @pytest.mark.parametrize(
        "payload",
        [
            b"not json",
            b"\xff",
            b"",
            b'{"statusCode": "abc"}',
            b'{"statusCode": 99}',
            b'{"statusCode": true}',
            b'{"statusCode": 200, "body": "%%%", "isBase64Encoded": true}',
            b'{"statusCode": 200, "headers": ["x"]}',
        ],
    )
    def test_malformed_results_are_502(self, payload: bytes) -> None:
        assert http_response_from_result(payload) == HttpResponse(
            502, [("content-type", "application/json")], b'{"message":"Internal Server Error"}'
        )


class TestInvocationRecord:
    def test_failure_record_is_lambdas(self) -> None:
        record = invocation_record(
            request_id="r-1",
            function_arn="arn:aws:lambda:us-east-1:media:function:fn",
            condition="RetriesExhausted",
            approximate_invoke_count=3,
            request_payload={"key": "value"},
            status_code=200,
            function_error="Unhandled",
            response_payload={"errorMessage": "boom", "errorType": "Exception"},
            timestamp=datetime(2019, 11, 24, 21, 52, 47, 333_999, tzinfo=UTC),
        )
        assert record == {
            "version": "1.0",
            "timestamp": "2019-11-24T21:52:47.333Z",
            "requestContext": {
                "requestId": "r-1",
                "functionArn": "arn:aws:lambda:us-east-1:media:function:fn",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3,
            },
            "requestPayload": {"key": "value"},
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {"errorMessage": "boom", "errorType": "Exception"},
        }

    @pytest.mark.parametrize(
        "moment",
        [
            datetime(2020, 1, 1, 12, 0, 0, 5000),
            datetime(2020, 1, 1, 14, 0, 0, 5000, tzinfo=timezone(timedelta(hours=2))),
        ],
    )
    def test_success_record_has_no_function_error_and_utc_time(self, moment: datetime) -> None:
        record = invocation_record(
            request_id="r",
            function_arn="arn",
            condition="Success",
            approximate_invoke_count=1,
            request_payload=None,
            status_code=200,
            function_error=None,
            response_payload="ok",
            timestamp=moment,
        )
        assert "functionError" not in record["responseContext"]
        assert record["timestamp"] == "2020-01-01T12:00:00.005Z"


def test_api_error_body_carries_what_botocore_reads() -> None:
    body = api_error_body(
        "TooManyRequestsException", "Rate exceeded", Reason="ConcurrentInvocationLimitExceeded"
    )
    assert body == {
        "Type": "User",
        "message": "Rate exceeded",
        "Message": "Rate exceeded",
        "__type": "TooManyRequestsException",
        "Reason": "ConcurrentInvocationLimitExceeded",
    }
