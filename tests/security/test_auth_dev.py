"""`kfaas dev --credentials FILE`: SigV4 on the Invoke API and RBAC-shaped rules, judged by boto3,
the AWS CLI and `kfaas invoke` signing real requests, and by raw sockets sending hostile ones."""

from __future__ import annotations

import datetime
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from devserver import KFAAS, DevServer, dev_server

AWS = str(Path(sys.executable).with_name("aws"))
KEYS = {
    "alice": ("AKIDALICE", "alice-secret"),
    "bob": ("AKIDBOB", "bob-secret"),
    "carol": ("AKIDCAROL", "carol-secret"),
}
CREDENTIALS = {
    "credentials": [
        {"accessKeyId": "AKIDALICE", "secretAccessKey": "alice-secret", "user": "alice",
         "groups": ["team-a"]},
        {"accessKeyId": "AKIDBOB", "secretAccessKey": "bob-secret", "user": "bob"},
        {"accessKeyId": "AKIDCAROL", "secretAccessKey": "carol-secret", "user": "carol"},
    ],
    "rules": [
        {"groups": ["team-a"], "namespaces": ["team-a"], "verbs": ["invoke", "get", "list"]},
        {"users": ["bob"], "namespaces": ["team-b"], "verbs": ["*"]},
        {"users": ["carol"], "namespaces": ["*"], "verbs": ["list"]},
    ],
}  # fmt: skip


