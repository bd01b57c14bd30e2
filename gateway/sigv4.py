"""Verifying an AWS Signature Version 4 on a request, as AWS does, in two steps and with no I/O.

``parse_claim`` reads what the caller claims (access key, scope, time, signed headers) from the
``Authorization`` header or a presigned query and refuses a malformed or out-of-scope claim;
``check_time`` refuses a request time more than five minutes from now. Both run before the body
is read, so a flood of unsigned or stale requests costs a header parse each. ``verify`` then
recomputes the canonical request with the one canonicalisation both sides share
(``kfaas.sigv4``) and compares signatures in constant time. Failures raise the API errors botocore
parses into its modeled exceptions, with AWS's messages (``LAMBDA.md``, "Authentication errors").
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from kfaas import sigv4

from .errors import IncompleteSignature, InvalidSignature

MAX_SKEW = datetime.timedelta(minutes=5)
MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600
MAX_SIGNED_HEADERS = 64
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_ACCESS_KEY = re.compile(r"[A-Za-z0-9._+=@-]{1,128}")
_REGION = re.compile(r"[a-z0-9-]{1,32}")
_DATE = re.compile(r"[0-9]{8}")
_TIMESTAMP = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,128}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
PRESIGN_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


@dataclass(frozen=True)
class SignedRequest:
    """What the verifier needs of a request: the raw (still encoded) path and query, headers."""

    method: str
    raw_path: str
    raw_query: str
    headers: Sequence[tuple[str, str]]

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


@dataclass(frozen=True)
class Claim:
    access_key_id: str
    scope: str
    timestamp: str
    signed_headers: list[str]
    signature: str
    # Presigned: the query carries the signature and the request is valid for this many seconds.
    expires_seconds: int | None = None


def parse_claim(request: SignedRequest, *, service: str = sigv4.SERVICE) -> Claim | None:
    """The caller's SigV4 claim, or None when the request carries no SigV4 at all."""
    authorizations = request.header_values("Authorization")
    query = _query_params(request.raw_query)
    presigned = "X-Amz-Signature" in query or "X-Amz-Credential" in query
    if len(authorizations) > 1:
        raise IncompleteSignature("Only one Authorization header may be sent.")
    if authorizations and presigned:
        raise IncompleteSignature("Only one auth mechanism allowed; found the header and query.")
    if presigned:
        return _presigned_claim(request, query, service)
    if not authorizations or not authorizations[0].startswith(sigv4.ALGORITHM + " "):
        return None
    fields: dict[str, str] = {}
    for item in authorizations[0][len(sigv4.ALGORITHM) + 1 :].split(","):
        key, equals, value = item.strip().partition("=")
        if not equals or key in fields:
            raise IncompleteSignature(f"Authorization header is malformed near {key[:32]!r}.")
        fields[key] = value
    for required in ("Credential", "SignedHeaders", "Signature"):
        if required not in fields:
            raise IncompleteSignature(f"Authorization header requires '{required}' parameter.")
    timestamp = _request_time(request)
    return _claim(
        fields["Credential"], timestamp, fields["SignedHeaders"], fields["Signature"], service
    )


def _presigned_claim(request: SignedRequest, query: dict[str, str], service: str) -> Claim:
    for required in PRESIGN_PARAMS:
        if required not in query:
            raise IncompleteSignature(f"The presigned query requires the {required} parameter.")
    if query["X-Amz-Algorithm"] != sigv4.ALGORITHM:
        raise IncompleteSignature(f"Unsupported X-Amz-Algorithm: use {sigv4.ALGORITHM}.")
    expires = query["X-Amz-Expires"]
    if not re.fullmatch(r"[0-9]{1,7}", expires) or not 0 < int(expires) <= MAX_PRESIGNED_EXPIRES:
        raise IncompleteSignature(
            f"X-Amz-Expires must be between 1 and {MAX_PRESIGNED_EXPIRES} seconds."
        )
    if not _TIMESTAMP.fullmatch(query["X-Amz-Date"]):
        raise IncompleteSignature("X-Amz-Date must be in the ISO8601 basic format.")
    claim = _claim(
        query["X-Amz-Credential"],
        query["X-Amz-Date"],
        query["X-Amz-SignedHeaders"],
        query["X-Amz-Signature"],
        service,
    )
    return Claim(**{**claim.__dict__, "expires_seconds": int(expires)})


