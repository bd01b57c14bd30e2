"""CORS as function URLs do it (ADR 029): pure decisions, the model's rules, the gateway app.

The decisions are checked as configuration + request headers → response headers; the model as
manifest → accepted or refused with the field named; the gateway in-process with an instance
backend that records demand, which shows a preflight never reaches the invoker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from kfaas.backends import EndpointsListener
from kfaas.config import Settings
from kfaas.gateway.app import create_app
from kfaas.gateway.cors import (
    allowed_origin,
    is_preflight,
    preflight_headers,
    response_headers,
    without_cors,
)
from kfaas.gateway.registry import FunctionRegistry
from kfaas.manifests import Cors, Function, ManifestError, parse_manifest

SITE = "https://app.example.com"


def cors(**fields: Any) -> Cors:
    return Cors.model_validate(fields)


LISTED = cors(
    allowOrigins=[SITE, "http://localhost:8080"],
    allowMethods=["GET", "POST"],
    allowHeaders=["Content-Type", "X-Custom"],
    exposeHeaders=["X-Request-Total"],
    allowCredentials=True,
    maxAge=300,
)
OPEN = cors(allowOrigins=["*"], allowMethods=["*"], allowHeaders=["*"])


def named(headers: list[tuple[str, str]]) -> dict[str, str]:
    assert len({name.lower() for name, _ in headers}) == len(headers), headers
    return {name.lower(): value for name, value in headers}


# -- which requests are preflights ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "origins", "requested", "expected"),
    [
        ("OPTIONS", [SITE], ["POST"], True),
        ("OPTIONS", [SITE], [], False),  # an OPTIONS of the function's own
        ("OPTIONS", [], ["POST"], False),
        ("GET", [SITE], ["POST"], False),
    ],
)
def test_a_preflight_is_options_with_origin_and_request_method(
    method: str, origins: list[str], requested: list[str], expected: bool
) -> None:
    assert is_preflight(method, origins, requested) is expected


# -- preflight answers ----------------------------------------------------------------------------


def test_an_allowed_preflight_gets_the_configuration() -> None:
    headers = named(preflight_headers(LISTED, [SITE], ["POST"], ["content-type, x-custom"]))
    assert headers == {
        "access-control-allow-origin": SITE,
        "access-control-allow-methods": "GET, POST",
        "access-control-allow-headers": "Content-Type, X-Custom",
        "access-control-allow-credentials": "true",
        "access-control-max-age": "300",
        "vary": "Origin",
    }


@pytest.mark.parametrize(
    ("origins", "method", "requested"),
    [
        (["https://evil.example.com"], "POST", []),  # origin not listed
        (["https://app.example.com:8443"], "POST", []),  # another port is another origin
        (["http://app.example.com"], "POST", []),  # another scheme too
        (["https://app.example.com/"], "POST", []),  # a path is no origin
        (["null"], "POST", []),  # an opaque origin
        ([SITE, SITE], "POST", []),  # two Origin headers
        ([SITE], "DELETE", []),  # method not allowed
        ([SITE], "POST", ["x-other"]),  # header not allowed
        ([SITE], "POST", ["content-type, x-other"]),  # one of them not allowed
        ([SITE], "POST", ["bad header"]),  # not a token
        ([SITE], "PO ST", []),
    ],
)
def test_a_refused_preflight_gets_no_cors_header(
    origins: list[str], method: str, requested: list[str]
) -> None:
    assert preflight_headers(LISTED, origins, [method], requested) == [("Vary", "Origin")]


def test_origins_methods_and_header_names_match_ignoring_case() -> None:
    headers = named(
        preflight_headers(LISTED, ["HTTPS://APP.Example.com"], ["post"], ["CONTENT-TYPE"])
    )
    # The request's own spelling is what the browser compares with.
    assert headers["access-control-allow-origin"] == "HTTPS://APP.Example.com"
    assert headers["access-control-allow-methods"] == "GET, POST"


def test_wildcards_answer_star_for_origins_and_name_what_was_asked_for() -> None:
    headers = named(
        preflight_headers(OPEN, ["https://any.example"], ["PATCH"], ["authorization, x-a"])
    )
    # `*` does not cover Authorization in a browser: the requested names are echoed instead.
    assert headers == {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "PATCH",
        "access-control-allow-headers": "authorization, x-a",
        "access-control-max-age": "0",
    }


def test_no_requested_headers_and_none_configured_sends_no_allow_headers() -> None:
    config = cors(allowOrigins=[SITE], allowMethods=["GET"])
    headers = named(preflight_headers(config, [SITE], ["GET"], []))
    assert "access-control-allow-headers" not in headers
    assert headers["access-control-max-age"] == "0"
    assert "access-control-allow-credentials" not in headers


def test_an_empty_configuration_allows_no_preflight() -> None:
    assert preflight_headers(Cors(), [SITE], ["GET"], []) == [("Vary", "Origin")]


def test_many_origins_are_matched() -> None:
    origins = [f"https://site{n}.example.com" for n in range(100)]
    config = cors(allowOrigins=origins, allowMethods=["GET"])
    assert allowed_origin(config, ["https://site99.example.com"]) == "https://site99.example.com"
    assert allowed_origin(config, ["https://site100.example.com"]) is None


# -- actual responses -----------------------------------------------------------------------------


def test_an_allowed_origin_gets_origin_credentials_and_exposed_headers() -> None:
    assert named(response_headers(LISTED, [SITE])) == {
        "access-control-allow-origin": SITE,
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "X-Request-Total",
        "vary": "Origin",
    }


def test_a_denied_origin_or_none_gets_only_vary() -> None:
    assert response_headers(LISTED, ["https://evil.example.com"]) == [("Vary", "Origin")]
    assert response_headers(LISTED, []) == [("Vary", "Origin")]
    assert response_headers(OPEN, []) == []
    assert response_headers(OPEN, ["https://any.example"]) == [("Access-Control-Allow-Origin", "*")]


def test_the_functions_own_cors_headers_are_dropped_whatever_their_case() -> None:
    returned = [
        ("access-control-allow-origin", "*"),
        ("Access-Control-Allow-Credentials", "true"),
        ("ACCESS-CONTROL-EXPOSE-HEADERS", "x-secret"),
        ("content-type", "text/plain"),
        ("X-Access-Control-Note", "kept"),
    ]
    assert without_cors(returned) == [
        ("content-type", "text/plain"),
        ("X-Access-Control-Note", "kept"),
    ]


# -- hostile inputs -------------------------------------------------------------------------------


def test_hostile_origins_are_never_reflected() -> None:
    for origin in [
        SITE + "\r\nSet-Cookie: a=1",
        SITE + "\n",
        SITE + "\x00",
        "https://" + "a" * 100_000 + ".example.com",
        SITE + ".evil.com",
        "evil" + SITE,
    ]:
        assert allowed_origin(LISTED, [origin]) is None
        assert preflight_headers(LISTED, [origin], ["GET"], []) == [("Vary", "Origin")]


def test_hostile_request_methods_and_headers_are_refused() -> None:
    assert preflight_headers(OPEN, [SITE], ["GET\r\nX: 1"], []) == []
    assert preflight_headers(OPEN, [SITE], ["GET"], ["x-a\r\nSet-Cookie: a=1"]) == []
    assert preflight_headers(OPEN, [SITE], ["GET"], ["x" * 2000]) == []
    assert preflight_headers(OPEN, [SITE], ["GET"], [",".join(["x-a"] * 101)]) == []
    assert preflight_headers(OPEN, [SITE], ["GET", "POST"], []) == []


_TOKEN_CHARS = "!#$%&'*+.^_`|~-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@given(
    origin=st.text(max_size=300),
    method=st.text(max_size=20),
    requested=st.lists(st.text(max_size=40), max_size=3),
)
def test_no_answer_carries_a_character_a_header_line_treats_as_structure(
    origin: str, method: str, requested: list[str]
) -> None:
    for config in (LISTED, OPEN):
        for _, value in preflight_headers(config, [origin], [method], requested) + (
            response_headers(config, [origin])
        ):
            assert not set(value) & {"\r", "\n", "\x00"}, value
            assert len(value) < 110_000


@given(name=st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=40))
def test_every_token_is_an_allowed_header_name(name: str) -> None:
    assert cors(allowHeaders=[name], exposeHeaders=[name]).allow_headers == [name]


# -- the model: Lambda's limits and grammar -------------------------------------------------------


def function_doc(**http: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "web"},
        "spec": {
            "runtime": "python3.12",
            "handler": "app.handler",
            "code": {"image": "x:1"},
            "http": {"enabled": True, **http},
        },
    }


@pytest.mark.parametrize(
    "config",
    [
        {"allowOrigins": ["*"], "allowMethods": ["*"], "allowHeaders": ["*"], "maxAge": 86400},
        {"allowOrigins": ["https://a.example", "http://localhost:60905", "http://[::1]:3000"]},
        {"allowOrigins": ["https://a.example"], "allowCredentials": True},
        {"allowMethods": ["GET", "PUT", "HEAD", "POST", "PATCH", "DELETE"]},
        {"exposeHeaders": ["Date", "Keep-Alive", "X-Custom-Header"]},
    ],
)
def test_lambdas_examples_are_accepted(config: dict[str, Any]) -> None:
    assert isinstance(parse_manifest(function_doc(cors=config)), Function)


@pytest.mark.parametrize(
    ("config", "field", "says"),
    [
        ({"allowOrigins": ["https://a.example/path"]}, "allowOrigins[0]", "scheme://host"),
        ({"allowOrigins": ["a.example"]}, "allowOrigins[0]", "scheme://host"),
        ({"allowOrigins": ["https://a.example\r\nX: 1"]}, "allowOrigins[0]", "scheme://host"),
        ({"allowOrigins": [f"https://s{n}.example" for n in range(101)]}, "allowOrigins", "100"),
        ({"allowMethods": ["get"]}, "allowMethods[0]", "GET"),
        ({"allowMethods": ["OPTIONS"]}, "allowMethods[0]", "GET"),
        ({"allowMethods": ["GET"] * 7}, "allowMethods", "6"),
        ({"allowHeaders": ["x custom"]}, "allowHeaders[0]", "header name"),
        ({"exposeHeaders": ["x:custom"]}, "exposeHeaders[0]", "header name"),
        ({"allowHeaders": ["x" * 1025]}, "allowHeaders[0]", "1024"),
        ({"maxAge": 86401}, "maxAge", "86400"),
        ({"maxAge": -1}, "maxAge", "0"),
        ({"allowOrigins": ["*"], "allowCredentials": True}, "cors", "not *"),
        ({"allowOrigin": ["*"]}, "allowOrigin", ""),
    ],
)
def test_values_lambda_refuses_are_refused_naming_the_field(
    config: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ManifestError) as refused:
        parse_manifest(function_doc(cors=config))
    message = str(refused.value)
    assert f"spec.http.cors.{field}" in message or field == "cors", message
    assert "spec.http.cors" in message and says in message, message


# -- the gateway app ------------------------------------------------------------------------------


class CountingBackend:
    """No instance ever starts; an invocation shows up as demand."""

    def __init__(self) -> None:
        self.demand_reports: list[tuple[str, int]] = []

    def subscribe(self, listener: EndpointsListener) -> None:
        pass

    def demand(self, function_key: str, concurrency: int) -> None:
        self.demand_reports.append((function_key, concurrency))


def gateway_function(name: str, **http: Any) -> Function:
    return Function.model_validate(
        {
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "runtime": "python3.11",
                "handler": "app.handler",
                "code": {"inline": {"app.py": "def handler(e, c):\n    return 0\n"}},
                "http": {"enabled": True, **http},
            },
        }
    )


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[TestServer, CountingBackend]]:
    keys = tmp_path / "keys.txt"
    keys.write_text("the-key\n")
    config = LISTED.model_dump(by_alias=True)
    registry = FunctionRegistry()
    registry.put(gateway_function("open", cors=config))
    registry.put(gateway_function("keyed", cors=config, auth="API_KEY", apiKey={"file": str(keys)}))
    registry.put(gateway_function("plain"))
    backend = CountingBackend()
    server = TestServer(create_app(registry, backend, Settings(), max_wait_seconds=0.2))
    await server.start_server()
    yield server, backend
    await server.close()


PREFLIGHT = {"Origin": SITE, "Access-Control-Request-Method": "POST"}


@pytest.mark.parametrize("name", ["open", "keyed"])
async def test_the_gateway_answers_preflights_before_auth_without_invoking(
    gateway: tuple[TestServer, CountingBackend], name: str
) -> None:
    server, backend = gateway
    async with aiohttp.ClientSession() as session:
        async with session.options(
            server.make_url(f"/fn/default/{name}/x"), headers=PREFLIGHT
        ) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == SITE
            assert r.headers["Access-Control-Max-Age"] == "300"
            assert r.headers["x-amzn-RequestId"]
            assert await r.read() == b""
        denied = {**PREFLIGHT, "Origin": "https://evil.example.com"}
        async with session.options(server.make_url(f"/fn/default/{name}"), headers=denied) as r:
            assert r.status == 200
            assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    assert backend.demand_reports == []


async def test_a_refusal_carries_cors_headers_so_the_page_can_read_it(
    gateway: tuple[TestServer, CountingBackend],
) -> None:
    server, backend = gateway
    url = server.make_url("/fn/default/keyed")
    async with aiohttp.ClientSession() as session, session.post(url, headers={"Origin": SITE}) as r:
        assert r.status == 401
        assert r.headers["Access-Control-Allow-Origin"] == SITE
        assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert backend.demand_reports == []


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("plain", PREFLIGHT),  # no CORS configuration: OPTIONS is the function's
        ("open", {"Origin": SITE}),  # an OPTIONS that is not a preflight
    ],
)
async def test_other_options_requests_go_to_the_function(
    gateway: tuple[TestServer, CountingBackend], name: str, headers: dict[str, str]
) -> None:
    server, backend = gateway
    url = server.make_url(f"/fn/default/{name}")
    async with aiohttp.ClientSession() as session, session.options(url, headers=headers) as r:
        await r.read()
    assert backend.demand_reports and backend.demand_reports[0][0] == f"default/{name}"


async def test_an_error_answer_of_the_invocation_carries_cors_headers(
    gateway: tuple[TestServer, CountingBackend],
) -> None:
    # No instance ever starts here: the invocation ends in the gateway's own error answer.
    server, backend = gateway
    url = server.make_url("/fn/default/open")
    async with aiohttp.ClientSession() as session, session.get(url, headers={"Origin": SITE}) as r:
        assert r.status >= 400
        assert r.headers["x-amzn-ErrorType"]
        assert r.headers["Access-Control-Allow-Origin"] == SITE
        assert r.headers["Vary"] == "Origin"
    assert backend.demand_reports
