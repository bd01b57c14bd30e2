"""Who is calling the Invoke API (authentication) and what they may do (authorization).

The API other parts of the gateway use (HTTP triggers with ``auth: AWS_IAM`` among them):

- ``await authenticate(request, body, service="lambda") -> Principal`` checks the request's SigV4
  signature (``Authorization`` header or presigned query) over ``body``, or its
  ``Authorization: Bearer`` Kubernetes token. It raises an ``errors.Unauthenticated`` subclass
  (``MissingAuthenticationToken``, ``IncompleteSignature``, ``UnrecognizedClient``,
  ``InvalidSignature``); with ``--auth none`` it returns ``ANONYMOUS`` without looking.
- ``await authorize(request, principal, verb, namespace, name, action=..., resource=...)`` raises
  ``AccessDenied`` (403 ``AccessDeniedException`` naming the Lambda action and the resource)
  unless the principal may perform ``verb`` (``invoke``, ``get``, ``list``…) on
  ``functions.kfaas.dev`` in ``namespace``; ``await allowed(...)`` answers the same as a bool.
- ``enabled(request)`` says whether this gateway checks callers at all: with ``--auth none`` there
  are no credentials, ``authenticate`` answers ``ANONYMOUS`` and ``authorize`` allows everything,
  so a caller that must never be open (an ``AWS_IAM`` trigger) refuses when it is False.
- ``principal_of(request)`` is whoever the ``authentication`` middleware identified on an Invoke
  API request, and ``await signed_body(request, limit)`` the body it read to check the signature
  (read there and then otherwise), so no handler reads a body twice.

Where credentials and rules come from is behind two small Protocols: ``Authenticator`` (access
keys and bearer tokens) and ``Authorizer``. ``kfaas dev --credentials FILE`` uses the file's keys
and rules (``auth_rules``), a cluster gateway its labelled Secrets, TokenReview and
SubjectAccessReview (``auth_clients``). See docs/decisions/009-invoke-api-auth.md.
"""

from __future__ import annotations

import collections
import datetime
import re
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from kfaas import sigv4

from . import sigv4 as verifier
from .errors import (
    Forbidden,
    MissingAuthenticationToken,
    RequestTooLarge,
    UnrecognizedClient,
)
from .invoker import ASYNC_PAYLOAD_LIMIT, SYNC_PAYLOAD_LIMIT
from .limits import CODE_UPLOAD_LIMIT, code_upload
from .middleware import read_body

