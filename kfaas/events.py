"""The JSON shapes handlers and clients see, built exactly as AWS builds them.

Unmodified Lambda handlers (and libraries like aws-lambda-powertools) parse these payloads, so they
must match AWS field for field: the API Gateway HTTP API payload 2.0 for HTTP triggers and its
response format, Lambda's invocation record for async destinations, and the error body botocore
reads for API errors. These are pure functions from plain values to TypedDicts; the gateway and the
dispatcher own the I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict
from urllib.parse import parse_qsl

from kfaas import jsontext

# -- HTTP API payload 2.0: the event ---------------------------------------------------------


class HttpDescription(TypedDict):
    method: str
    path: str
    protocol: str
    sourceIp: str
    userAgent: str


class JwtAuthorizer(TypedDict):
    # Every claim as API Gateway passes it: a string (lists as "[a b]").
    claims: dict[str, str]
    scopes: list[str] | None


class IamAuthorizer(TypedDict):
    accessKey: str
    accountId: str
    callerId: str
    cognitoIdentity: None
    principalOrgId: None
    userArn: str
    userId: str


class HttpAuthorizer(TypedDict, total=False):
    """`requestContext.authorizer` of payload 2.0: one member, named for the authorizer type."""

    jwt: JwtAuthorizer
    iam: IamAuthorizer


class HttpRequestContext(TypedDict):
    accountId: str
    apiId: str
    authorizer: NotRequired[HttpAuthorizer]
    domainName: str
    domainPrefix: str
    http: HttpDescription
    requestId: str
    routeKey: str
    stage: str
    time: str
    timeEpoch: int


class HttpApiEvent(TypedDict):
    version: Literal["2.0"]
    routeKey: str
    rawPath: str
    rawQueryString: str
    cookies: NotRequired[list[str]]
    headers: dict[str, str]
    queryStringParameters: NotRequired[dict[str, str]]
    pathParameters: NotRequired[dict[str, str]]
    requestContext: HttpRequestContext
    body: NotRequired[str]
    isBase64Encoded: bool


# AWS answers "anonymous" for the account of an unauthenticated function URL call.
ANONYMOUS_ACCOUNT = "anonymous"
API_ID = "kfaas"

_TEXT_TYPES = (
    "application/json",
    "application/javascript",
    "application/xml",
    "application/yaml",
    "application/x-yaml",
    "application/graphql",
)


def _is_textual(content_type: str | None) -> bool:
    """Whether API Gateway would pass a body of this type as text rather than base64."""
    if content_type is None:
        return True
    media = content_type.split(";")[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def _request_time(now_ms: int) -> str:
    # API Gateway's CLF-style timestamp, e.g. "12/Mar/2020:19:03:58 +0000".
    return datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def http_api_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str,
    route_key: str = "$default",
    stage: str = "$default",
    request_id: str,
    domain_name: str,
    path_parameters: dict[str, str] | None = None,
    authorizer: HttpAuthorizer | None = None,
    now_ms: int,
) -> HttpApiEvent:
    """Build the HTTP API payload 2.0 event for one request, as a function URL would."""
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "cookie":
            # Cookies travel in their own list, not in headers.
            cookies.extend(part for part in value.split("; ") if part)
        elif lower in joined:
            joined[lower] = f"{joined[lower]},{value}"
        else:
            joined[lower] = value

    event: HttpApiEvent = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": joined,
        "requestContext": {
            "accountId": ANONYMOUS_ACCOUNT,
            "apiId": API_ID,
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": stage,
            "time": _request_time(now_ms),
            "timeEpoch": now_ms,
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        parameters: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            parameters[key] = f"{parameters[key]},{value}" if key in parameters else value
        event["queryStringParameters"] = parameters
    if path_parameters is not None:
        event["pathParameters"] = path_parameters
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    if body:
        text = _as_text(body) if _is_textual(joined.get("content-type")) else None
        if text is None:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return event


def _as_text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


# -- HTTP API payload 2.0: the response ------------------------------------------------------


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    problem: str | None = field(default=None, compare=False)
    """Why a 502 was answered for the function's result, in one line for the gateway's log."""


_JSON = "application/json"
# Framing and hop-by-hop headers belong to the gateway's own connection to its client: a function
# that set them could mis-frame the answer for every proxy in front (API Gateway drops them too).
_HOP_BY_HOP = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"}
)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS_DIGITS = re.compile(r"[0-9]{3}")


class _Malformed(ValueError):
    pass


def _header_value(value: Any) -> str:
    # JSON spelling for non-strings, so `true` stays `true` rather than Python's `True`.
    return value if isinstance(value, str) else json.dumps(value)


def http_response_from_result(payload: bytes) -> HttpResponse:
    """Turn a handler's result into the HTTP response API Gateway would send.

    A JSON object with `statusCode` is the 2.0 response format; any other JSON value is a 200
    `application/json` response with the payload as its body; anything else is a 502, as API
    Gateway answers a malformed integration response, with the reason in `problem`: a status
    outside 200-599, a header name that is not a token, a header or cookie value with a control
    character (CR, LF, NUL...). Framing and hop-by-hop headers are dropped.
    """
    try:
        result = json.loads(payload)
    except RecursionError:
        # Too deep for Python's parser: valid JSON that is not an object is still passed on.
        if not _is_json(payload) or payload.lstrip().startswith(b"{"):
            return _bad_gateway("result nested too deeply to read a statusCode")
        return HttpResponse(200, [("content-type", _JSON)], payload)
    except (ValueError, UnicodeDecodeError):
        return _bad_gateway("result is not JSON")
    if not isinstance(result, dict) or "statusCode" not in result:
        return HttpResponse(200, [("content-type", _JSON)], payload)
    try:
        return _formatted_response(result)
    except _Malformed as exc:
        return _bad_gateway(str(exc))
    except (TypeError, ValueError, AttributeError, binascii.Error) as exc:
        return _bad_gateway(f"malformed response: {type(exc).__name__}: {str(exc)[:120]!r}")


def _is_json(payload: bytes) -> bool:
    try:
        jsontext.check(payload.decode("utf-8"))
    except ValueError:
        return False
    return True


def _bad_gateway(problem: str) -> HttpResponse:
    return HttpResponse(
        502, [("content-type", _JSON)], b'{"message":"Internal Server Error"}', problem
    )


def _status(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        status = value
    elif isinstance(value, str) and _STATUS_DIGITS.fullmatch(value):
        status = int(value)
    else:
        raise _Malformed(f"statusCode {str(value)[:40]!r} is not an integer")
    if not 200 <= status <= 599:
        raise _Malformed(f"statusCode {status} is outside 200-599")
    return status


def _checked_header(name: Any, value: Any) -> tuple[str, str] | None:
    """The header as sent, None for one the gateway drops, ``_Malformed`` for one it cannot send."""
    name, text = str(name), _header_value(value)
    if not _HEADER_NAME.fullmatch(name):
        raise _Malformed(f"header name {name[:60]!r} is not a token")
    if _CONTROL.search(text):
        raise _Malformed(f"header {name[:60]} has a control character: {text[:60]!r}")
    lower = name.lower()
    if lower in _HOP_BY_HOP or lower.startswith("proxy-"):
        return None
    return name, text


def _formatted_response(result: dict[str, Any]) -> HttpResponse:
    status = _status(result["statusCode"])
    pairs: list[tuple[Any, Any]] = list((result.get("headers") or {}).items())
    for name, values in (result.get("multiValueHeaders") or {}).items():
        pairs.extend((name, value) for value in values)
    pairs.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or [])
    headers = [header for name, value in pairs if (header := _checked_header(name, value))]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("content-type", _JSON))
    raw = result.get("body")
    if raw is None:
        body = b""
    elif not isinstance(raw, str):
        # API Gateway wants a string; a handler returning an object means that object as JSON.
        body = json.dumps(raw).encode()
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw, validate=True)
    else:
        body = raw.encode()
    return HttpResponse(status, headers, body)


# -- Async invocation records ----------------------------------------------------------------


class InvocationRequestContext(TypedDict):
    requestId: str
    functionArn: str
    condition: Literal["Success", "RetriesExhausted", "EventAgeExceeded"]
    approximateInvokeCount: int


class InvocationResponseContext(TypedDict):
    statusCode: int
    executedVersion: str
    functionError: NotRequired[str]


class InvocationRecord(TypedDict):
    version: Literal["1.0"]
    timestamp: str
    requestContext: InvocationRequestContext
    requestPayload: Any
    responseContext: InvocationResponseContext
    responsePayload: Any


def iso_timestamp(moment: datetime) -> str:
    """Lambda's record timestamp: UTC, milliseconds, `Z` (naive datetimes are taken as UTC)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def invocation_record(
    *,
    request_id: str,
    function_arn: str,
    condition: Literal["Success", "RetriesExhausted", "EventAgeExceeded"],
    approximate_invoke_count: int,
    request_payload: Any,
    status_code: int,
    function_error: str | None,
    response_payload: Any,
    timestamp: datetime,
    executed_version: str = "$LATEST",
) -> InvocationRecord:
    """The record Lambda sends to an async invocation's onSuccess/onFailure destination."""
    response_context: InvocationResponseContext = {
        "statusCode": status_code,
        "executedVersion": executed_version,
    }
    if function_error is not None:
        response_context["functionError"] = function_error
    return {
        "version": "1.0",
        "timestamp": iso_timestamp(timestamp),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": approximate_invoke_count,
        },
        "requestPayload": request_payload,
        "responseContext": response_context,
        "responsePayload": response_payload,
    }


# -- API errors ------------------------------------------------------------------------------


def api_error_body(error_type: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an Invoke API error; send `error_type` as `x-amzn-ErrorType` too.

    botocore reads the code from the header (else `__type`) and the message from `message` or
    `Message`; modeled members such as `Reason` go in `extra`.
    """
    return {"Type": "User", "message": message, "Message": message, "__type": error_type, **extra}
