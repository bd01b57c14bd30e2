"""Who may read and write the code store, and the download URLs GetFunction hands out (ADR 025).

The store holds one key (the chart's ``<release>-code-store-key``, not ADR 011's runtime token
key: a store that leaks must not open every runtime); the gateway and the operator hold it too.
Everything else is derived from it with HMAC-SHA256, each purpose under its own label so that one
never passes for another: the gateways' write token; a read capability per digest, which opens
exactly one immutable blob (the operator writes it into the function's token Secret for the init
container, so a cold start asks the API server nothing); and ``Code.Location`` signatures, which
expire like Lambda's presigned URLs. Checks compare in constant time.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from kfaas.code_digests import HEX_DIGITS, CodeDigest

# Where the store, the gateway and the operator find the key (the chart's Secret).
KEY_ENV: Final = "KFAAS_CODE_STORE_KEY"
# The header a write token or a read capability travels in.
HEADER: Final = "X-Kfaas-Code-Capability"
# The key of the function's token Secret (ADR 011) holding its read capability.
SECRET_KEY: Final = "code-capability"
# Lambda's presigned Code.Location URLs last ten minutes.
LOCATION_SECONDS: Final = 600
_LABEL: Final = "kfaas-code-store"


class LocationRefused(Exception):
    """A download URL that is malformed, expired or not signed with the key; says which."""


def new_key() -> str:
    """A random store key (``kfaas dev`` needs none: it has no store server)."""
    return os.urandom(32).hex()


def _sign(key: str, *parts: str) -> str:
    # NUL never occurs in a label, a digest or a decimal expiry, so the message parses one way.
    message = "\0".join((_LABEL, *parts)).encode()
    return hmac.new(key.encode(), message, "sha256").hexdigest()


def _same(expected: str, presented: str | None) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "replace"))


def write_token(key: str) -> str:
    """What a gateway presents to PUT a blob."""
    return _sign(key, "write")


def read_capability(key: str, digest: CodeDigest) -> str:
    """What opens the blob ``digest`` for reading, and nothing else."""
    return _sign(key, "read", digest.hex)


def allows_write(key: str, presented: str | None) -> bool:
    return _same(write_token(key), presented)


def allows_read(key: str, digest: CodeDigest, presented: str | None) -> bool:
    return _same(read_capability(key, digest), presented)


@dataclass(frozen=True)
class SignedLocation:
    expires: int  # Unix seconds
    signature: str

    def query(self) -> dict[str, str]:
        """The URL's query parameters (the path names the digest)."""
        return {"Expires": str(self.expires), "Signature": self.signature}


def sign_location(
    key: str, digest: CodeDigest, *, now: float, seconds: int = LOCATION_SECONDS
) -> SignedLocation:
    expires = int(now) + seconds
    return SignedLocation(expires, _sign(key, "location", digest.hex, str(expires)))


def check_location(key: str, digest: CodeDigest, query: Mapping[str, str], *, now: float) -> None:
    """Refuse a download URL unless it was signed with ``key`` for ``digest`` and is unexpired."""
    expires, signature = query.get("Expires", ""), query.get("Signature", "")
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
        raise LocationRefused("Expires must be Unix seconds")
    if len(signature) != 64 or signature.strip(HEX_DIGITS):
        raise LocationRefused("Signature must be 64 lowercase hex digits")
    if not _same(_sign(key, "location", digest.hex, expires), signature):
        raise LocationRefused("the signature does not match")
    if now > int(expires):
        raise LocationRefused("the URL has expired")
