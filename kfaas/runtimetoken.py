"""The token that lets only the platform reach a runtime's `/invoke` (ADR 011).

A runtime instance trusts what arrives on `/invoke` (the request id becomes
`context.aws_request_id`, and each call uses one of its workers), so only the gateway may call it.
Every function gets a token, HMAC-SHA256(platform key, "namespace/name"): the gateway, which holds
the key, computes it for any function without per-function state; an instance is handed only its
own function's token (``KFAAS_RUNTIME_TOKEN``), so knowing it opens no other function's runtime.
The gateway sends it in ``X-Kfaas-Runtime-Token`` and the runtime compares in constant time.
"""

from __future__ import annotations

import os

# Nothing else at import time (typing, hashlib, hmac are milliseconds each): the runtime reads
# TOKEN_ENV before it spawns its workers, on the cold-start path.

HEADER = "X-Kfaas-Runtime-Token"
# Where the runtime finds its token; removed from its environment before workers start.
TOKEN_ENV = "KFAAS_RUNTIME_TOKEN"
# Where the gateway and the operator find the platform key (the chart's Secret).
KEY_ENV = "KFAAS_RUNTIME_TOKEN_KEY"
# The key of the per-function Secret the operator writes.
SECRET_KEY = "token"


def new_key() -> str:
    """A random platform key (``kfaas dev`` makes one per start)."""
    return os.urandom(32).hex()


def derive(key: str, namespace: str, name: str) -> str:
    """The token of the function ``namespace/name``: 64 hex digits, safe in any header."""
    import hmac

    message = f"{namespace}/{name}".encode()
    return hmac.new(key.encode(), message, "sha256").hexdigest()


def matches(expected: str, presented: str | None) -> bool:
    """Whether a presented token is the expected one, in time that does not depend on where
    they differ."""
    import hmac

    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "replace"))


def fingerprint(token: str) -> str:
    """A short digest of a token for pod annotations: changes with it, reveals nothing of it."""
    import hashlib

    return hashlib.sha256(f"kfaas-runtime-token:{token}".encode()).hexdigest()[:16]
