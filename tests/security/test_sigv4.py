"""SigV4 as botocore signs it: the verifier accepts what boto3 sends and nothing altered.

Requests are built by a real boto3 Lambda client (its serializer encodes the function name, its
signer signs); a ``before-send`` hook captures them instead of sending. The verifier must accept
each one as is and refuse it after any change. ``kfaas.sigv4.sign`` must produce botocore's exact
Authorization header for the same request and time.
"""

from __future__ import annotations

import datetime
import json
import urllib.parse
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from kfaas import sigv4
from kfaas.gateway import sigv4 as verifier
from kfaas.gateway.auth import TtlCache
from kfaas.gateway.errors import ApiError, IncompleteSignature, InvalidSignature

ACCESS_KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AT = datetime.datetime(2026, 11, 29, 10, 20, 0, tzinfo=datetime.UTC)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def captured(call: str, region: str = "us-east-1", **params: Any) -> AWSRequest:
    """The request boto3 would send for ``call(**params)``, signed at AT."""
    client = boto3.client(
        "lambda",
        endpoint_url="http://127.0.0.1:8080",
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 0}),
    )
    seen: list[AWSRequest] = []

    def capture(request: AWSRequest, **_: Any) -> AWSResponse:
        seen.append(request)
        return AWSResponse(request.url, 200, {}, _Raw(b"{}"))

    client.meta.events.register("before-send.lambda", capture)
    with mock.patch("botocore.auth.get_current_datetime", return_value=AT.replace(tzinfo=None)):
        getattr(client, call)(**params)
    return seen[0]


def as_received(request: AWSRequest) -> tuple[verifier.SignedRequest, bytes]:
    """What the gateway sees: the raw path and query, the headers plus the Host urllib3 adds."""
    parts = urllib.parse.urlsplit(request.url)
    headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()]
    headers.append(("Host", parts.netloc))
    body = request.body or b""
    body = body.encode() if isinstance(body, str) else body
    return verifier.SignedRequest(request.method, parts.path, parts.query, headers), body


def verify(signed: verifier.SignedRequest, body: bytes, secret: str = SECRET) -> str:
    claim = verifier.parse_claim(signed)
    assert claim is not None
    verifier.check_time(claim, AT)
    verifier.verify(signed, claim, secret, body)
    return claim.access_key_id


CALLS = [
    ("invoke", {"FunctionName": "echo", "Payload": b"{}"}),
    ("invoke", {"FunctionName": "team-a/echo", "Payload": json.dumps({"k": "日本"}).encode()}),
    ("invoke", {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:team-a/echo"}),
    ("invoke", {"FunctionName": "echo:$LATEST", "Payload": b'{"a": 1}'}),
    ("invoke", {"FunctionName": "team-a/echo", "Qualifier": "$LATEST", "Payload": b"{}"}),
    ("invoke", {"FunctionName": "echo", "Payload": bytes(range(256))}),
    ("invoke", {"FunctionName": "echo", "InvocationType": "Event", "LogType": "None"}),
    ("invoke", {"FunctionName": "echo", "ClientContext": "eyJhIjogMX0="}),
    ("list_functions", {}),
    ("list_functions", {"MaxItems": 5, "Marker": "a b/c+d=é"}),
    ("get_function", {"FunctionName": "team-a/echo"}),
    ("get_function_configuration", {"FunctionName": "x/é-ü", "Qualifier": "$LATEST"}),
]


@pytest.mark.parametrize(
    ("call", "params"), CALLS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CALLS)]
)
@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3", "cn-north-1"])
def test_what_boto3_signs_is_verified(call: str, params: dict[str, Any], region: str) -> None:
    signed, body = as_received(captured(call, region, **params))
    assert verify(signed, body) == ACCESS_KEY


@pytest.mark.parametrize(("call", "params"), CALLS[:6] + CALLS[9:10])
def test_any_change_breaks_the_signature(call: str, params: dict[str, Any]) -> None:
    signed, body = as_received(captured(call, **params))
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(signed, body, secret=SECRET + "x")
    with pytest.raises(InvalidSignature):
        verify(signed, body + b" ")
    method, path, query, headers = signed.method, signed.raw_path, signed.raw_query, signed.headers
    tampered = [
        verifier.SignedRequest(method, path + "x", query, headers),
        verifier.SignedRequest("PUT", path, query, headers),
        verifier.SignedRequest(method, path, query + "&a=b", headers),
        verifier.SignedRequest(
            method, path, query, [(k, v + "1" if k == "Host" else v) for k, v in headers]
        ),
    ]  # fmt: skip
    for request in tampered:
        with pytest.raises(InvalidSignature):
            verify(request, body)


