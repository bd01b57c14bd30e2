"""The pure checks behind HTTP trigger auth: API keys compared in constant time, JWTs verified.

Everything a caller sends is hostile, so these functions take the request's raw header values and
the keys at hand and return a verdict or raise :class:`TokenRefused` with a fixed description —
never an exception of the libraries, never text from the token. Signatures are PyJWT's (with
cryptography) over an allowlist of two asymmetric algorithms, RS256 and ES256: ``none`` and the
HMAC family are refused before any key is looked at, which closes the "public key as HMAC secret"
confusion. Where the keys come from is ``trigger_keys``; what to answer is ``trigger_auth``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from kfaas.events import JwtAuthorizer

ALGORITHMS: Final = ("RS256", "ES256")
# Clock skew tolerated on exp, nbf and iat, as identity providers and API Gateway allow a little.
LEEWAY_SECONDS: Final = 30
# Above real tokens, below the gateway's 8 KB header line limit; longer ones are refused unread.
MAX_TOKEN_BYTES: Final = 7 * 1024
MAX_API_KEY_BYTES: Final = 1024
MIN_RSA_BITS: Final = 2048
_PEM_END = "-----END PUBLIC KEY-----"


class TokenRefused(Exception):
    """A credential that does not authenticate; ``description`` is safe to send back."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


# -- API keys --------------------------------------------------------------------------------


def parse_api_keys(values: Iterable[str]) -> list[str]:
    """The keys in Secret values or a key file: one per line, blank lines and ``#`` comments out."""
    keys = []
    for value in values:
        for line in value.splitlines():
            key = line.strip()
            if key and not key.startswith("#"):
                keys.append(key)
    return keys


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def api_key_matches(presented: str | None, valid: Sequence[str]) -> bool:
    """Whether ``presented`` is one of ``valid``, in time that depends on neither.

    Digests have one length, so ``compare_digest`` leaks no length either; every key is compared
    (no early exit), so the position of the matching key does not show.
    """
    if presented is None or not valid or len(presented) > MAX_API_KEY_BYTES:
        return False
    given = _digest(presented)
    found = False
    for key in valid:
        found |= hmac.compare_digest(given, _digest(key))
    return found


# -- JWT: keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """A public key a trigger accepts, the algorithm it signs with, and its JWKS ``kid``."""

    kid: str | None
    algorithm: str
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def _usable(public: object) -> SigningKey | None:
    if isinstance(public, rsa.RSAPublicKey) and public.key_size >= MIN_RSA_BITS:
        return SigningKey(None, "RS256", public)
    if isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
        return SigningKey(None, "ES256", public)
    return None


def _from_jwk(entry: Mapping[str, Any]) -> SigningKey | None:
    if "d" in entry or entry.get("use", "sig") != "sig":
        return None  # a private key published by mistake, or an encryption key
    if entry.get("alg") is not None and entry.get("alg") not in ALGORITHMS:
        return None
    try:
        public = jwt.PyJWK(dict(entry)).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    found = _usable(public)
    if found is None or entry.get("alg", found.algorithm) != found.algorithm:
        return None
    kid = entry.get("kid")
    return SigningKey(kid if isinstance(kid, str) else None, found.algorithm, found.key)


def load_key_set(texts: Iterable[str]) -> list[SigningKey]:
    """The RS256/ES256 public keys in JWKS documents or PEM texts; anything else is skipped."""
    keys: list[SigningKey] = []
    for text in texts:
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                document = json.loads(stripped)
            except (ValueError, RecursionError):  # not a key set (or nested past the limit)
                continue
            entries = document.get("keys") if isinstance(document, dict) else None
            for entry in entries if isinstance(entries, list) else []:
                found = _from_jwk(entry) if isinstance(entry, dict) else None
                if found is not None:
                    keys.append(found)
            continue
        for block in stripped.split(_PEM_END)[:-1]:
            try:
                public = load_pem_public_key((block + _PEM_END).strip().encode())
            except (ValueError, TypeError):
                continue
            usable = _usable(public)
            if usable is not None:
                keys.append(usable)
    return keys


# -- JWT: tokens -----------------------------------------------------------------------------


def bearer_token(authorization: str | None) -> str:
    """The token in an ``Authorization`` header, with or without the ``Bearer`` scheme."""
    if authorization is None or not authorization.strip():
        raise TokenRefused("missing token")
    if len(authorization) > MAX_TOKEN_BYTES:
        raise TokenRefused("token is too large")
    scheme, _, rest = authorization.strip().partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else authorization.strip()
    if not token or not token.isascii() or token.count(".") != 2:
        raise TokenRefused("malformed token")
    return token


def token_header(token: str) -> tuple[str, str | None]:
    """The token's algorithm (one of ALGORITHMS) and key id, read before anything is trusted."""
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError):
        raise TokenRefused("malformed token") from None
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise TokenRefused("signing method is not allowed")
    kid = header.get("kid")
    return str(algorithm), kid if isinstance(kid, str) else None


def candidates(keys: Sequence[SigningKey], algorithm: str, kid: str | None) -> list[SigningKey]:
    """The keys that may have signed a token: same algorithm, and same kid when both have one."""
    same = [key for key in keys if key.algorithm == algorithm]
    if kid is None:
        return same
    return [key for key in same if key.kid == kid or key.kid is None]


_REFUSALS: Final[list[tuple[type[jwt.PyJWTError], str]]] = [
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not valid yet"),
    (jwt.InvalidIssuerError, "invalid issuer"),
    (jwt.MissingRequiredClaimError, "token lacks a required claim"),
    (jwt.InvalidSignatureError, "signature is invalid"),
]


def verify_token(
    token: str, keys: Sequence[SigningKey], *, issuer: str, audiences: Sequence[str]
) -> dict[str, Any]:
    """The claims of a token signed by one of ``keys`` for ``issuer`` and one of ``audiences``.

    As API Gateway: ``exp`` and ``iss`` are required, ``nbf`` and ``iat`` checked when present,
    and the audience is ``aud`` or, for access tokens without one, ``client_id``.
    """
    algorithm, kid = token_header(token)
    usable = candidates(keys, algorithm, kid)
    if not usable:
        raise TokenRefused("no key matches the token")
    for key in usable:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise TokenRefused(_description(exc)) from None
        except (ValueError, TypeError):
            raise TokenRefused("malformed token") from None
        if not audience_matches(claims, audiences):
            raise TokenRefused("invalid audience")
        return claims
    raise TokenRefused("signature is invalid")


def _description(error: jwt.PyJWTError) -> str:
    for kind, description in _REFUSALS:
        if isinstance(error, kind):
            return description
    return "malformed token"


def audience_matches(claims: Mapping[str, Any], audiences: Sequence[str]) -> bool:
    audience = claims.get("aud", claims.get("client_id"))
    offered = audience if isinstance(audience, list) else [audience]
    return any(isinstance(item, str) and item in audiences for item in offered)


def token_scopes(claims: Mapping[str, Any]) -> list[str]:
    """The scopes in ``scope`` (space-separated) or ``scp`` (a list or a string)."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list):
            return [item for item in value if isinstance(item, str)]
    return []


def _claim_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item) for item in value) + "]"
    return json.dumps(value, separators=(",", ":"))


def jwt_authorizer(claims: Mapping[str, Any]) -> JwtAuthorizer:
    """``requestContext.authorizer.jwt`` as API Gateway builds it: every claim as a string."""
    scopes = token_scopes(claims)
    return {
        "claims": {name: _claim_text(value) for name, value in claims.items()},
        "scopes": scopes or None,
    }
