"""GetFunction, GetFunctionConfiguration and ListFunctions over the objects the API writes.

Reads come from the object store (``management.objects_of``: a folder in ``kfaas dev``, the API
server in a cluster), so a client reads its own writes right after CreateFunction, and what
``kubectl apply`` wrote is visible too, with its real RevisionId, LastModified and State (ADR
024). A gateway without an object store (one that serves only the Invoke API) answers from its
registry of watched Functions, as before. A qualifier names a published version
(``<name>.<N>``, a ``FunctionVersion``) or an alias (``<name>.<alias>``, a ``FunctionAlias``,
read through to its version).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

from aiohttp import web

from kfaas import object_store
from kfaas.api_objects import from_api_object
from kfaas.lambda_code import CodeFacts
from kfaas.lambda_requests import ROLE_ANNOTATION
from kfaas.lambda_shapes import (
    InvalidParameter,
    ObjectFacts,
    function_configuration,
    object_facts,
)
from kfaas.lambda_tags import ANNOTATION as TAGS_ANNOTATION
from kfaas.lambda_tags import MalformedTags, decode_tags
from kfaas.manifests import Function, ManifestError
from kfaas.names import (
    LATEST,
    FunctionRef,
    InvalidFunctionName,
    QualifierMismatch,
    function_arn,
    parse_function_name,
)
from kfaas.pagination import paginate, parse_max_items
from kfaas.version_manifests import FunctionVersion, parse_alias, parse_version, template_code

from . import auth, function_code, management
from .errors import InvalidParameterValue, ResourceNotFound, ServiceError
from .services import Services

T = TypeVar("T")

# Signs ListFunctions' markers. Fixed until the gateways share a key (ADR 024): the signature
# refuses a garbled marker; a made-up one could only move where the listing starts, and what is
# listed is still filtered by the caller's permissions.
_MARKER_KEY: Final = b"kfaas ListFunctions marker v1"
_DIGITS: Final = frozenset("0123456789")


@dataclass(frozen=True)
class Read:
    """A function (or a published version's frozen template) and the facts of its object."""

    function: Function
    facts: ObjectFacts
    body: Mapping[str, Any]
    version: str = LATEST
    # The alias the read went through: Lambda then qualifies FunctionArn with it.
    alias: str | None = None
    # A published version's code as its spec states it (``published_code``); None for $LATEST.
    code: CodeFacts | None = None


def function_ref(services: Services, request: web.Request, raw: str) -> FunctionRef:
    """The function a path names, with the request's ``Qualifier``."""
    try:
        return parse_function_name(
            raw, services.registry.default_namespace, qualifier=request.query.get("Qualifier")
        )
    except (InvalidFunctionName, QualifierMismatch) as exc:
        raise InvalidParameterValue(f"FunctionName: {exc}") from exc


def arn(services: Services, ref: FunctionRef) -> str:
    return services.registry.arn(ref.namespace, ref.name)


def stored(parse: Callable[[Mapping[str, Any]], T], body: Mapping[str, Any], what: str) -> T:
    """``parse(body)`` of an object read from the store; one written by hand past the schema is
    the platform's fault, not the caller's: ServiceException naming ``what``."""
    try:
        return parse(body)
    except ManifestError as exc:
        raise ServiceError(f"The stored {what} cannot be read: {exc}") from exc


def parse_function(body: Mapping[str, Any]) -> Function:
    return stored(lambda b: from_api_object(b, Function), body, "function")


def published_code(version: FunctionVersion) -> CodeFacts:
    """A version's CodeSha256 as Lambda reports it: the one it was published with.

    ``spec.codeSha256`` as written, beside the size and package type of the template's code. A
    version whose digest is not its template's is never served (``checked_code``): kfaas dev
    refuses it and the operator marks it Failed with both digests, which its State then says.
    """
    return replace(template_code(version.spec.template), sha256=version.spec.code_sha256)


def _alias_target(body: Mapping[str, Any]) -> str:
    return stored(parse_alias, body, "alias").spec.function_version


async def read(services: Services, ref: FunctionRef) -> Read:
    """The function, version or alias ``ref`` names; ResourceNotFound if there is none."""
    what = arn(services, ref) + (f":{ref.qualifier}" if ref.qualifier else "")
    if services.objects is None:
        if ref.qualifier not in (None, LATEST):
            raise ResourceNotFound(f"Function not found: {what}")
        function = services.registry.get_ref(ref)
        facts = services.registry.facts(function.key)
        return Read(function, facts.object, {})
    store = services.objects
    qualifier = ref.qualifier or LATEST
    alias_name = None
    with management.store_errors(what):
        if qualifier != LATEST and not set(qualifier) <= _DIGITS:
            alias_name = qualifier
            alias = await store.get(
                object_store.FUNCTION_ALIASES, ref.namespace, f"{ref.name}.{qualifier}"
            )
            qualifier = _alias_target(alias)
        if qualifier == LATEST:
            body = await store.get(object_store.FUNCTIONS, ref.namespace, ref.name)
            return Read(parse_function(body), object_facts(body), body, alias=alias_name)
        body = await store.get(
            object_store.FUNCTION_VERSIONS, ref.namespace, f"{ref.name}.{qualifier}"
        )
    version = stored(parse_version, body, "version")
    return Read(
        version.function(), object_facts(body), body, qualifier, alias_name,
        code=published_code(version),
    )  # fmt: skip


async def code_facts(services: Services, loaded: Read) -> CodeFacts | None:
    if loaded.code is not None:  # a published version: its own CodeSha256
        return loaded.code
    if services.objects is None and loaded.version == LATEST:
        return services.registry.facts(loaded.function.key).code
    return await function_code.code_facts(loaded.function)


def configuration(services: Services, loaded: Read, code: CodeFacts | None) -> dict[str, Any]:
    """Lambda's FunctionConfiguration of what was read."""
    function = loaded.function
    if loaded.version != LATEST:  # a version's description is its own, not its template's
        description = str((loaded.body.get("spec") or {}).get("description", ""))
    else:
        description = function.spec.description
    answer: dict[str, Any] = dict(
        function_configuration(
            function,
            loaded.facts,
            code,
            region=services.registry.region,
            version=loaded.version,
            role=function.metadata.annotations.get(ROLE_ANNOTATION),
            description=description,
        )
    )
    if loaded.alias is not None:
        namespace, name = function.metadata.namespace, function.metadata.name
        answer["FunctionArn"] = function_arn(
            namespace, name, region=services.registry.region, qualifier=loaded.alias
        )
    return answer


async def authorize_read(
    services: Services, request: web.Request, ref: FunctionRef, action: str
) -> None:
    """``get functions``, and ``get`` on the version or alias a qualifier names (ADR 024)."""
    principal = auth.principal_of(request)
    await auth.authorize(
        request, principal, "get", ref.namespace, ref.name,
        action=action, resource=arn(services, ref),
    )  # fmt: skip
    if ref.qualifier in (None, LATEST):
        return
    plural = (
        object_store.FUNCTION_VERSIONS
        if set(ref.qualifier) <= _DIGITS
        else object_store.FUNCTION_ALIASES
    )
    await auth.authorize(
        request, principal, "get", ref.namespace, f"{ref.name}.{ref.qualifier}",
        action=action, resource=f"{arn(services, ref)}:{ref.qualifier}", plural=plural,
    )  # fmt: skip


async def get_function_configuration(
    services: Services, request: web.Request, params: Mapping[str, str]
) -> web.Response:
    ref = function_ref(services, request, params["FunctionName"])
    await authorize_read(services, request, ref, "GetFunctionConfiguration")
    loaded = await read(services, ref)
    return web.json_response(configuration(services, loaded, await code_facts(services, loaded)))


async def get_function(
    services: Services, request: web.Request, params: Mapping[str, str]
) -> web.Response:
    ref = function_ref(services, request, params["FunctionName"])
    await authorize_read(services, request, ref, "GetFunction")
    loaded = await read(services, ref)
    answer: dict[str, Any] = {
        "Configuration": configuration(services, loaded, await code_facts(services, loaded)),
        "Code": await function_code.code_location(
            services, request, loaded.function, f"{ref.namespace}/{ref.name}:{loaded.version}"
        ),
    }
    tags = _tags(loaded)
    if tags:
        answer["Tags"] = tags
    reserved = loaded.function.spec.concurrency.reserved
    if reserved is not None:
        answer["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    return web.json_response(answer)


def _tags(loaded: Read) -> dict[str, str]:
    annotations = (loaded.body.get("metadata") or {}).get("annotations") or {}
    try:
        return decode_tags(annotations.get(TAGS_ANNOTATION))
    except MalformedTags:  # edited by hand: the function is still readable
        return {}


async def _listed(services: Services) -> list[Read]:
    if services.objects is None:
        functions = services.registry.list()
        return [
            Read(function, services.registry.facts(function.key).object, {})
            for function in functions
        ]
    with management.store_errors("functions"):
        bodies = await services.objects.list(object_store.FUNCTIONS)
    return [Read(parse_function(body), object_facts(body), body) for body in bodies]


async def list_functions(
    services: Services, request: web.Request, params: Mapping[str, str]
) -> web.Response:
    """The functions of the namespaces the caller may list; environments only with ``get``.

    Paged by ``MaxItems`` (at most 50, as Lambda) and the ``NextMarker`` of the previous page.
    """
    for refused in ("MasterRegion", "FunctionVersion"):
        if request.query.get(refused):
            raise InvalidParameterValue(
                f"{refused} is not supported by kfaas: ListVersionsByFunction lists versions"
            )
    try:
        max_items = parse_max_items(request.query.get("MaxItems"))
    except InvalidParameter as exc:
        raise InvalidParameterValue(str(exc)) from exc
    principal = auth.principal_of(request)
    # Read with the listing: a function removed while permissions are checked is listed as it
    # was, as a listing from the API server would.
    visible: list[tuple[Read, bool]] = []
    for loaded in await _listed(services):
        namespace = loaded.function.metadata.namespace
        if await auth.allowed(request, principal, "list", namespace):
            visible.append((loaded, await auth.allowed(request, principal, "get", namespace)))
    try:
        page = paginate(
            visible,
            lambda item: (item[0].function.metadata.namespace, item[0].function.metadata.name),
            marker=request.query.get("Marker"),
            max_items=max_items,
            scope="ListFunctions",
            key=_MARKER_KEY,
        )
    except InvalidParameter as exc:
        raise InvalidParameterValue(str(exc)) from exc
    functions = []
    for loaded, may_get in page.items:
        listed = configuration(services, loaded, await code_facts(services, loaded))
        # Lambda's ListFunctions carries no state fields.
        for state in ("State", "StateReason", "StateReasonCode", "LastUpdateStatus"):
            listed.pop(state, None)
        for reason in ("LastUpdateStatusReason", "LastUpdateStatusReasonCode"):
            listed.pop(reason, None)
        if not may_get:
            listed.pop("Environment", None)
        functions.append(listed)
    body: dict[str, Any] = {"Functions": functions}
    if page.next_marker is not None:
        body["NextMarker"] = page.next_marker
    return web.json_response(body)