def _claim(credential: str, timestamp: str, signed: str, signature: str, service: str) -> Claim:
    parts = credential.split("/")
    if len(parts) != 5 or not _ACCESS_KEY.fullmatch(parts[0]):
        raise IncompleteSignature(
            "Credential must have the form <access key>/<date>/<region>/<service>/aws4_request."
        )
    access_key, date, region, scope_service, terminator = parts
    if terminator != sigv4.TERMINATOR:
        raise InvalidSignature(
            "Credential should be scoped with a valid terminator: 'aws4_request'."
        )
    if scope_service != service:
        raise InvalidSignature(f"Credential should be scoped to correct service: '{service}'.")
    if not _REGION.fullmatch(region):
        raise InvalidSignature("Credential should be scoped to a valid region.")
    if not _DATE.fullmatch(date) or date != timestamp[:8]:
        raise InvalidSignature(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: {date[:8]!r} != {timestamp[:8]!r}, from {timestamp!r}."
        )
    names = signed.split(";")
    if (
        len(names) > MAX_SIGNED_HEADERS
        or names != sorted(set(names))
        or not all(_HEADER_NAME.fullmatch(name) for name in names)
    ):
        raise IncompleteSignature("SignedHeaders must be lower-case header names, sorted, once.")
    if "host" not in names:
        raise IncompleteSignature("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    if not _SIGNATURE.fullmatch(signature):
        raise IncompleteSignature("Signature must be 64 lower-case hexadecimal digits.")
    scope = sigv4.credential_scope(date, region, service)
    return Claim(access_key, scope, timestamp, names, signature)


def _request_time(request: SignedRequest) -> str:
    """X-Amz-Date, else Date (RFC 1123), as the SigV4 timestamp the string to sign holds."""
    amz_date = request.header_values("X-Amz-Date")
    if amz_date:
        if len(amz_date) > 1 or not _TIMESTAMP.fullmatch(amz_date[0]):
            raise IncompleteSignature("X-Amz-Date must be one value in the ISO8601 basic format.")
        return amz_date[0]
    date = request.header_values("Date")
    if len(date) == 1:
        try:
            parsed = email.utils.parsedate_to_datetime(date[0])
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            # "-0000" (what botocore writes) parses without a zone: it means UTC.
            parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
            return parsed.astimezone(datetime.UTC).strftime(sigv4.TIMESTAMP_FORMAT)
    raise IncompleteSignature(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def _moment(timestamp: str) -> datetime.datetime:
    """A checked ``YYYYMMDDTHHMMSSZ`` as a time (strptime would cost more than the signature)."""
    try:
        return datetime.datetime(
            int(timestamp[0:4]), int(timestamp[4:6]), int(timestamp[6:8]),
            int(timestamp[9:11]), int(timestamp[11:13]), int(timestamp[13:15]),
            tzinfo=datetime.UTC,
        )  # fmt: skip
    except ValueError:
        raise IncompleteSignature(f"{timestamp!r} is not a valid date and time.") from None


def check_time(claim: Claim, now: datetime.datetime) -> None:
    """Refuse a request signed more than five minutes away from ``now`` (or a stale presign)."""
    signed_at = _moment(claim.timestamp)

    def stamp(moment: datetime.datetime) -> str:
        return moment.strftime(sigv4.TIMESTAMP_FORMAT)

    if claim.expires_seconds is not None:
        if now > signed_at + datetime.timedelta(seconds=claim.expires_seconds):
            raise InvalidSignature(
                f"Signature expired: {claim.timestamp} + {claim.expires_seconds} s is now earlier "
                f"than {stamp(now)}."
            )
    elif signed_at < now - MAX_SKEW:
        raise InvalidSignature(
            f"Signature expired: {claim.timestamp} is now earlier than "
            f"{stamp(now - MAX_SKEW)} ({stamp(now)} - 5 min.)"
        )
    if signed_at > now + MAX_SKEW:
        raise InvalidSignature(
            f"Signature not yet current: {claim.timestamp} is still later than "
            f"{stamp(now + MAX_SKEW)} ({stamp(now)} + 5 min.)"
        )


def verify(request: SignedRequest, claim: Claim, secret_key: str, body: bytes) -> None:
    """Recompute the signature over the request and ``body``; raise unless it matches."""
    actual = hashlib.sha256(body).hexdigest()
    declared = request.header_values("X-Amz-Content-SHA256")
    if len(declared) > 1 or (declared and declared[0] != actual):
        raise InvalidSignature(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    canonical = sigv4.canonical_request(
        request.method,
        request.raw_path,
        request.raw_query,
        request.headers,
        claim.signed_headers,
        actual,
        exclude_query=("X-Amz-Signature",) if claim.expires_seconds is not None else (),
    )
    expected = sigv4.signature(
        secret_key, claim.scope, sigv4.string_to_sign(claim.timestamp, claim.scope, canonical)
    )
    if not hmac.compare_digest(expected, claim.signature):
        raise InvalidSignature(MISMATCH)


def _query_params(raw_query: str) -> dict[str, str]:
    """The presigning parameters of a query (others are left to the API), decoded."""
    found: dict[str, str] = {}
    for item in raw_query.split("&") if raw_query else []:
        key, _, value = item.partition("=")
        key = urllib.parse.unquote(key)
        if key in PRESIGN_PARAMS:
            if key in found:
                raise IncompleteSignature(f"The query holds {key} more than once.")
            found[key] = urllib.parse.unquote(value)
    return found
