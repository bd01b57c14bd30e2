"""CORS on HTTP triggers against a real `kfaas dev`, as a browser meets it (ADR 029).

The header matrix of a function URL: allowed and denied origins (and `*`), methods, request
headers, credentials, max age, exposed headers; a handler that sets CORS headers of its own (they
are dropped: the configuration decides); an OPTIONS that is no preflight (the handler answers);
and preflights to triggers guarded by API keys and JWTs, which carry no credentials and are
answered by the gateway without reaching the handler.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from devserver import DevServer, dev_server

HANDLER_CODE = Path(__file__).parent / "cors_functions"
SITE = "https://app.example.com"
API_KEY = "cors-key-5b1d"

LISTED = {
    "allowOrigins": [SITE, "http://localhost:60905"],
    "allowMethods": ["GET", "POST", "DELETE"],
    "allowHeaders": ["Content-Type", "X-Custom-Header"],
    "exposeHeaders": ["X-Request-Total"],
    "allowCredentials": True,
    "maxAge": 600,
}
OPEN = {"allowOrigins": ["*"], "allowMethods": ["*"], "allowHeaders": ["*"], "maxAge": 86400}


def function(name: str, cors: dict[str, Any] | None, **http: Any) -> dict[str, Any]:
    spec_http: dict[str, Any] = {"enabled": True, **http}
    if cors is not None:
        spec_http["cors"] = cors
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"path": str(HANDLER_CODE)},
            "http": spec_http,
        },
    }


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder = tmp_path_factory.mktemp("cors")
    (folder / "keys.txt").write_text(f"{API_KEY}\n")
    jwt = {"issuer": "https://idp.example", "audiences": ["api"], "jwksUrl": "http://127.0.0.1:9/"}
    functions = [
        function("listed", LISTED),
        function("open", OPEN),
        function("bare", None),
        function("keyed", LISTED, auth="API_KEY", apiKey={"file": "keys.txt"}),
        function("bearer", LISTED, auth="JWT", jwt=jwt),
    ]
    (folder / "functions.yaml").write_text(yaml.safe_dump_all(functions))
    with dev_server([folder]) as server:
        yield server


def call(
    dev: DevServer, method: str, name: str, headers: dict[str, str]
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request with exactly these headers (urllib would add and fold some)."""
    url = urllib.parse.urlsplit(dev.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.request(method, f"/fn/default/{name}/items", headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.headers, reply.read()
    finally:
        connection.close()


def cors_headers(headers: http.client.HTTPMessage) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in headers.items():
        if name.lower().startswith("access-control-"):
            found.setdefault(name.lower(), []).append(value)
    return found


def preflight(origin: str, method: str, request_headers: str | None = None) -> dict[str, str]:
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if request_headers is not None:
        headers["Access-Control-Request-Headers"] = request_headers
    return headers


# -- preflights -----------------------------------------------------------------------------------


def test_an_allowed_preflight_is_answered_by_the_gateway(dev: DevServer) -> None:
    status, headers, body = call(
        dev, "OPTIONS", "listed", preflight(SITE, "POST", "content-type,x-custom-header")
    )
    assert (status, body) == (200, b"")
    assert cors_headers(headers) == {
        "access-control-allow-origin": [SITE],
        "access-control-allow-methods": ["GET, POST, DELETE"],
        "access-control-allow-headers": ["Content-Type, X-Custom-Header"],
        "access-control-allow-credentials": ["true"],
        "access-control-max-age": ["600"],
    }
    assert headers["Vary"] == "Origin"
    assert headers["x-amzn-RequestId"]


@pytest.mark.parametrize(
    "request_headers",
    [
        preflight("https://evil.example.com", "POST"),
        preflight("https://app.example.com:444", "POST"),
        preflight(SITE, "PATCH"),
        preflight(SITE, "POST", "content-type, x-not-listed"),
    ],
    ids=["origin", "port", "method", "header"],
)
def test_a_refused_preflight_has_no_cors_header_and_no_handler(
    dev: DevServer, request_headers: dict[str, str]
) -> None:
    status, headers, body = call(dev, "OPTIONS", "listed", request_headers)
    assert (status, body) == (200, b"")  # the handler would have answered a JSON body
    assert cors_headers(headers) == {}


def test_header_names_and_origins_match_ignoring_case(dev: DevServer) -> None:
    origin = "HTTP://LOCALHOST:60905"
    _, headers, _ = call(dev, "OPTIONS", "listed", preflight(origin, "GET", "X-CUSTOM-HEADER"))
    assert cors_headers(headers)["access-control-allow-origin"] == [origin]


def test_wildcards_allow_any_origin_method_and_header(dev: DevServer) -> None:
    status, headers, _ = call(
        dev, "OPTIONS", "open", preflight("https://any.example", "PATCH", "authorization,x-a")
    )
    assert status == 200
    assert cors_headers(headers) == {
        "access-control-allow-origin": ["*"],
        "access-control-allow-methods": ["PATCH"],
        "access-control-allow-headers": ["authorization, x-a"],
        "access-control-max-age": ["86400"],
    }
    assert "Vary" not in headers


@pytest.mark.parametrize("name", ["keyed", "bearer"])
def test_preflights_to_guarded_triggers_need_no_credentials(dev: DevServer, name: str) -> None:
    status, headers, body = call(dev, "OPTIONS", name, preflight(SITE, "POST", "content-type"))
    assert (status, body) == (200, b"")
    assert cors_headers(headers)["access-control-allow-origin"] == [SITE]
    # The actual request still needs them; its refusal is readable by the page.
    status, headers, body = call(dev, "POST", name, {"Origin": SITE})
    assert status == 401
    assert json.loads(body) == {"message": "Unauthorized"}
    assert cors_headers(headers)["access-control-allow-origin"] == [SITE]


# -- actual requests ------------------------------------------------------------------------------


def test_an_allowed_origin_gets_the_configured_headers_not_the_handlers(dev: DevServer) -> None:
    status, headers, body = call(dev, "POST", "listed", {"Origin": SITE})
    assert status == 200
    assert json.loads(body) == {"method": "POST"}
    assert cors_headers(headers) == {
        "access-control-allow-origin": [SITE],
        "access-control-allow-credentials": ["true"],
        "access-control-expose-headers": ["X-Request-Total"],
    }
    assert headers["x-request-total"] == "7"
    assert headers["Vary"] == "Origin"


def test_an_api_key_request_from_an_allowed_origin(dev: DevServer) -> None:
    status, headers, body = call(dev, "GET", "keyed", {"Origin": SITE, "x-api-key": API_KEY})
    assert (status, json.loads(body)) == (200, {"method": "GET"})
    assert cors_headers(headers)["access-control-allow-origin"] == [SITE]


@pytest.mark.parametrize(
    "request_headers", [{"Origin": "https://evil.example.com"}, {}], ids=["denied", "none"]
)
def test_a_denied_or_absent_origin_gets_no_cors_header_at_all(
    dev: DevServer, request_headers: dict[str, str]
) -> None:
    # The handler still runs (CORS is the browser's guard, not auth), but its own
    # Access-Control-* headers cannot widen what the configuration allows.
    status, headers, body = call(dev, "GET", "listed", request_headers)
    assert (status, json.loads(body)) == (200, {"method": "GET"})
    assert cors_headers(headers) == {}


def test_an_options_that_is_no_preflight_reaches_the_handler(dev: DevServer) -> None:
    status, headers, body = call(dev, "OPTIONS", "listed", {"Origin": SITE})
    assert (status, json.loads(body)) == (200, {"method": "OPTIONS"})
    assert cors_headers(headers)["access-control-allow-origin"] == [SITE]


def test_without_a_configuration_nothing_changes(dev: DevServer) -> None:
    status, headers, body = call(dev, "OPTIONS", "bare", preflight(SITE, "POST"))
    assert (status, json.loads(body)) == (200, {"method": "OPTIONS"})
    # The handler's own headers pass as they always did.
    assert cors_headers(headers)["access-control-allow-origin"] == [
        "https://handler-chosen.example"
    ]


# -- hostile inputs -------------------------------------------------------------------------------


def test_a_huge_origin_is_not_reflected(dev: DevServer) -> None:
    origin = "https://" + "a" * 7000 + ".example.com"
    status, headers, _ = call(dev, "OPTIONS", "listed", preflight(origin, "GET"))
    assert status == 200
    assert cors_headers(headers) == {}
    status, headers, _ = call(dev, "GET", "listed", {"Origin": origin})
    assert status == 200
    assert cors_headers(headers) == {}
    assert len(str(headers)) < 2000


def test_a_hostile_request_headers_list_is_refused(dev: DevServer) -> None:
    many = ",".join(f"x-h{n}" for n in range(150))
    _, headers, _ = call(dev, "OPTIONS", "open", preflight(SITE, "GET", many))
    assert cors_headers(headers) == {}
