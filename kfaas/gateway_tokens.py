"""How kfaas's own in-cluster callers authenticate to the gateway's Invoke API.

Stream pollers and the scheduler call the Invoke API over HTTP like any other client; a gateway
with `--auth sigv4` checks a bearer token with TokenReview and asks RBAC whether its
ServiceAccount may `invoke` the function (ADR 009). The token is the pod's ServiceAccount token,
which the kubelet rotates, so it is re-read from its file rather than held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("kfaas.gateway_tokens")
# The pod's ServiceAccount token: a gateway with `--auth sigv4` checks it with TokenReview.
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
TOKEN_REREAD_SECONDS = 60.0
# The Authorization header value to send (None: send none), asked for on every call.
Authorization = Callable[[], str | None]


def token_file_authorization(path: str | Path) -> Authorization:
    """``Bearer <token>`` from a file the kubelet rotates, re-read at most once a minute."""
    cached: list[tuple[float, str | None]] = []

    def authorization() -> str | None:
        now = time.monotonic()
        if not cached or now - cached[0][0] > TOKEN_REREAD_SECONDS:
            try:
                token = Path(path).read_text().strip()
            except OSError as exc:
                log.warning("cannot read the gateway token %s: %s", path, exc)
                token = ""
            cached[:] = [(now, f"Bearer {token}" if token else None)]
        return cached[0][1]

    return authorization


def gateway_authorization(path: str = "") -> Authorization | None:
    """How an in-cluster caller authenticates to the gateway: the token file ``path``
    (KFAAS_GATEWAY_TOKEN_FILE), else the pod's ServiceAccount token when there is one, else not at
    all (a gateway with ``--auth none``)."""
    if path:
        return token_file_authorization(path)
    if Path(SERVICE_ACCOUNT_TOKEN).is_file():
        return token_file_authorization(SERVICE_ACCOUNT_TOKEN)
    return None
