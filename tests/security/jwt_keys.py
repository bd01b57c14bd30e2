"""Signing keys and tokens for the trigger auth tests, made with cryptography and PyJWT.

Attack tokens (``alg: none``, HMAC with the public key as secret, tampered payloads) are built
by hand here, because a well-kept library refuses to make them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

ISSUER = "https://issuer.example"
AUDIENCE = "api://kfaas"


@dataclass
class Keys:
    # The module names would be shadowed by the fields inside the class.
    rsa: RSAPrivateKey
    ec: EllipticCurvePrivateKey
    attacker: RSAPrivateKey

    @classmethod
    def generate(cls) -> Keys:
        return cls(
            rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ec=ec.generate_private_key(ec.SECP256R1()),
            attacker=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        return {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"},
            ]
        }

    def ec_pem(self) -> str:
        return public_pem(self.ec.public_key())

    def rsa_pem(self) -> str:
        return public_pem(self.rsa.public_key())


def public_pem(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now,
        "exp": now + 300,
        "scope": "orders:read orders:write",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def rs256(key: rsa.RSAPrivateKey, kid: str | None = "rsa-1", **overrides: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims(**overrides), key, algorithm="RS256", headers=headers)


def es256(key: ec.EllipticCurvePrivateKey, kid: str | None = "ec-1", **overrides: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims(**overrides), key, algorithm="ES256", headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def unsigned(kid: str = "rsa-1") -> str:
    """``alg: none``: a token that claims to need no signature."""
    return f"{segment({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{segment(claims())}."


def hs256_with_public_key(public_pem_text: str, kid: str = "rsa-1") -> str:
    """The key-confusion attack: HMAC-signed with the server's public key as the secret."""
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{segment(claims())}"
    mac = hmac.new(public_pem_text.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def tampered(token: str, **overrides: Any) -> str:
    """A valid token whose payload was changed after signing."""
    header, payload, signature = token.split(".")
    changed = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    changed.update(overrides)
    return f"{header}.{segment(changed)}.{signature}"