def test_the_name_is_encoded_twice_in_the_canonical_uri() -> None:
    request = captured("invoke", FunctionName="team-a/echo", Payload=b"{}")
    assert "/functions/team-a%2Fecho/invocations" in request.url
    path = urllib.parse.urlsplit(request.url).path
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET), "lambda", "us-east-1")
    assert auth._normalize_url_path(path) == "/2015-03-31/functions/team-a%252Fecho/invocations"
    assert sigv4.canonical_uri(path) == auth._normalize_url_path(path)


@pytest.mark.parametrize(
    "path", ["/", "", "/a//b/", "/a/./b/../c", "/x%2Fy/é", "/~user/a b", "/a/%7E"]
)
def test_canonical_uri_matches_botocore(path: str) -> None:
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET), "lambda", "us-east-1")
    assert sigv4.canonical_uri(path) == auth._normalize_url_path(path)


@pytest.mark.parametrize(
    "query", ["", "b=2&a=1", "a=2&a=1", "k", "x=%2F%20y&z=~.-_", "Qualifier=%24LATEST"]
)
def test_canonical_query_matches_botocore_for_encoded_queries(query: str) -> None:
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET), "lambda", "us-east-1")
    expected = auth._canonical_query_string_url(urllib.parse.urlsplit(f"http://h/p?{query}"))
    assert sigv4.canonical_query(query) == expected


@pytest.mark.parametrize(
    "headers", [{}, {"X-Amz-Invocation-Type": "Event", "X-Amz-Log-Type": "Tail"}]
)
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/2015-03-31/functions/ns%2Fe/invocations?Qualifier=%24LATEST",
            "https://gw.example/2015-03-31/functions/", "http://gw.example:80/p"],
)  # fmt: skip
def test_our_signer_writes_botocores_authorization(headers: dict[str, str], url: str) -> None:
    body = b'{"x": "\xc3\xa9"}'
    ours = sigv4.sign(
        "POST", url, {**headers, "Content-Type": "application/json"}, body,
        sigv4.SigningCredentials(ACCESS_KEY, SECRET), region="eu-west-1", now=AT,
    )  # fmt: skip
    theirs = AWSRequest(
        "POST", url, data=body, headers={**headers, "Content-Type": "application/json"}
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=AT.replace(tzinfo=None)):
        SigV4Auth(Credentials(ACCESS_KEY, SECRET), "lambda", "eu-west-1").add_auth(theirs)
    assert ours["Authorization"] == theirs.headers["Authorization"]
    parts = urllib.parse.urlsplit(url)
    received = verifier.SignedRequest("POST", parts.path, parts.query, list(ours.items()))
    assert verify(received, body) == ACCESS_KEY


def test_presigned_queries_are_verified_and_expire() -> None:
    url = "http://127.0.0.1:8080/2015-03-31/functions/ns%2Fe/configuration?Qualifier=%24LATEST"
    request = AWSRequest("GET", url)
    with mock.patch("botocore.auth.get_current_datetime", return_value=AT.replace(tzinfo=None)):
        SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET), "lambda", "us-east-1", 60).add_auth(request)
    signed, body = as_received(request)
    assert verify(signed, body) == ACCESS_KEY
    claim = verifier.parse_claim(signed)
    assert claim is not None and claim.expires_seconds == 60
    with pytest.raises(InvalidSignature, match="expired"):
        verifier.check_time(claim, AT + datetime.timedelta(seconds=61))
    extra = ("Authorization", "AWS4-HMAC-SHA256 x")
    both = verifier.SignedRequest(
        "GET", signed.raw_path, signed.raw_query, [*signed.headers, extra]
    )
    with pytest.raises(IncompleteSignature, match="one auth mechanism"):
        verifier.parse_claim(both)


