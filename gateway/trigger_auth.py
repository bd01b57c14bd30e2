"""HTTP trigger auth, as API Gateway and function URLs do it: ``spec.http.auth`` per function.

``NONE`` lets every request through; ``API_KEY`` wants an ``x-api-key`` header holding one of the
keys the function names; ``JWT`` wants a bearer token from the configured issuer for one of the
audiences, signed RS256 or ES256 by a key from its JWKS URL, Secret or ConfigMap, and hands the
claims to the handler in ``requestContext.authorizer.jwt``; ``AWS_IAM`` wants what the Invoke API
wants (``auth``: SigV4 for service ``lambda`` or a ServiceAccount token) from a caller RBAC allows
``invoke`` on the function, and hands it over in ``requestContext.authorizer.iam``.

Refusals are API Gateway's own answers: 401 ``{"message":"Unauthorized"}`` for missing or wrong
credentials (with a ``www-authenticate`` challenge for JWT), 403 ``{"message":"Forbidden"}`` for
valid ones that are not enough. The check runs before the body is read, and a bad token is never a
500: the pure checks in ``trigger_tokens`` turn every failure into a refusal with a fixed
description.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from kfaas import sigv4
from kfaas.events import ANONYMOUS_ACCOUNT, HttpAuthorizer, IamAuthorizer
from kfaas.manifests import Function, Jwt

from . import sigv4 as verifier
from .auth import AUTH, Principal, TtlCache, allowed, identify, signed_request
from .errors import Unauthenticated
from .invoker import SYNC_PAYLOAD_LIMIT
from .middleware import read_body
from .trigger_keys import JwksClient, KeySources, KeysUnavailable
from .trigger_tokens import (
    LEEWAY_SECONDS,
    SigningKey,
    TokenRefused,
    api_key_matches,
    bearer_token,
    jwt_authorizer,
    load_key_set,
    parse_api_keys,
    token_header,
    token_scopes,
    verify_token,
)

log = logging.getLogger("kfaas.gateway.trigger_auth")

API_KEY_HEADER: Final = "x-api-key"
# A misconfigured trigger is logged once a minute per function, not once per refused request.
_LOG_INTERVAL_SECONDS: Final = 60.0
_MAX_PARSED_KEY_SETS: Final = 256
# Bounded in entries: only tokens that passed verification get in, each at most 7 KB of claims.
_VERIFIED_TOKENS: Final = 1024
_VERIFIED_TTL_SECONDS: Final = 60.0


@dataclass(frozen=True)
class Verdict:
    """Either the request may go on (with what the handler learns of the caller) or an answer.

    ``body`` is the request body when the check had to read it (a SigV4 signature covers it).
    """

    authorizer: HttpAuthorizer | None = None
    refusal: web.Response | None = None
    body: bytes | None = None


def _answer(status: int, message: str, request_id: str, challenge: str | None) -> web.Response:
    headers = {"x-amzn-RequestId": request_id}
    if challenge is not None:
        headers["www-authenticate"] = challenge
    return web.Response(
        status=status,
        body=json.dumps({"message": message}, separators=(",", ":")).encode(),
        content_type="application/json",
        headers=headers,
    )


def unauthorized(request_id: str, challenge: str | None = None) -> Verdict:
    return Verdict(refusal=_answer(401, "Unauthorized", request_id, challenge))


def forbidden(request_id: str, challenge: str | None = None) -> Verdict:
    return Verdict(refusal=_answer(403, "Forbidden", request_id, challenge))


def bearer_challenge(error: str | None = None, description: str = "", scope: str = "") -> str:
    """The ``www-authenticate`` value API Gateway sends with a refused JWT (RFC 6750)."""
    if error is None:
        return "Bearer"
    # Descriptions come from trigger_tokens' fixed vocabulary, scopes from the validated manifest.
    return f'Bearer scope="{scope}" error="{error}" error_description="{description}"'


def iam_authorizer(request: web.Request, principal: Principal) -> IamAuthorizer:
    """``requestContext.authorizer.iam`` of a function URL; kfaas callers are Kubernetes users."""
    try:
        claim = verifier.parse_claim(signed_request(request), service=sigv4.SERVICE)
    except Unauthenticated:
        claim = None
    return {
        "accessKey": claim.access_key_id if claim is not None else "",
        "accountId": ANONYMOUS_ACCOUNT,
        "callerId": principal.user,
        "cognitoIdentity": None,
        "principalOrgId": None,
        "userArn": principal.user,
        "userId": principal.user,
    }


@dataclass(frozen=True)
class _Verified:
    config: Jwt
    claims: dict[str, Any]
    expires: float


class TriggerAuth:
    """Decides, for one request to one function's trigger, whether the handler may see it."""

    def __init__(self, sources: KeySources, jwks: JwksClient | None = None) -> None:
        self.sources = sources
        self.jwks = jwks or JwksClient()
        self._logged: dict[str, float] = {}
        # Tokens accepted lately: a client reusing its token costs a lookup, not a signature
        # check. Short-lived, so a key removed from a JWKS stops working within a minute.
        self._verified: TtlCache[tuple[str, bytes], _Verified] = TtlCache(
            _VERIFIED_TTL_SECONDS, _VERIFIED_TOKENS
        )
        # Key texts from Secrets, ConfigMaps and files, parsed once while they stay the same.
        self._parsed: dict[tuple[str, ...], list[SigningKey]] = {}

    async def close(self) -> None:
        await self.jwks.close()

    async def check(self, function: Function, request: web.Request, request_id: str) -> Verdict:
        http = function.spec.http
        if http.auth == "NONE":
            return Verdict()
        if http.auth == "API_KEY" and http.api_key is not None:
            return await self._api_key(function, request, request_id)
        if http.auth == "JWT" and http.jwt is not None:
            return await self._jwt(function, http.jwt, request, request_id)
        if http.auth == "AWS_IAM":
            return await self._iam(function, request, request_id)
        self._warn(function, f"auth {http.auth} is not supported by this gateway")
        return forbidden(request_id)

    async def _iam(self, function: Function, request: web.Request, request_id: str) -> Verdict:
        """SigV4 (service ``lambda``, as function URLs) or a ServiceAccount token, then RBAC."""
        settings = request.app.get(AUTH)
        if settings is None or not settings.enabled:
            # Without credentials every caller would be anonymous: refuse rather than open up.
            self._warn(function, "auth AWS_IAM needs the gateway started with --auth sigv4")
            return forbidden(request_id)
        try:
            finish = await identify(request, service=sigv4.SERVICE)
            body = await read_body(request, SYNC_PAYLOAD_LIMIT)
            principal = finish(body)
        except Unauthenticated:
            return unauthorized(request_id)
        namespace, name = function.metadata.namespace, function.metadata.name
        if not await allowed(request, principal, "invoke", namespace, name):
            return forbidden(request_id)
        return Verdict(authorizer={"iam": iam_authorizer(request, principal)}, body=body)

    async def _api_key(self, function: Function, request: web.Request, request_id: str) -> Verdict:
        presented = request.headers.getall(API_KEY_HEADER, [])
        if len(presented) != 1:
            return unauthorized(request_id)
        source = function.spec.http.api_key
        assert source is not None
        try:
            keys = parse_api_keys(await self.sources.values(function.metadata.namespace, source))
        except KeysUnavailable as exc:
            self._warn(function, f"API keys unavailable: {exc}")
            return unauthorized(request_id)
        if not keys:
            self._warn(function, "the API key source holds no key")
        if api_key_matches(presented[0], keys):
            return Verdict()
        return unauthorized(request_id)

    async def _jwt(
        self, function: Function, config: Jwt, request: web.Request, request_id: str
    ) -> Verdict:
        headers = request.headers.getall("Authorization", [])
        try:
            if len(headers) > 1:
                raise TokenRefused("more than one Authorization header")
            token = bearer_token(headers[0] if headers else None)
            claims = await self._claims(function, config, token)
        except TokenRefused as refused:
            if refused.description == "missing token":
                return unauthorized(request_id, bearer_challenge())
            challenge = bearer_challenge("invalid_token", refused.description)
            return unauthorized(request_id, challenge)
        if config.scopes and not set(config.scopes) & set(token_scopes(claims)):
            scope = " ".join(config.scopes)
            challenge = bearer_challenge("insufficient_scope", "token lacks the scope", scope)
            return forbidden(request_id, challenge)
        return Verdict(authorizer={"jwt": jwt_authorizer(claims)})

    async def _claims(self, function: Function, config: Jwt, token: str) -> dict[str, Any]:
        """The token's claims, verified now or, for a token this trigger accepted lately, then."""
        cache_key = (function.key, hashlib.sha256(token.encode()).digest())
        known = self._verified.get(cache_key)
        # `config is`: a changed Function is a new object, so its tokens are verified afresh.
        if known is not None and known.config is config and time.time() < known.expires:
            return known.claims
        _, kid = token_header(token)
        keys = await self._signing_keys(function, config, kid)
        claims = verify_token(token, keys, issuer=config.issuer, audiences=config.audiences)
        expires = float(claims["exp"]) + LEEWAY_SECONDS
        self._verified.put(cache_key, _Verified(config, claims, expires))
        return claims

    async def _signing_keys(
        self, function: Function, config: Jwt, kid: str | None
    ) -> list[SigningKey]:
        if config.jwks_url is not None:
            return await self.jwks.keys(config.jwks_url, kid=kid)
        assert config.keys is not None
        try:
            texts = await self.sources.values(function.metadata.namespace, config.keys)
        except KeysUnavailable as exc:
            self._warn(function, f"JWT keys unavailable: {exc}")
            return []
        parsed = self._parsed.get(tuple(texts))
        if parsed is None:
            if len(self._parsed) >= _MAX_PARSED_KEY_SETS:
                self._parsed.clear()
            parsed = self._parsed[tuple(texts)] = load_key_set(texts)
        return parsed

    def _warn(self, function: Function, message: str) -> None:
        now = time.monotonic()
        if now - self._logged.get(function.key, float("-inf")) >= _LOG_INTERVAL_SECONDS:
            self._logged[function.key] = now
            log.warning("function %s: HTTP trigger refused requests: %s", function.key, message)
