"""Lambda API errors, raised anywhere in the gateway and rendered in one place.

botocore reads the error code from the ``x-amzn-ErrorType`` header (then ``__type``), the message
from ``message``/``Message``, and merges other body members (``Reason``) into ``e.response``. Every
error the gateway answers goes through :func:`error_response` so boto3 raises the modeled exception.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from kfaas.events import api_error_body


class ApiError(Exception):
    """An Invoke API error with Lambda's status code and error type."""

    status = 500
    error_type = "ServiceException"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra


class ResourceNotFound(ApiError):
    status = 404
    error_type = "ResourceNotFoundException"


class InvalidRequestContent(ApiError):
    status = 400
    error_type = "InvalidRequestContentException"


class InvalidParameterValue(ApiError):
    status = 400
    error_type = "InvalidParameterValueException"


class RequestTooLarge(ApiError):
    status = 413
    error_type = "RequestTooLargeException"


class RequestEntityTooLarge(ApiError):
    """An upload over Lambda's limits (botocore does not model it: boto3 raises ClientError)."""

    status = 413
    error_type = "RequestEntityTooLargeException"


class ResourceConflict(ApiError):
    status = 409
    error_type = "ResourceConflictException"


class ResourceInUse(ApiError):
    status = 400
    error_type = "ResourceInUseException"


class PreconditionFailed(ApiError):
    """A stale ``RevisionId`` (or another writer in between, when the caller gave one)."""

    status = 412
    error_type = "PreconditionFailedException"


class CodeStorageExceeded(ApiError):
    status = 400
    error_type = "CodeStorageExceededException"


class TooManyRequests(ApiError):
    status = 429
    error_type = "TooManyRequestsException"

    def __init__(self, message: str, *, reason: str, retry_after_seconds: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)}, Reason=reason)
        self.reason = reason


class ResourceNotReady(ApiError):
    status = 502
    error_type = "ResourceNotReadyException"


class ServiceError(ApiError):
    status = 500
    error_type = "ServiceException"


class Forbidden(ApiError):
    status = 403
    error_type = "AccessDeniedException"


class Unauthenticated(ApiError):
    """The caller could not be authenticated (``kfaas.gateway.auth``); subclasses say why."""

    status = 403


class MissingAuthenticationToken(Unauthenticated):
    error_type = "MissingAuthenticationTokenException"


class IncompleteSignature(Unauthenticated):
    status = 400
    error_type = "IncompleteSignatureException"


class UnrecognizedClient(Unauthenticated):
    error_type = "UnrecognizedClientException"


class InvalidSignature(Unauthenticated):
    error_type = "InvalidSignatureException"


def error_response(error: ApiError, request_id: str) -> web.Response:
    body = api_error_body(error.error_type, error.message, **error.extra)
    headers = {
        "x-amzn-ErrorType": error.error_type,
        "x-amzn-RequestId": request_id,
        **error.headers,
    }
    return web.Response(
        status=error.status,
        body=json.dumps(body).encode(),
        headers=headers,
        content_type="application/json",
    )
