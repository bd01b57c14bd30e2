"""The boundary encoder, the head parser and the JSON checks as pure functions (issue 8, 1 and 3).

Property tests (hypothesis) state the contract of the gateway → runtime encoding: for any header
value, either ``kfaas.wire`` refuses it or the bytes parse back through the runtime's own HTTP/1.1
server to exactly one request carrying the same values; any body round-trips.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from typing import cast

import pytest
from aiohttp.client_exceptions import ClientConnectionResetError
from aiohttp.http_exceptions import BadHttpMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfaas import jsontext, wire
from kfaas.gateway import api
from kfaas.gateway.errors import InvalidRequestContent
from kfaas.gateway.refusals import Refusals
from kfaas.runtime import http11

PROPERTIES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# -- encoder ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "a\r\nb",
        "a\nb",
        "a\rb",
        "a\0b",
        "{}\r\n\r\nPOST / HTTP/1.1",
        "\x7f",
        "\x1b[31m",
        " x",
        "x\t",
        "日本",
        "caf\xe9",
    ],
)
def test_encoder_refuses_what_is_structure_or_not_ascii(value: str) -> None:
    with pytest.raises(wire.HeaderError):
        wire.encode_header("X-Value", value)


@pytest.mark.parametrize("name", ["", "X Value", "X:Value", "X\r\nInjected", "Ä", "X\0"])
def test_encoder_refuses_names_that_are_not_tokens(name: str) -> None:
    with pytest.raises(wire.HeaderError):
        wire.encode_header(name, "v")


def test_encoder_writes_one_line() -> None:
    assert wire.encode_header("Lambda-Runtime-Trace-Id", "Root=1-a;Sampled=1") == (
        b"Lambda-Runtime-Trace-Id: Root=1-a;Sampled=1\r\n"
    )
    assert wire.encode_header("X-Empty", "") == b"X-Empty: \r\n"


@pytest.mark.parametrize(
    "head",
    [
        b"POST /invoke HTTP/1.1\r\nA: 1\nB: 2",  # bare LF
        b"POST /invoke HTTP/1.1\r\nA: 1\rB: 2",  # bare CR
        b"POST /invoke HTTP/1.1\r\nA: 1\0",  # NUL
        b"POST /invoke HTTP/1.1\r\nA: 1\r\n  folded",  # obs-fold
        b"POST /invoke HTTP/1.1\r\nA : 1",  # whitespace before the colon
        b"POST /invoke HTTP/1.1\r\n: 1",  # no name
        b"POST /invoke HTTP/1.1\r\nno colon",
        b"POST /invoke HTTP/1.1\r\n\r\nA: 1",  # an empty line inside the head
    ],
)
def test_parser_refuses_ambiguous_heads(head: bytes) -> None:
    with pytest.raises(wire.FramingError):
        wire.parse_head(head)


@pytest.mark.parametrize(
    "line",
    [
        b"POST  /invoke HTTP/1.1",
        b"POST /invoke HTTP/2.0",
        b"POST invoke HTTP/1.1",
        b"P\x00ST / HTTP/1.1",
        b"POST /a b HTTP/1.1",
        b"POST /invoke HTTP/1.1 ",
        b"",
        b"GET http://x/ HTTP/1.1",
    ],
)
def test_request_line_is_strict(line: bytes) -> None:
    with pytest.raises(wire.FramingError):
        wire.parse_request_line(line)


@pytest.mark.parametrize(
    "fields",
    [
        [("content-length", "1"), ("content-length", "1")],
        [("content-length", "1"), ("content-length", "2")],
        [("content-length", "1"), ("transfer-encoding", "chunked")],
        [("content-length", "+1")],
        [("content-length", "1,1")],
        [("content-length", "0x10")],
        [("content-length", "")],
        [("content-length", "1" * 19)],
    ],
)
def test_content_length_must_be_unambiguous(fields: wire.Fields) -> None:
    with pytest.raises(wire.FramingError):
        wire.content_length(fields)


# -- the property: encoded requests parse back as exactly one request -------------------------


class _Capture:
    """A transport for the runtime's HttpProtocol that records what it writes."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