def test_the_clock_skew_is_five_minutes_either_way() -> None:
    signed, _ = as_received(captured("list_functions"))
    claim = verifier.parse_claim(signed)
    assert claim is not None
    verifier.check_time(claim, AT + datetime.timedelta(minutes=5))
    verifier.check_time(claim, AT - datetime.timedelta(minutes=5))
    with pytest.raises(InvalidSignature) as late:
        verifier.check_time(claim, AT + datetime.timedelta(minutes=5, seconds=1))
    assert late.value.message == (
        "Signature expired: 20261129T102000Z is now earlier than 20261129T102000Z "
        "(20261129T102501Z - 5 min.)"
    ).replace("earlier than 20261129T102000Z", "earlier than 20261129T102001Z")
    with pytest.raises(InvalidSignature, match="not yet current"):
        verifier.check_time(claim, AT - datetime.timedelta(minutes=5, seconds=1))


def test_the_date_header_can_stand_for_x_amz_date() -> None:
    url = "http://127.0.0.1:8080/2015-03-31/functions/"
    request = AWSRequest("GET", url, headers={"Date": "x"})
    with mock.patch("botocore.auth.get_current_datetime", return_value=AT.replace(tzinfo=None)):
        SigV4Auth(Credentials(ACCESS_KEY, SECRET), "lambda", "us-east-1").add_auth(request)
    assert "X-Amz-Date" not in request.headers
    signed, body = as_received(request)
    assert verify(signed, body) == ACCESS_KEY


def _with_authorization(value: str, *extra: tuple[str, str]) -> verifier.SignedRequest:
    headers = [("Host", "h"), ("X-Amz-Date", "20261129T102000Z"), ("Authorization", value), *extra]
    return verifier.SignedRequest("GET", "/", "", headers)


