"""AWS Signature Version 4: the canonical request, as botocore builds it, and the signer.

One definition of the canonicalisation serves both sides: ``kfaas invoke`` signs with it and the
gateway's verifier (``kfaas.gateway.sigv4``) recomputes the same canonical request from what
arrived. The rules follow botocore's ``SigV4Auth`` for a non-S3 service, which the tests check
byte for byte: the path has its dot segments and empty segments removed and is percent-encoded
once more (so a function name sent as ``ns%2Fname`` is signed as ``ns%252Fname``); query pairs
are decoded, re-encoded with RFC 3986's unreserved set and sorted; header values are trimmed with
inner runs of whitespace collapsed, repeated headers joined by commas. Pure functions, no I/O.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import urllib.parse
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "lambda"
TERMINATOR = "aws4_request"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNRESERVED = "-_.~"


def _bytes(text: str) -> bytes:
    # Header values arrive as surrogate-escaped UTF-8; hashing their original bytes is what the
    # signer hashed.
    return text.encode("utf-8", "surrogateescape")


def remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, plus AWS's removal of empty segments (``//``), as botocore does it."""
    if not path:
        return "/"
    output: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if output:
                output.pop()
        else:
            output.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and output else ""
    return first + "/".join(output) + last


def canonical_uri(raw_path: str) -> str:
    """The path as it was sent (still percent-encoded), normalised and encoded once more."""
    return urllib.parse.quote(remove_dot_segments(raw_path), safe="/~")


def canonical_query(raw_query: str, *, exclude: Collection[str] = ()) -> str:
    """Every ``key=value`` pair, decoded, re-encoded with the unreserved set only, then sorted."""
    pairs = []
    for item in raw_query.split("&") if raw_query else []:
        key, _, value = item.partition("=")
        key = urllib.parse.quote(urllib.parse.unquote(key), safe=UNRESERVED)
        if key in exclude:
            continue
        value = urllib.parse.quote(urllib.parse.unquote(value), safe=UNRESERVED)
        pairs.append((key, value))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def trim(value: str) -> str:
    """SigV4's Trimall: no outer whitespace, inner runs of whitespace as one space."""
    return " ".join(value.split())


def canonical_headers(headers: Iterable[tuple[str, str]], signed: Iterable[str]) -> str:
    """``name:value`` lines of the signed headers (values of a repeated header comma-joined)."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(trim(value))
    return "".join(f"{name}:{','.join(values.get(name, []))}\n" for name in signed)


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    signed_headers: list[str],
    payload_hash: str,
    *,
    exclude_query: Collection[str] = (),
) -> str:
    """The six lines whose hash is signed; ``signed_headers`` lower-case and sorted."""
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query, exclude=exclude_query),
            canonical_headers(headers, signed_headers),
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def credential_scope(date: str, region: str, service: str = SERVICE) -> str:
    return f"{date}/{region}/{service}/{TERMINATOR}"


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(_bytes(canonical)).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signature(secret_key: str, scope: str, string: str) -> str:
    """Hex HMAC of ``string`` with the key derived from the secret along the scope."""
    date, region, service, terminator = scope.split("/")
    key = f"AWS4{secret_key}".encode()
    for part in (date, region, service, terminator):
        key = hmac.digest(key, part.encode(), "sha256")
    return hmac.digest(key, string.encode(), "sha256").hex()


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256


@dataclass(frozen=True)
class SigningCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SigningCredentials | None:
        """AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and the session token), if both are set."""
        access_key = environ.get("AWS_ACCESS_KEY_ID", "").strip()
        secret = environ.get("AWS_SECRET_ACCESS_KEY", "").strip()
        if not access_key or not secret:
            return None
        return cls(access_key, secret, environ.get("AWS_SESSION_TOKEN", "").strip() or None)


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: SigningCredentials,
    *,
    region: str,
    service: str = SERVICE,
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """The headers to send: ``headers`` plus Host, X-Amz-Date and Authorization, all signed.

    ``url`` must be encoded as it will be sent (the path exactly as on the wire).
    """
    parts = urllib.parse.urlsplit(url)
    timestamp = (now or datetime.datetime.now(datetime.UTC)).strftime(TIMESTAMP_FORMAT)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    if parts.port is not None and parts.port != default_port:
        host = f"{host}:{parts.port}"
    sent = {**headers, "Host": host, "X-Amz-Date": timestamp}
    if credentials.session_token:
        sent["X-Amz-Security-Token"] = credentials.session_token
    signed = sorted({name.lower() for name in sent})
    scope = credential_scope(timestamp[:8], region, service)
    canonical = canonical_request(
        method, parts.path or "/", parts.query, sent.items(), signed, payload_hash(body)
    )
    signed_with = signature(
        credentials.secret_access_key, scope, string_to_sign(timestamp, scope, canonical)
    )
    sent["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signed_with}"
    )
    return sent