async def _parse_through_runtime(data: bytes) -> tuple[list[http11.Request], _Capture]:
    seen: list[http11.Request] = []

    async def handler(request: http11.Request) -> http11.Response:
        seen.append(request)
        return http11.Response(200, b"ok")

    protocol = http11.HttpProtocol(handler, 8 * 1024 * 1024, lambda exc: None)
    transport = _Capture()
    protocol.connection_made(cast(asyncio.BaseTransport, transport))
    protocol.data_received(data)
    for _ in range(5):
        await asyncio.sleep(0)
    return seen, transport


header_text = st.text(st.characters(codec="utf-8"), max_size=40)
header_names = st.sampled_from(
    [
        "Lambda-Runtime-Client-Context",
        "Lambda-Runtime-Trace-Id",
        "traceparent",
        "tracestate",
        "X-Amz-Log-Type",
        "Lambda-Runtime-Aws-Request-Id",
    ]
)


@PROPERTIES
@given(values=st.dictionaries(header_names, header_text, max_size=6), body=st.binary(max_size=300))
async def test_encoded_requests_parse_back_exactly(values: dict[str, str], body: bytes) -> None:
    try:
        head = wire.encode_request_head(
            "POST", "/invoke", {"Host": "h:1", "Content-Length": str(len(body)), **values}
        )
    except wire.HeaderError:
        assert any(not wire.is_header_value(value) for value in values.values())
        return
    seen, transport = await _parse_through_runtime(head + body)
    assert len(seen) == 1 and not transport.closed
    request = seen[0]
    assert request.body == body
    for name, value in values.items():
        assert request.headers[name.lower()] == value
    assert set(request.headers) == {"host", "content-length", *(n.lower() for n in values)}


@PROPERTIES
@given(value=st.text(max_size=60))
def test_a_value_is_refused_or_free_of_structure(value: str) -> None:
    try:
        line = wire.encode_header("X-Value", value)
    except wire.HeaderError:
        return
    assert line.count(b"\r\n") == 1 and line.endswith(b"\r\n")
    assert b"\0" not in line and b"\n" not in line[:-1] and b"\r" not in line[:-2]


@PROPERTIES
@given(data=st.binary(max_size=200))
async def test_arbitrary_bytes_give_at_most_one_request(data: bytes) -> None:
    """Whatever arrives on a connection, the runtime serves at most one request per answer."""
    seen, transport = await _parse_through_runtime(b"POST /invoke HTTP/1.1\r\n" + data)
    assert len(seen) <= 1
    if transport.written.startswith(b"HTTP/1.1 400"):
        assert transport.closed and not seen


# -- JSON text --------------------------------------------------------------------------------


def test_deep_json_is_valid_without_recursion() -> None:
    jsontext.check("[" * 100_000 + "]" * 100_000)
    jsontext.check('{"a":' * 50_000 + "[]" + "}" * 50_000)
    jsontext.check("[" * 5000 + '{"k": [1, "x", {}, []]}' + "]" * 5000)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "[" * 100_000 + "]" * 99_999 + "}",
        "[" * 3000 + "1,]" + "]" * 2999,
        '{"a":' * 3000 + "}" * 3000,
        "[" * 3000 + "]" * 3000 + "x",
        "NaN",
        "[Infinity]",
        "",
        "\ufeff{}",
        '"\x01"',
        "[1,]",
        "{,}",
    ],
)
def test_invalid_json_is_refused_at_any_depth(text: str) -> None:
    with pytest.raises(jsontext.InvalidJson):
        jsontext.check(text)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@PROPERTIES
@given(value=json_values, depth=st.integers(0, 2000), indent=st.sampled_from([None, 1, "\r\n"]))
def test_json_check_agrees_with_the_parser(
    value: object, depth: int, indent: int | str | None
) -> None:
    text = "[" * depth + json.dumps(value, indent=indent, ensure_ascii=False) + "]" * depth
    jsontext.check(text)
    compact = jsontext.compact_ascii(text)
    expected = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    assert compact == "[" * depth + expected + "]" * depth
    assert wire.is_header_value(compact)


@PROPERTIES
@given(text=st.text(alphabet='[]{}",:01 ae\\tn', max_size=40))
def test_json_check_agrees_on_junk(text: str) -> None:
    try:
        json.loads(text)
        valid = True
    except ValueError:
        valid = False
    try:
        jsontext.check(text)
        checked = True
    except jsontext.InvalidJson:
        checked = False
    assert checked == valid
    try:
        json.loads("[" + text + "]")
        valid = True
    except ValueError:
        valid = False
    deep = "[" * 1200 + text + "]" * 1200
    try:
        jsontext.check(deep)
        deep_checked = True
    except jsontext.InvalidJson:
        deep_checked = False
    assert deep_checked == valid