def _function(namespace: str, name: str) -> str:
    return f"""\
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  runtime: python3.11
  handler: app.echo
  code: {{path: ./src}}
  environment: {{DB_PASSWORD: {namespace}-password}}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("auth-dev")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("def echo(event, context):\n    return event\n")
    docs = [_function("team-a", "echo"), _function("team-b", "echo")]
    (root / "functions.yaml").write_text("---\n".join(docs))
    (root / "credentials.yaml").write_text(json.dumps(CREDENTIALS))
    return root


@pytest.fixture(scope="module")
def dev(project: Path) -> Iterator[DevServer]:
    with dev_server(
        [project / "functions.yaml"], args=["--credentials", str(project / "credentials.yaml")]
    ) as server:
        yield server


def client(dev: DevServer, who: str | None, *, secret: str | None = None) -> Any:
    if who is None:
        return boto3.client(
            "lambda", endpoint_url=dev.url, region_name="us-east-1",
            config=Config(signature_version=UNSIGNED, retries={"max_attempts": 0}),
        )  # fmt: skip
    key, real_secret = KEYS.get(who, (who, "x"))
    return boto3.client(
        "lambda", endpoint_url=dev.url, region_name="eu-central-1",
        aws_access_key_id=key, aws_secret_access_key=secret or real_secret,
        config=Config(retries={"max_attempts": 0}),
    )  # fmt: skip


def refused(call: Any, **params: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    error = caught.value.response
    return (
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Code"],
        str(error["Error"]["Message"]),
    )


def test_the_right_key_invokes(dev: DevServer) -> None:
    answer = client(dev, "alice").invoke(FunctionName="team-a/echo", Payload=b'{"who": "alice"}')
    assert answer["StatusCode"] == 200
    assert json.loads(answer["Payload"].read()) == {"who": "alice"}
    arn = "arn:aws:lambda:us-east-1:team-a:function:echo"
    unicode = json.dumps("日本", ensure_ascii=False).encode()
    answer = client(dev, "alice").invoke(FunctionName=arn, Qualifier="$LATEST", Payload=unicode)
    assert answer["StatusCode"] == 200 and json.loads(answer["Payload"].read()) == "日本"


def test_authentication_failures_are_the_errors_boto3_models(dev: DevServer) -> None:
    invoke = {"FunctionName": "team-a/echo", "Payload": b"{}"}
    assert refused(client(dev, "alice", secret="wrong").invoke, **invoke)[:2] == (
        403, "InvalidSignatureException",
    )  # fmt: skip
    assert refused(client(dev, "AKIDNOBODY").invoke, **invoke) == (
        403, "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )  # fmt: skip
    assert refused(client(dev, None).invoke, **invoke) == (
        403, "MissingAuthenticationTokenException", "Missing Authentication Token",
    )  # fmt: skip
    stale = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(minutes=6)
    with mock.patch("botocore.auth.get_current_datetime", return_value=stale):
        status, code, message = refused(client(dev, "alice").invoke, **invoke)
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith(f"Signature expired: {stale:%Y%m%dT%H%M%SZ} is now earlier than")


def test_another_namespace_is_access_denied(dev: DevServer) -> None:
    status, code, message = refused(
        client(dev, "alice").invoke, FunctionName="team-b/echo", Payload=b"{}"
    )
    assert (status, code) == (403, "AccessDeniedException")
    assert message == (
        "User: alice is not authorized to perform: lambda:InvokeFunction on resource: "
        "arn:aws:lambda:us-east-1:team-b:function:echo because no identity-based "
        "policy allows the lambda:InvokeFunction action"
    )
    # The same answer whether or not the function exists: no probing other namespaces.
    assert refused(client(dev, "alice").invoke, FunctionName="team-b/nope")[1] == (
        "AccessDeniedException"
    )
    assert refused(client(dev, "carol").get_function, FunctionName="team-a/echo")[1] == (
        "AccessDeniedException"
    )
    assert client(dev, "bob").invoke(FunctionName="team-b/echo")["StatusCode"] == 200


def test_list_functions_shows_the_namespaces_a_caller_may_list(dev: DevServer) -> None:
    def listed(who: str) -> dict[str, Any]:
        functions = client(dev, who).list_functions()["Functions"]
        return {_key(f["FunctionArn"]): f.get("Environment") for f in functions}

    assert listed("alice") == {"team-a/echo": {"Variables": {"DB_PASSWORD": "team-a-password"}}}
    assert listed("bob") == {"team-b/echo": {"Variables": {"DB_PASSWORD": "team-b-password"}}}
    # carol may list everywhere but get nowhere: no environment values.
    assert listed("carol") == {"team-a/echo": None, "team-b/echo": None}
    configuration = client(dev, "alice").get_function_configuration(FunctionName="team-a/echo")
    assert configuration["Environment"]["Variables"] == {"DB_PASSWORD": "team-a-password"}


def _aws_cli(dev: DevServer, who: str, secret: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ, "AWS_ACCESS_KEY_ID": KEYS[who][0], "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "ap-south-1", "AWS_MAX_ATTEMPTS": "1",
    }  # fmt: skip
    return subprocess.run(
        [AWS, "lambda", "invoke", "--endpoint-url", dev.url, "--function-name", "team-a/echo",
         "--payload", '{"from": "cli"}', str(out)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_aws_cli_signs_and_is_checked(dev: DevServer, tmp_path: Path) -> None:
    ok = _aws_cli(dev, "alice", "alice-secret", tmp_path / "out.json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "out.json").read_text()) == {"from": "cli"}
    bad = _aws_cli(dev, "alice", "not-the-secret", tmp_path / "bad.json")
    assert bad.returncode != 0 and "InvalidSignatureException" in bad.stderr
    denied = _aws_cli(dev, "carol", "carol-secret", tmp_path / "denied.json")
    assert denied.returncode != 0 and "AccessDeniedException" in denied.stderr


def test_kfaas_invoke_signs_with_the_aws_variables(dev: DevServer) -> None:
    argv = [KFAAS, "invoke", "team-a/echo", "--payload", '{"k": 1}', "--endpoint", dev.url]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    signed = subprocess.run(
        argv, env={**clean, "AWS_ACCESS_KEY_ID": "AKIDALICE", "AWS_SECRET_ACCESS_KEY": "alice-secret"},  # noqa: E501
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert signed.returncode == 0 and json.loads(signed.stdout) == {"k": 1}, signed.stderr
    unsigned = subprocess.run(argv, env=clean, capture_output=True, text=True, timeout=60)
    assert unsigned.returncode == 2 and "MissingAuthenticationTokenException" in unsigned.stderr


def raw_request(dev: DevServer, head: bytes, body: bytes = b"", *, wait: float = 10) -> bytes:
    """Send bytes as they are and read the answer until the server stops sending."""
    host, port = dev.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < answer.index(b"\r\n\r\n") + 4:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def _head(*lines: str, path: str = "/2015-03-31/functions/team-a%2Fecho/invocations") -> bytes:
    host = "127.0.0.1"
    text = "\r\n".join([f"POST {path} HTTP/1.1", f"Host: {host}", *lines, "", ""])
    return text.encode("utf-8", "surrogateescape")


def status_and_type(answer: bytes) -> tuple[int, str]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
    lowered = {k.lower(): v for k, v in headers.items()}
    return int(head[0].split()[1]), lowered.get("x-amzn-errortype", "")


SCOPE = "AKIDALICE/20261129/us-east-1/lambda/aws4_request"
DATED = "X-Amz-Date: 20261129T102000Z"
ZEROS = "0" * 64


def _sigv4(credential: str = SCOPE) -> str:
    return f"Authorization: AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, " + (
        f"Signature={ZEROS}"
    )


MISSING = (403, "MissingAuthenticationTokenException")
UNRECOGNIZED = (403, "UnrecognizedClientException")
INCOMPLETE = (400, "IncompleteSignatureException")
INVALID = (403, "InvalidSignatureException")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], MISSING),
        (["Authorization: Bearer not-a-token"], UNRECOGNIZED),
        (["Authorization: Bearer " + "x" * 7000], UNRECOGNIZED),
        (["Authorization: AWS4-HMAC-SHA256 Credential=" + "A" * 7000], INCOMPLETE),
        ([_sigv4(SCOPE.replace("lambda", "sts")), DATED], INVALID),
        ([_sigv4("AKIDALICE/garbage/../../x"), DATED], INVALID),
        ([_sigv4("AKIDALICE/garbage"), DATED], INCOMPLETE),
        ([_sigv4(), DATED], INVALID),
        ([_sigv4(), "Authorization: Bearer x", DATED], INCOMPLETE),
        ([_sigv4("\udcff\udcfe"), DATED], INCOMPLETE),
    ],
)
def test_hostile_authorization_is_refused_without_reading_the_body(
    dev: DevServer, lines: list[str], expected: tuple[int, str]
) -> None:
    # A 5 MB body is announced but never sent: the answer comes from the headers alone.
    answer = raw_request(dev, _head(*lines, "Content-Length: 5000000"))
    assert status_and_type(answer) == expected


def test_header_injection_and_oversized_headers_never_reach_the_api(dev: DevServer) -> None:
    injected = raw_request(
        dev, _head("Authorization: Bearer a\rX-Injected: 1", "Content-Length: 0")
    )
    assert status_and_type(injected)[0] == 400
    huge = raw_request(dev, _head("Authorization: Bearer " + "x" * 70000, "Content-Length: 0"))
    assert status_and_type(huge)[0] in (400, 431)
    # The server still serves signed calls afterwards.
    assert client(dev, "alice").invoke(FunctionName="team-a/echo")["StatusCode"] == 200


def test_probes_and_metrics_need_no_signature(dev: DevServer) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        answer = raw_request(dev, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert status_and_type(answer)[0] == 200, path


def test_without_credentials_dev_says_it_is_unauthenticated(project: Path) -> None:
    with dev_server([project / "functions.yaml"]) as server:
        output = server.output()
        assert "auth: none: the Invoke API is UNAUTHENTICATED" in output
        anonymous = client(server, None).invoke(FunctionName="team-a/echo", Payload=b"{}")
        assert anonymous["StatusCode"] == 200


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("credentials: [{accessKeyId: A, user: u}]", "credentials.0.secretAccessKey: Field requ"),
        ("rules: [{users: [u], namespaces: [a], verbs: [steal]}]", "unknown verbs ['steal']"),
        ("rules: [{namespaces: [a], verbs: [get]}]", "a rule needs users or groups"),
        ("credentials: [{accessKeyId: 'A/B', secretAccessKey: s, user: u}]", "accessKeyId"),
        ("credentials: {", "not YAML"),
    ],
)  # fmt: skip
def test_a_bad_credentials_file_is_refused_with_its_field(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    started = time.monotonic()
    done = subprocess.run(
        [KFAAS, "dev", str(tmp_path), "--port", "0", "--credentials", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert str(path) in done.stderr and message in done.stderr
    assert time.monotonic() - started < 30


def test_a_bad_auth_mode_names_the_variable(tmp_path: Path) -> None:
    done = subprocess.run(
        [KFAAS, "dev", str(tmp_path), "--port", "0"], env={**os.environ, "KFAAS_AUTH": "basic"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "kfaas dev: KFAAS_AUTH='basic' must be one of none, sigv4"
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dev", "--auth", "none", "--credentials", "c.yaml"], "--credentials needs --auth sigv4"),
        (["gateway", "--backend", "kubernetes", "--credentials", "c.yaml"],
         "in a cluster credentials are Secrets labelled kfaas.dev/credentials=true"),
        (["dev", "--auth", "basic"], "invalid choice: 'basic'"),
    ],
)  # fmt: skip
def test_contradictory_auth_flags_are_refused(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    (tmp_path / "c.yaml").write_text("credentials: []\n")
    done = subprocess.run(
        [KFAAS, *argv, "--port", "0"], capture_output=True, text=True, timeout=60, check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_presigned_url_reads_a_configuration_until_it_expires(dev: DevServer) -> None:
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{dev.url}/2015-03-31/functions/team-a%2Fecho/configuration?Qualifier=%24LATEST"
    request = AWSRequest("GET", url)
    SigV4QueryAuth(Credentials(*KEYS["alice"]), "lambda", "us-east-1", 60).add_auth(request)
    with urllib.request.urlopen(request.url, timeout=10) as answer:
        assert json.load(answer)["Environment"]["Variables"] == {"DB_PASSWORD": "team-a-password"}
    tampered = request.url.replace("team-a%2Fecho", "team-b%2Fecho")
    with pytest.raises(urllib.error.HTTPError) as refused, urllib.request.urlopen(tampered):
        pass
    with refused.value as error:
        assert error.code == 403
        assert error.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


def test_function_writes_are_authorized_and_uploads_pass_the_signature_check(
    dev: DevServer,
) -> None:
    """RBAC verbs per ADR 024; a zip over the Invoke API's 6 MB limit is read, signed, stored."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("app.py", "def echo(event, context):\n    return event\n")
        archive.writestr("data.bin", os.urandom(7 * 1024 * 1024))
    request = {
        "Role": "arn:aws:iam::123456789012:role/any",
        "Runtime": "python3.11",
        "Handler": "app.echo",
        "Code": {"ZipFile": buffer.getvalue()},
    }
    status, code, message = refused(
        client(dev, "alice").create_function, FunctionName="team-a/made", **request
    )
    assert (status, code) == (403, "AccessDeniedException")
    assert "lambda:CreateFunction" in message
    bob = client(dev, "bob")
    created = bob.create_function(FunctionName="team-b/made", **request)
    try:
        assert created["CodeSize"] == len(buffer.getvalue())
        location = bob.get_function(FunctionName="team-b/made")["Code"]["Location"]
        # The signed URL is its own credential: fetched with none.
        with urllib.request.urlopen(location, timeout=30) as answer:
            assert answer.read() == buffer.getvalue()
        assert refused(
            client(dev, "alice").update_function_configuration,
            FunctionName="team-b/made",
            Timeout=10,
        )[:2] == (403, "AccessDeniedException")
        assert (
            bob.update_function_configuration(FunctionName="team-b/made", Timeout=10)["Timeout"]
            == 10
        )
    finally:
        bob.delete_function(FunctionName="team-b/made")


def _key(arn: str) -> str:
    """`namespace/name` of a function ARN (the namespace is the ARN's account field)."""
    fields = arn.split(":")
    return f"{fields[4]}/{fields[6]}"
