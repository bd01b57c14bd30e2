"""Lambda's management API on the gateway: one route table over the operation modules (ADR 024).

Each operation module (``functions_api``, ``function_settings_api``, ``versions_api``,
``mappings_api``) exports ``ROUTES``, a list of ``Route``; ``dispatch`` matches the raw path's
segments (botocore percent-encodes names, and a decoded ``/`` must not split them) against them.
The handlers are written once against ``kfaas.object_store.ObjectStore`` (a folder in ``kfaas
dev``, the API server in a cluster) and ``kfaas.code_store.CodeStore``; ``store_errors``
translates the store's errors into Lambda's, so every backend fails alike.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kfaas import object_store
from kfaas.object_store import ObjectStore

from . import auth
from .errors import (
    InvalidParameterValue,
    InvalidRequestContent,
    PreconditionFailed,
    ResourceConflict,
    ResourceNotFound,
    ServiceError,
    TooManyRequests,
)
from .limits import CAPACITY_REASON
from .services import Services

Params = Mapping[str, str]
Handler = Callable[[Services, web.Request, Params], Awaitable[web.StreamResponse]]
# Management request bodies other than code uploads: Lambda's configuration is small.
JSON_BODY_LIMIT = 256 * 1024


@dataclass(frozen=True)
class Route:
    """``method`` and a path such as ``/2015-03-31/functions/{FunctionName}/aliases/{Name}``."""

    method: str
    path: str
    handler: Handler

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(part for part in self.path.split("/") if part)

    def match(self, method: str, parts: Sequence[str]) -> dict[str, str] | None:
        pattern = self.segments
        if method != self.method or len(parts) != len(pattern):
            return None
        params: dict[str, str] = {}
        for expected, part in zip(pattern, parts, strict=True):
            if expected.startswith("{") and expected.endswith("}"):
                params[expected[1:-1]] = part
            elif expected != part:
                return None
        return params


def path_parts(request: web.Request) -> list[str]:
    """The raw path's segments, each percent-decoded on its own."""
    raw = request.raw_path.split("?", 1)[0]
    return [urllib.parse.unquote(part) for part in raw.split("/") if part]


async def dispatch(
    services: Services, request: web.Request, routes: Sequence[Route]
) -> web.StreamResponse:
    parts = path_parts(request)
    for route in routes:
        params = route.match(request.method, parts)
        if params is not None:
            return await route.handler(services, request, params)
    raise ResourceNotFound(f"Unknown operation {request.method} {request.path}")


def objects_of(services: Services) -> ObjectStore:
    """The object store, or a clear refusal where this gateway serves only the Invoke API."""
    if services.objects is None:
        raise ServiceError("This gateway does not serve the management API (no object store)")
    return services.objects


async def json_body(request: web.Request, limit: int = JSON_BODY_LIMIT) -> dict[str, Any]:
    """The request's JSON object (``{}`` when empty), read through the signature check."""
    return parse_json(await auth.signed_body(request, limit))


def parse_json(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object (``{}`` when empty); code uploads call it in a thread."""
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestContent(f"Could not parse request body into json: {exc}") from exc
    except RecursionError:  # nested past Python's limit: a hostile body, never a 500
        raise InvalidRequestContent(
            "Could not parse request body into json: nested too deeply"
        ) from None
    if not isinstance(document, dict):
        raise InvalidRequestContent("The request body must be a JSON object")
    return document


@contextlib.contextmanager
def store_errors(what: str, *, revision_given: bool = False) -> Iterator[None]:
    """Translate the object store's errors into Lambda's for an operation on ``what`` (an ARN).

    A ``Conflict`` (someone wrote between our read and our write) is Lambda's
    ``PreconditionFailedException`` when the caller asked for a RevisionId check, else
    ``ResourceConflictException`` ("the operation cannot be performed at this time").
    """
    try:
        yield
    except object_store.ObjectNotFound as exc:
        raise ResourceNotFound(f"Resource not found: {what}") from exc
    except object_store.AlreadyExists as exc:
        raise ResourceConflict(f"Resource already exist: {what}") from exc
    except object_store.Conflict as exc:
        if revision_given:
            raise PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
            ) from exc
        raise ResourceConflict(
            f"The operation cannot be performed at this time: {what} was changed meanwhile"
        ) from exc
    except object_store.Invalid as exc:
        field = f" ({exc.field})" if exc.field else ""
        raise InvalidParameterValue(f"{exc}{field}") from exc
    except object_store.StoreBusy as exc:
        # Lambda's throttling answer, which botocore retries after Retry-After.
        raise TooManyRequests(f"Rate exceeded: {exc}", reason=CAPACITY_REASON) from exc
    except object_store.StoreUnavailable as exc:
        raise ServiceError(f"The function store is unavailable: {exc}") from exc