def test_client_context_is_re_encoded_as_ascii() -> None:
    text = '{ "custom" :\r\n{"user": "日本", "e": "😀"} }'
    compact = jsontext.compact_ascii(text)
    assert compact == '{"custom":{"user":"\\u65e5\\u672c","e":"\\ud83d\\ude00"}}'
    assert json.loads(compact) == {"custom": {"user": "日本", "e": "😀"}}


# -- refused requests in the log ----------------------------------------------------------------


def _refused_record(message: str) -> logging.LogRecord:
    try:
        raise BadHttpMessage(message)
    except BadHttpMessage:
        info = sys.exc_info()
    return logging.LogRecord(
        "aiohttp.server",
        logging.ERROR,
        __file__,
        1,
        "Error handling request from %s",
        ("10.0.0.9",),
        info,
    )


def test_refused_requests_are_one_rate_limited_warning_line() -> None:
    now = [100.0]
    refusals = Refusals(interval_seconds=10, clock=lambda: now[0])
    record = _refused_record("Invalid header value char:\r\n\r\n    b'x\\x00'\n       ^")
    assert refusals.filter(record)
    assert record.levelno == logging.WARNING and record.exc_info is None
    line = record.getMessage()
    assert "\n" not in line and "\r" not in line
    assert line.startswith("refused a malformed request from 10.0.0.9 with 400: ")
    held = [refusals.filter(_refused_record("again")) for _ in range(5)]
    assert held == [False] * 5
    now[0] += 10
    record = _refused_record("later")
    assert refusals.filter(record)
    assert record.getMessage().endswith("later (5 more since the last report)")


def test_a_client_gone_before_its_answer_is_one_warning_line() -> None:
    try:
        raise ClientConnectionResetError("Cannot write to closing transport")
    except ClientConnectionResetError:
        info = sys.exc_info()
    record = logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
        ("10.0.0.9",), info,
    )  # fmt: skip
    assert Refusals(clock=lambda: 0.0).filter(record)
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == (
        "a client (10.0.0.9) went away before its answer was written: "
        "ClientConnectionResetError: Cannot write to closing transport"
    )


def test_other_records_pass_unchanged() -> None:
    refusals = Refusals(clock=lambda: 0.0)
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "boom", (), None)
    assert refusals.filter(record) and record.levelno == logging.ERROR
    debug = _refused_record("quiet")
    debug.levelno = logging.DEBUG
    assert refusals.filter(debug) and debug.levelno == logging.DEBUG and debug.exc_info


# -- what the gateway forwards -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "forwarded"),
    [
        ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", True),
        ("Root=1-a;Lineage=a87bd80c:1|68fd508a:5", True),
        ("Root=1-a; Sampled=0", True),
        ("Root=日本", False),
        ("Root=1\r\nX: y", False),
        ("Root=1\x00", False),
        ("Root=1 ", False),
        ("", False),
        ("junk", False),
        ("Root=" + "a" * 3000, False),
    ],
)
def test_trace_header_is_forwarded_only_when_readable(value: str, forwarded: bool) -> None:
    assert api._trace_header(value) == (value if forwarded else None)


def test_client_context_is_checked_and_re_encoded() -> None:
    raw = base64.b64encode('{"custom" :\r\n {"user": "日本"}}\r\n\r\n  '.encode()).decode()
    assert api._client_context(raw) == '{"custom":{"user":"\\u65e5\\u672c"}}'
    for bad in (b'{"a": "\xff"}', b"{}\r\n\r\nPOST / HTTP/1.1", b"", b"[1,]"):
        with pytest.raises(InvalidRequestContent):
            api._client_context(base64.b64encode(bad).decode())
    with pytest.raises(InvalidRequestContent):
        api._client_context("not base64!")


async def test_payload_check_accepts_any_depth_and_refuses_the_rest() -> None:
    for payload in (b"[" * 100_000 + b"]" * 100_000, b"[" * 30 + b"]" * 30, b"  ", b'"x"'):
        assert await api._check_json(payload) in (payload, b"{}")
    for bad in (b"[" * 100_000, b'{"a": "\xff"}', '{"a": 1}'.encode("utf-16"), b"[NaN]"):
        with pytest.raises(InvalidRequestContent):
            await api._check_json(bad)