GOOD = "Credential=AK/20261129/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date"
SIG = "Signature=" + "0" * 64


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (f"AWS4-HMAC-SHA256 {GOOD.replace('lambda', 's3')}, {SIG}", InvalidSignature,
         "scoped to correct service: 'lambda'"),
        (f"AWS4-HMAC-SHA256 {GOOD.replace('aws4_request', 'aws5')}, {SIG}", InvalidSignature,
         "terminator"),
        (f"AWS4-HMAC-SHA256 {GOOD.replace('us-east-1', 'US EAST')}, {SIG}", InvalidSignature,
         "valid region"),
        (f"AWS4-HMAC-SHA256 {GOOD.replace('20261129', '20261128')}, {SIG}", InvalidSignature,
         "Date in Credential scope"),
        (f"AWS4-HMAC-SHA256 {GOOD.replace('AK/', '')}, {SIG}", IncompleteSignature, "Credential"),
        (f"AWS4-HMAC-SHA256 Credential=/////, {SIG}", IncompleteSignature, "SignedHeaders"),
        (f"AWS4-HMAC-SHA256 {GOOD}", IncompleteSignature, "'Signature'"),
        (f"AWS4-HMAC-SHA256 {GOOD}, Signature=zz", IncompleteSignature, "hexadecimal"),
        (f"AWS4-HMAC-SHA256 {GOOD.replace('host;', '')}, {SIG}", IncompleteSignature, "'Host'"),
        (f"AWS4-HMAC-SHA256 {GOOD.replace('host;x-amz-date', 'x-amz-date;host')}, {SIG}",
         IncompleteSignature, "sorted"),
        (f"AWS4-HMAC-SHA256 {GOOD}, {SIG}, {SIG}", IncompleteSignature, "malformed"),
        ("AWS4-HMAC-SHA256 " + "Credential=" + "A" * 7000, IncompleteSignature, "SignedHeaders"),
        ("AWS4-HMAC-SHA256 " + ",".join(["a=b"] * 2000), IncompleteSignature, "malformed"),
        (f"AWS4-HMAC-SHA256 {GOOD.replace('AK', 'A/K')}, {SIG}", IncompleteSignature, "Credential"),
        (f"AWS4-HMAC-SHA256 {GOOD.replace('AK', 'Ä')}, {SIG}", IncompleteSignature, "Credential"),
    ],
)  # fmt: skip
def test_hostile_authorization_headers_are_refused_before_any_lookup(
    value: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        verifier.parse_claim(_with_authorization(value))


def test_other_schemes_and_missing_headers_mean_no_signature() -> None:
    assert verifier.parse_claim(_with_authorization("Basic dTpw")) is None
    assert verifier.parse_claim(_with_authorization("AWS4-HMAC-SHA1 x")) is None
    assert verifier.parse_claim(verifier.SignedRequest("GET", "/", "", [("Host", "h")])) is None
    twice = _with_authorization(f"AWS4-HMAC-SHA256 {GOOD}, {SIG}", ("Authorization", "x"))
    with pytest.raises(IncompleteSignature, match="one Authorization"):
        verifier.parse_claim(twice)
    undated = verifier.SignedRequest(
        "GET", "/", "", [("Host", "h"), ("Authorization", f"AWS4-HMAC-SHA256 {GOOD}, {SIG}")]
    )
    with pytest.raises(IncompleteSignature, match="X-Amz-Date"):
        verifier.parse_claim(undated)


@pytest.mark.parametrize("stamp", ["20261399T102000Z", "20261129T256199Z", "00000000T000000Z"])
def test_impossible_dates_are_refused_not_crashed_on(stamp: str) -> None:
    scope = f"AK/{stamp[:8]}/us-east-1/lambda/aws4_request"
    headers = [("Host", "h"), ("X-Amz-Date", stamp),
               ("Authorization", f"AWS4-HMAC-SHA256 Credential={scope}, "
                                 f"SignedHeaders=host;x-amz-date, {SIG}")]  # fmt: skip
    claim = verifier.parse_claim(verifier.SignedRequest("GET", "/", "", headers))
    assert claim is not None
    with pytest.raises(IncompleteSignature, match="not a valid date"):
        verifier.check_time(claim, AT)


@pytest.mark.parametrize("expires", ["²", "0", "99999999", "-1", "1e3", "٣"])
def test_presigned_expiry_must_be_plain_seconds(expires: str) -> None:
    query = urllib.parse.urlencode({
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": "AK/20261129/us-east-1/lambda/aws4_request",
        "X-Amz-Date": "20261129T102000Z", "X-Amz-Expires": expires,
        "X-Amz-SignedHeaders": "host", "X-Amz-Signature": "0" * 64,
    })  # fmt: skip
    with pytest.raises(IncompleteSignature, match="X-Amz-Expires"):
        verifier.parse_claim(verifier.SignedRequest("GET", "/", query, [("Host", "h")]))


def test_a_declared_payload_hash_must_be_the_bodys() -> None:
    signed, body = as_received(captured("invoke", FunctionName="echo", Payload=b"{}"))
    lying = verifier.SignedRequest(
        signed.method, signed.raw_path, signed.raw_query,
        [*signed.headers, ("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")],
    )  # fmt: skip
    with pytest.raises(InvalidSignature, match="x-amz-content-sha256"):
        verify(lying, body)


def test_the_cache_forgets_after_its_ttl_and_keeps_at_most_its_size() -> None:
    now = [0.0]
    cache: TtlCache[str, bool] = TtlCache(ttl=2, size=3, clock=lambda: now[0])
    for key in "abcd":
        cache.put(key, True)
    assert len(cache) == 3 and cache.get("a") is None and cache.get("d") is True
    now[0] = 2.0
    assert cache.get("d") is None


PARTS = st.text(alphabet=st.characters(codec="utf-8"), max_size=24)


@given(
    authorization=st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda key, date, region, service, end, signed, signature: (
                f"Credential={key}/{date}/{region}/{service}/{end}, SignedHeaders={signed}, "
                f"Signature={signature}"
            ),
            PARTS, st.sampled_from(["20261129", "2026112", ""]) | PARTS,
            st.sampled_from(["us-east-1"]) | PARTS, st.sampled_from(["lambda"]) | PARTS,
            st.sampled_from(["aws4_request"]) | PARTS,
            st.sampled_from(["host", "host;x-amz-date"]) | PARTS,
            st.sampled_from(["0" * 64]) | PARTS,
        ),
    ),
    dates=st.lists(st.sampled_from(["20261129T102000Z"]) | st.text(max_size=20), max_size=2),
    query=st.text(max_size=120),
    scheme=st.sampled_from(["AWS4-HMAC-SHA256 ", ""]),
)  # fmt: skip
@settings(max_examples=600, deadline=None)
def test_any_hostile_input_is_an_api_error_never_a_crash(
    authorization: str, dates: list[str], query: str, scheme: str
) -> None:
    headers = [("Host", "h"), ("Authorization", scheme + authorization)]
    headers += [("X-Amz-Date", date) for date in dates[:1]] + [("Date", d) for d in dates[1:]]
    request = verifier.SignedRequest("POST", "/2015-03-31/functions/x/invocations", query, headers)
    try:
        claim = verifier.parse_claim(request)
        if claim is not None:
            verifier.check_time(claim, AT)
            verifier.verify(request, claim, SECRET, b"{}")
    except ApiError as error:
        assert error.status in (400, 403)
