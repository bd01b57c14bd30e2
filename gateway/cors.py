"""CORS for HTTP triggers, as Lambda function URLs do it (``spec.http.cors``, ADR 029).

With a CORS configuration the gateway answers a preflight (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``) itself, before auth and without invoking the function, and adds
``Access-Control-Allow-Origin`` / ``-Allow-Credentials`` / ``-Expose-Headers`` to the function's
answers to an allowed origin. The configured headers take precedence: every ``Access-Control-*``
header the function returns is dropped, as function URLs and API Gateway HTTP APIs do. Without a
configuration nothing changes: an ``OPTIONS`` reaches the handler like any request.

These are plain functions from the configuration and the request's header values to the headers
to send, so every case is a unit test. Nothing from the request is echoed unless it matched the
validated configuration (an origin) or the token grammar (a method or header name with ``*``
configured), so no header value the caller chose can carry CR, LF or a second header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from kfaas.manifests import Cors

PREFIX: Final = "access-control-"
WILDCARD: Final = "*"
# An RFC 9110 token: method and header names, and nothing a header line treats as structure.
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Longer than any origin the configuration can hold (253), and a bound on what is compared.
_MAX_ORIGIN: Final = 253
# Lambda's bounds on a configuration's lists; a preflight asking for more is refused unread.
_MAX_REQUEST_HEADERS: Final = 100
_MAX_HEADER_NAME: Final = 1024

Headers = list[tuple[str, str]]


def is_preflight(method: str, origins: Sequence[str], request_methods: Sequence[str]) -> bool:
    """A CORS preflight: ``OPTIONS`` carrying ``Origin`` and ``Access-Control-Request-Method``."""
    return method == "OPTIONS" and bool(origins) and bool(request_methods)


def allowed_origin(cors: Cors, origins: Sequence[str]) -> str | None:
    """What ``Access-Control-Allow-Origin`` says to this request, or None for a denied origin.

    ``*`` configured: ``*`` (the model refuses it with credentials, where browsers ignore it).
    Otherwise the request's own ``Origin`` when it equals a configured one ignoring case (scheme
    and host are case-insensitive); several ``Origin`` headers are no origin at all.
    """
    if len(origins) != 1:
        return None
    if WILDCARD in cors.allow_origins:
        return WILDCARD
    origin = origins[0]
    if len(origin) > _MAX_ORIGIN:
        return None
    folded = origin.lower()
    if any(folded == allowed.lower() for allowed in cors.allow_origins):
        return origin
    return None


def _vary(cors: Cors) -> Headers:
    # The answer depends on Origin unless every origin gets `*`: caches must keep them apart.
    return [] if WILDCARD in cors.allow_origins else [("Vary", "Origin")]


def _requested_headers(values: Sequence[str]) -> list[str] | None:
    """``Access-Control-Request-Headers`` as lower-case names, or None when one is no token."""
    names: list[str] = []
    for value in values:
        for item in value.split(","):
            name = item.strip()
            if not name:
                continue
            if len(name) > _MAX_HEADER_NAME or not _TOKEN.fullmatch(name):
                return None
            names.append(name.lower())
            if len(names) > _MAX_REQUEST_HEADERS:
                return None
    return names


def preflight_headers(
    cors: Cors,
    origins: Sequence[str],
    request_methods: Sequence[str],
    request_headers: Sequence[str],
) -> Headers:
    """The headers of the gateway's answer to a preflight; only ``Vary`` when it is refused.

    Allowed means: the origin is allowed, the method is one of ``allowMethods`` (or ``*``), and
    every requested header is one of ``allowHeaders`` (or ``*``), names compared ignoring case.
    A refused preflight gets no ``Access-Control-*`` header, so the browser stops there.
    """
    refused = _vary(cors)
    origin = allowed_origin(cors, origins)
    if origin is None or len(request_methods) != 1:
        return refused
    method = request_methods[0]
    if not _TOKEN.fullmatch(method):
        return refused
    if WILDCARD in cors.allow_methods:
        methods = method  # a token: echoing it is safe, and `*` alone fails with credentials
    elif method.upper() in cors.allow_methods:
        methods = ", ".join(cors.allow_methods)
    else:
        return refused
    names = _requested_headers(request_headers)
    if names is None:
        return refused
    allowed = {name.lower() for name in cors.allow_headers}
    if WILDCARD in allowed:
        # `*` does not cover Authorization (Fetch standard), nor anything with credentials:
        # naming the requested headers works in every case.
        header_list = ", ".join(names)
    elif all(name in allowed for name in names):
        header_list = ", ".join(cors.allow_headers)
    else:
        return refused
    headers: Headers = [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Methods", methods),
    ]
    if header_list:
        headers.append(("Access-Control-Allow-Headers", header_list))
    if cors.allow_credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    headers.append(("Access-Control-Max-Age", str(cors.max_age)))
    return headers + refused


def response_headers(cors: Cors, origins: Sequence[str]) -> Headers:
    """The CORS headers added to the function's answer to an actual (not preflight) request."""
    origin = allowed_origin(cors, origins)
    if origin is None:
        return _vary(cors)
    headers: Headers = [("Access-Control-Allow-Origin", origin)]
    if cors.allow_credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    if cors.expose_headers:
        headers.append(("Access-Control-Expose-Headers", ", ".join(cors.expose_headers)))
    return headers + _vary(cors)


def without_cors(headers: Iterable[tuple[str, str]]) -> Headers:
    """The function's headers less its own ``Access-Control-*``: the configuration decides."""
    return [(name, value) for name, value in headers if not name.lower().startswith(PREFIX)]