MODES = ("none", "sigv4")
VERBS = ("invoke", "get", "list", "create", "update", "patch", "delete")
# The API versions Lambda's paths start with: everything but probes, metrics and HTTP triggers.
API_PATH = re.compile(r"/\d{4}-\d{2}-\d{2}/")
MAX_BEARER_TOKEN = 8192
UNRECOGNIZED = "The security token included in the request is invalid."
INTERNAL_GROUP = "system:kfaas:internal"
# GetFunction's Code.Location downloads: signed URLs (ADR 025), fetched without credentials.
CODE_LOCATION_PATH = "/2015-03-31/code/"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller as Kubernetes RBAC names it: a user and its groups."""

    user: str
    groups: tuple[str, ...] = ()


ANONYMOUS = Principal("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    principal: Principal


class Authenticator(Protocol):
    def credential(self, access_key_id: str) -> Credential | None:
        """The credential of an access key id, or None for an unknown key (no I/O)."""

    async def token(self, token: str) -> Principal | None:
        """Whose bearer token this is, or None when it is not valid."""


class Authorizer(Protocol):
    async def allowed(
        self,
        principal: Principal,
        verb: str,
        namespace: str,
        name: str | None,
        *,
        plural: str = "functions",
    ) -> bool:
        """May ``principal`` perform ``verb`` on ``<plural>.kfaas.dev`` ``namespace/name``?"""


class AccessDenied(Forbidden):
    """The caller is authenticated but not allowed (rendered as ``AccessDeniedException``)."""


@dataclass
class Auth:
    """How one gateway checks callers: mode ``none`` lets every request through as ANONYMOUS."""

    mode: str
    authenticator: Authenticator | None = None
    authorizer: Authorizer | None = None
    clock: Callable[[], float] = time.time

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


AUTH = web.AppKey("auth", Auth)
PRINCIPAL = web.RequestKey("principal", Principal)
SIGNED_BODY = web.RequestKey("signed_body", bytes)


def _auth(request: web.Request) -> Auth:
    return request.app.get(AUTH) or Auth("none")


def signed_request(request: web.Request) -> verifier.SignedRequest:
    path, _, query = request.raw_path.partition("?")
    return verifier.SignedRequest(request.method, path, query, list(request.headers.items()))


async def authenticate(
    request: web.Request, body: bytes, *, service: str = sigv4.SERVICE
) -> Principal:
    """The caller of ``request`` (whose body is ``body``); see the module docstring."""
    finish = await identify(request, service=service)
    return finish(body)


async def identify(
    request: web.Request, *, service: str = sigv4.SERVICE
) -> Callable[[bytes], Principal]:
    """The checks that need no body (key known, time in range); returns the one that does."""
    auth = _auth(request)
    if not auth.enabled or auth.authenticator is None:
        return lambda body: ANONYMOUS
    authenticator = auth.authenticator
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer ") and len(request.headers.getall("Authorization")) == 1:
        token = authorization[len("Bearer ") :].strip()
        principal = await authenticator.token(token) if len(token) <= MAX_BEARER_TOKEN else None
        if principal is None:
            raise UnrecognizedClient(UNRECOGNIZED)
        return lambda body: principal
    signed = signed_request(request)
    claim = verifier.parse_claim(signed, service=service)
    if claim is None:
        raise MissingAuthenticationToken("Missing Authentication Token")
    credential = authenticator.credential(claim.access_key_id)
    if credential is None:
        raise UnrecognizedClient(UNRECOGNIZED)
    verifier.check_time(claim, datetime.datetime.fromtimestamp(auth.clock(), datetime.UTC))

    def finish(body: bytes) -> Principal:
        verifier.verify(signed, claim, credential.secret_access_key, body)
        return credential.principal

    return finish


def enabled(request: web.Request) -> bool:
    """Whether this gateway authenticates callers (``--auth sigv4``) or lets anyone in."""
    return _auth(request).enabled


def principal_of(request: web.Request) -> Principal:
    principal: Principal = request.get(PRINCIPAL, ANONYMOUS)
    return principal


async def signed_body(request: web.Request, limit: int) -> bytes:
    """The body the authentication middleware already read, else read now (413 over ``limit``)."""
    if SIGNED_BODY not in request:
        return await read_body(request, limit)
    body = request[SIGNED_BODY]
    if len(body) > limit:
        raise RequestTooLarge(
            f"{len(body)} byte payload is too large for the Invoke operation (max {limit} bytes)"
        )
    return body


async def allowed(
    request: web.Request,
    principal: Principal,
    verb: str,
    namespace: str,
    name: str | None = None,
    *,
    plural: str = "functions",
) -> bool:
    auth = _auth(request)
    if not auth.enabled or auth.authorizer is None:
        return True
    return await auth.authorizer.allowed(principal, verb, namespace, name, plural=plural)


async def authorize(
    request: web.Request,
    principal: Principal,
    verb: str,
    namespace: str,
    name: str | None,
    *,
    action: str,
    resource: str,
    plural: str = "functions",
) -> None:
    """Raise ``AccessDenied`` unless ``principal`` may ``verb`` the object (Lambda's message).

    ``plural`` is the kfaas resource RBAC is asked about (``functions``, ``functionversions``,
    ``functionaliases``, ``eventsourcemappings``); ``resource`` is the ARN the message names.
    """
    if not await allowed(request, principal, verb, namespace, name, plural=plural):
        raise AccessDenied(
            f"User: {principal.user} is not authorized to perform: lambda:{action} on resource: "
            f"{resource} because no identity-based policy allows the lambda:{action} action"
        )


def body_limit_of(request: web.Request) -> int:
    """The largest body the API accepts for this request (Event invocations take less, code
    uploads more)."""
    if code_upload(request):
        return CODE_UPLOAD_LIMIT
    event = request.headers.get("X-Amz-Invocation-Type") == "Event"
    return ASYNC_PAYLOAD_LIMIT if event else SYNC_PAYLOAD_LIMIT


@web.middleware
async def authentication(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Identify the caller of every Invoke API request before any handler runs.

    Unsigned, unknown-key and stale requests are refused before their body is read.
    """
    if not _auth(request).enabled or not API_PATH.match(request.path):
        return await handler(request)
    if request.path.startswith(CODE_LOCATION_PATH):  # the signed URL is its own capability
        return await handler(request)
    finish = await identify(request)
    body = await read_body(request, body_limit_of(request))
    request[SIGNED_BODY] = body
    request[PRINCIPAL] = finish(body)
    return await handler(request)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """At most ``size`` answers, each forgotten ``ttl`` seconds after it was stored."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._entries: collections.OrderedDict[K, tuple[float, V]] = collections.OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (self.clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
