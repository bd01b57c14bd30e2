"""HTTP trigger auth end to end: API keys and JWTs against a real `kfaas dev`, attacked.

Keys are made here with cryptography; a JWKS is served from a tiny HTTP server on 127.0.0.1 that
counts its requests; the handler (trigger_functions/echo.py) answers with the ``requestContext``
it received, so each test sees exactly what a function would. Refusals must be API Gateway's
401/403 JSON answers, whatever the attack, and never reach the handler or cost a 5xx.
"""

from __future__ import annotations

import datetime
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from devserver import DevServer, dev_server
from security.jwt_keys import (
    AUDIENCE,
    ISSUER,
    Keys,
    es256,
    hs256_with_public_key,
    rs256,
    tampered,
    unsigned,
)

HANDLER_CODE = Path(__file__).parent / "trigger_functions"
API_KEYS = ["key-current-4f9a1c", "key-previous-77b0e2"]


class Jwks:
    """A JWKS endpoint on 127.0.0.1 that counts how often the gateway fetched it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def function(name: str, **http: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "runtime": "python3.11",
            "handler": "echo.handler",
            "code": {"path": str(HANDLER_CODE)},
            "http": {"enabled": True, **http},
        },
    }


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


@pytest.fixture(scope="module")
def jwks(keys: Keys) -> Iterator[Jwks]:
    server = Jwks(keys.jwks())
    yield server
    server.close()


@pytest.fixture(scope="module")
def dev(keys: Keys, jwks: Jwks, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder = tmp_path_factory.mktemp("trigger-auth")
    (folder / "api-keys.txt").write_text(f"# rotated monthly\n{API_KEYS[0]}\n\n{API_KEYS[1]}\n")
    (folder / "ec-public.pem").write_text(keys.ec_pem())
    jwt_config = {"issuer": ISSUER, "audiences": [AUDIENCE, "api://other"]}
    functions = [
        function("open"),
        function("keyed", auth="API_KEY", apiKey={"file": "api-keys.txt"}),
        function("keyed-in-cluster", auth="API_KEY", apiKey={"secretRef": {"name": "keys"}}),
        function("bearer", auth="JWT", jwt={**jwt_config, "jwksUrl": jwks.url}),
        function("bearer-pem", auth="JWT", jwt={**jwt_config, "keys": {"file": "ec-public.pem"}}),
        function("scoped", auth="JWT", jwt={**jwt_config, "jwksUrl": jwks.url,
                                            "scopes": ["orders:admin", "orders:write"]}),
        function("admins", auth="JWT", jwt={**jwt_config, "jwksUrl": jwks.url,
                                            "scopes": ["orders:admin"]}),
    ]  # fmt: skip
    (folder / "functions.yaml").write_text(yaml.safe_dump_all(functions))
    with dev_server([folder]) as server:
        yield server


def call(
    dev: DevServer, name: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, Any, Any]:
    request = urllib.request.Request(
        f"{dev.url}/fn/default/{name}/orders?id=1",
        data=body,
        method="POST" if body else "GET",
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.headers, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def raw(dev: DevServer, head: bytes) -> int:
    """Send a hand-written request head; the status code, or 0 when the server just closed."""
    host, port = dev.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head)
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def assert_unauthorized(reply: tuple[int, Any, Any], challenge: str | None = None) -> None:
    status, headers, body = reply
    assert (status, body) == (401, {"message": "Unauthorized"})
    if challenge is not None:
        assert challenge in headers["www-authenticate"], headers.get("www-authenticate")


# -- NONE and API_KEY ------------------------------------------------------------------------


def test_open_trigger_has_no_authorizer(dev: DevServer) -> None:
    status, _, body = call(dev, "open")
    assert status == 200
    assert "authorizer" not in body["requestContext"]


def test_each_valid_api_key_passes(dev: DevServer) -> None:
    for key in API_KEYS:
        status, _, body = call(dev, "keyed", {"x-api-key": key}, b'{"order": 1}')
        assert status == 200
        assert body["body"] == '{"order": 1}'


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": ""},
        {"x-api-key": "key-current-4f9a1"},
        {"x-api-key": API_KEYS[0] + "x"},
        {"x-api-key": API_KEYS[0].upper()},
        {"x-api-key": "# rotated monthly"},
        {"X-Api-Key-Extra": API_KEYS[0]},
        {"authorization": f"Bearer {API_KEYS[0]}"},
        {"x-api-key": "k" * 6000},
    ],
    ids=["missing", "empty", "prefix", "longer", "case", "comment-line", "other-header",
         "as-bearer", "huge"],
)  # fmt: skip
def test_wrong_api_keys_are_401(dev: DevServer, headers: dict[str, str]) -> None:
    assert_unauthorized(call(dev, "keyed", headers))


def test_two_api_key_headers_are_refused(dev: DevServer) -> None:
    head = (
        "GET /fn/default/keyed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"x-api-key: wrong\r\nx-api-key: {API_KEYS[0]}\r\n\r\n"
    ).encode()
    assert raw(dev, head) == 401


@pytest.mark.parametrize(
    "value",
    [b"\rkey", b"\nkey", b"\r\nx-api-key: other", b"\x00", b"\r\n two", b"\xff\xfe"],
    ids=["cr", "lf", "crlf-second-key", "nul", "folded", "latin1"],
)
def test_api_keys_with_control_bytes_never_pass(dev: DevServer, value: bytes) -> None:
    head = (
        b"GET /fn/default/keyed HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-api-key: "
        + API_KEYS[0].encode()
        + value
        + b"\r\n\r\n"
    )
    status = raw(dev, head)
    assert status in (0, 400, 401), status
    # The server is still healthy for the next caller.
    assert call(dev, "keyed", {"x-api-key": API_KEYS[0]})[0] == 200


def test_secret_references_are_not_resolved_by_kfaas_dev(dev: DevServer) -> None:
    for _ in range(3):
        assert_unauthorized(call(dev, "keyed-in-cluster", {"x-api-key": API_KEYS[0]}))
    # Said once (rate-limited), naming the function and what to do instead.
    assert dev.output().count("Secret and ConfigMap references are read in a cluster only") == 1
    assert "default/keyed-in-cluster" in dev.output()


# -- JWT -------------------------------------------------------------------------------------


def test_rs256_token_from_the_jwks_reaches_the_handler_with_its_claims(
    dev: DevServer, keys: Keys
) -> None:
    token = rs256(keys.rsa, aud=[AUDIENCE, "extra"], groups=["ops", "dev"])
    status, _, body = call(dev, "bearer", {"authorization": f"Bearer {token}"})
    assert status == 200
    jwt = body["requestContext"]["authorizer"]["jwt"]
    assert jwt["claims"]["sub"] == "alice"
    assert jwt["claims"]["iss"] == ISSUER
    assert jwt["claims"]["aud"] == f"[{AUDIENCE} extra]"
    assert jwt["claims"]["groups"] == "[ops dev]"
    assert jwt["claims"]["exp"].isdigit()
    assert jwt["scopes"] == ["orders:read", "orders:write"]
    # The real peer: aws-lambda-powertools reads it as an API Gateway HTTP API event.
    event = APIGatewayProxyEventV2(
        {"version": "2.0", "rawPath": "/orders", "requestContext": body["requestContext"]}
    )
    assert event.request_context.authorizer.jwt_claim["sub"] == "alice"
    assert event.request_context.authorizer.jwt_scopes == ["orders:read", "orders:write"]


def test_es256_token_and_pem_keys_from_a_file(dev: DevServer, keys: Keys) -> None:
    status, _, body = call(dev, "bearer-pem", {"authorization": es256(keys.ec, kid=None)})
    assert status == 200
    assert body["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "alice"
    assert_unauthorized(
        call(dev, "bearer-pem", {"authorization": f"Bearer {rs256(keys.rsa)}"}), "invalid_token"
    )


ATTACKS: dict[str, Callable[[Keys], str]] = {
    "alg-none": lambda k: unsigned(),
    "hs256-public-key-as-secret": lambda k: hs256_with_public_key(k.rsa_pem()),
    "expired": lambda k: rs256(k.rsa, exp=int(time.time()) - 3600),
    "nbf-in-future": lambda k: rs256(k.rsa, nbf=int(time.time()) + 3600),
    "wrong-issuer": lambda k: rs256(k.rsa, iss="https://evil.example"),
    "wrong-audience": lambda k: rs256(k.rsa, aud="api://someone-else"),
    "no-exp": lambda k: rs256(k.rsa, exp=None),
    "wrong-key-same-kid": lambda k: rs256(k.attacker),
    "es256-under-rsa-kid": lambda k: es256(k.ec, kid="rsa-1"),
    "tampered-payload": lambda k: tampered(rs256(k.rsa), sub="admin"),
    "tampered-expiry": lambda k: tampered(rs256(k.rsa, exp=1), exp=2**31),
    "garbage": lambda k: "not-a-token",
    "three-dots-of-garbage": lambda k: "e30.e30.e30",
    "bad-base64": lambda k: "!!!.???.***",
    "oversized": lambda k: "a" * 3000 + "." + "b" * 3000 + "." + "c" * 1500,
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_tokens_are_401_with_a_bearer_challenge(
    dev: DevServer, keys: Keys, attack: str
) -> None:
    token = ATTACKS[attack](keys)
    assert_unauthorized(
        call(dev, "bearer", {"authorization": f"Bearer {token}"}), 'error="invalid_token"'
    )


def test_missing_or_empty_token_is_401(dev: DevServer) -> None:
    for headers in ({}, {"authorization": ""}, {"authorization": "Bearer "}):
        assert_unauthorized(call(dev, "bearer", headers), "Bearer")


def test_a_header_too_large_to_parse_is_a_client_error(dev: DevServer) -> None:
    head = (
        b"GET /fn/default/bearer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"authorization: Bearer " + b"a" * 100_000 + b"\r\n\r\n"
    )
    assert raw(dev, head) in (0, 400, 431)


def test_unknown_key_ids_do_not_flood_the_jwks(dev: DevServer, keys: Keys, jwks: Jwks) -> None:
    call(dev, "bearer", {"authorization": rs256(keys.rsa)})  # the keys are cached now
    before = jwks.fetches
    for number in range(30):
        forged = rs256(keys.attacker, kid=f"rotated-{number}")
        assert_unauthorized(call(dev, "bearer", {"authorization": forged}), "invalid_token")
    assert jwks.fetches - before <= 1


def test_scopes_authorize_after_authentication(dev: DevServer, keys: Keys) -> None:
    token = rs256(keys.rsa)  # orders:read orders:write
    assert call(dev, "scoped", {"authorization": token})[0] == 200
    status, headers, body = call(dev, "admins", {"authorization": token})
    assert (status, body) == (403, {"message": "Forbidden"})
    assert 'error="insufficient_scope"' in headers["www-authenticate"]
    assert 'scope="orders:admin"' in headers["www-authenticate"]
    assert_unauthorized(call(dev, "admins", {"authorization": unsigned()}))


# -- AWS_IAM ---------------------------------------------------------------------------------

IAM_CREDENTIALS = {
    "credentials": [
        {"accessKeyId": "AKIDALICE", "secretAccessKey": "alice-secret", "user": "alice",
         "groups": ["web-callers"]},
        {"accessKeyId": "AKIDMALLORY", "secretAccessKey": "mallory-secret", "user": "mallory"},
    ],
    "rules": [{"groups": ["web-callers"], "namespaces": ["default"], "verbs": ["invoke"]}],
}  # fmt: skip


@pytest.fixture(scope="module")
def iam_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder = tmp_path_factory.mktemp("trigger-iam")
    (folder / "functions.yaml").write_text(yaml.safe_dump(function("signed", auth="AWS_IAM")))
    (folder / "credentials.yaml").write_text(json.dumps(IAM_CREDENTIALS))
    with dev_server(
        [folder / "functions.yaml"], args=["--credentials", str(folder / "credentials.yaml")]
    ) as server:
        yield server


def signed_call(
    dev: DevServer,
    key: tuple[str, str],
    *,
    service: str = "lambda",
    when: datetime.datetime | None = None,
    body: bytes = b'{"order": 7}',
) -> tuple[int, Any, Any]:
    url = f"{dev.url}/fn/default/signed/orders?id=7"
    request = AWSRequest("POST", url, data=body, headers={"content-type": "application/json"})
    moment = when or datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
        SigV4Auth(Credentials(*key), service, "eu-west-1").add_auth(request)
    return call_url(url, dict(request.headers.items()), body)


def call_url(url: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, Any]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.headers, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def test_sigv4_caller_allowed_invoke_reaches_the_handler(iam_dev: DevServer) -> None:
    status, _, body = signed_call(iam_dev, ("AKIDALICE", "alice-secret"))
    assert status == 200, body
    assert body["body"] == '{"order": 7}'
    iam = body["requestContext"]["authorizer"]["iam"]
    assert iam["accessKey"] == "AKIDALICE"
    assert iam["userId"] == iam["callerId"] == "alice"


def test_sigv4_caller_without_invoke_is_403(iam_dev: DevServer) -> None:
    status, _, body = signed_call(iam_dev, ("AKIDMALLORY", "mallory-secret"))
    assert (status, body) == (403, {"message": "Forbidden"})


@pytest.mark.parametrize(
    "attempt",
    ["unsigned", "wrong-secret", "unknown-key", "expired", "other-service", "body-swapped"],
)
def test_bad_signatures_are_401(iam_dev: DevServer, attempt: str) -> None:
    alice = ("AKIDALICE", "alice-secret")
    if attempt == "unsigned":
        reply = call_url(f"{iam_dev.url}/fn/default/signed/orders", {}, b"{}")
    elif attempt == "wrong-secret":
        reply = signed_call(iam_dev, ("AKIDALICE", "guess"))
    elif attempt == "unknown-key":
        reply = signed_call(iam_dev, ("AKIDNOBODY", "x"))
    elif attempt == "expired":
        stale = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(
            hours=1
        )
        reply = signed_call(iam_dev, alice, when=stale)
    elif attempt == "other-service":
        reply = signed_call(iam_dev, alice, service="execute-api")
    else:
        url = f"{iam_dev.url}/fn/default/signed/orders?id=7"
        request = AWSRequest("POST", url, data=b'{"order": 7}', headers={})
        SigV4Auth(Credentials(*alice), "lambda", "eu-west-1").add_auth(request)
        reply = call_url(url, dict(request.headers.items()), b'{"order": 8}')
    assert_unauthorized(reply)


def test_aws_iam_without_gateway_credentials_is_refused(tmp_path: Path) -> None:
    # `kfaas dev` without --credentials has no one to check a signature against: it fails closed.
    folder = tmp_path / "fns"
    folder.mkdir()
    (folder / "f.yaml").write_text(yaml.safe_dump(function("signed", auth="AWS_IAM")))
    with dev_server([folder]) as server:
        status, _, body = signed_call(server, ("AKIDALICE", "alice-secret"))
        assert (status, body) == (403, {"message": "Forbidden"})
        assert "auth AWS_IAM needs the gateway started with --auth sigv4" in server.output()
