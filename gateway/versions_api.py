"""Versions (ADR 024 slice 6): PublishVersion, ListVersionsByFunction, and DeleteFunction of one
version; the alias operations are ``aliases_api``'s, served with these routes.

Publishing freezes the Function's spec as a ``FunctionVersion`` ``<function>.<N>``: its code is
pinned (inline copied, an image or a stored zip kept, a ``code.path`` folder zipped into the
code store; a ``code.configMap`` is refused: the gateway does not read ConfigMaps) and the
template's digest (``configSha256``) compared with the newest version's, so publishing unchanged
code and configuration returns that version, as Lambda does. Numbers are never reused: the
Function's ``kfaas.dev/last-version`` annotation is bumped, with the read resourceVersion as
precondition, before the version is created (by its own field manager, so $LATEST's LastModified
and RevisionId do not move). ``publish_version`` and ``delete_version`` are also what
``functions_api`` calls (CreateFunction/UpdateFunctionCode with Publish, DeleteFunction with a
Qualifier).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from kfaas import object_store
from kfaas.code import tree_files
from kfaas.lambda_code import canonical_zip
from kfaas.lambda_requests import ROLE_ANNOTATION
from kfaas.lambda_shapes import object_facts, revision_id
from kfaas.lambda_versions import (
    LAST_VERSION_ANNOTATION,
    config_sha256,
    next_version,
    parse_version,
    version_name,
)
from kfaas.manifests import API_VERSION, Code, Function, StoredZip
from kfaas.names import LATEST, FunctionRef, function_arn
from kfaas.object_store import Body
from kfaas.pagination import paginate, parse_max_items
from kfaas.version_manifests import (
    FUNCTION_LABEL,
    VERSION_LABEL,
    FunctionVersion,
    routes_to,
    template_code,
)
from kfaas.version_manifests import parse_version as parse_version_object

from . import aliases_api, auth, function_code, function_reads
from .aliases_api import of_function, owner_reference, string_field, unqualified
from .errors import (
    InvalidParameterValue,
    PreconditionFailed,
    ResourceConflict,
    ResourceNotFound,
    ServiceError,
)
from .management import Params, Route, json_body, objects_of, store_errors
from .object_access import WRITE_ATTEMPTS, lambda_parameters
from .services import Services

VERSIONS: Final = "/2015-03-31/functions/{FunctionName}/versions"
# Writes only the last-version annotation: a manager of its own, so the write never counts as
# a change of $LATEST's spec (LastModified), as Lambda's PublishVersion leaves $LATEST alone.
PUBLISH_MANAGER: Final = "kfaas-gateway-versions"


def _version(body: Mapping[str, Any]) -> FunctionVersion:
    return function_reads.stored(parse_version_object, body, "version")


async def function_versions(
    services: Services, ref: FunctionRef, function: Mapping[str, Any] | None = None
) -> list[tuple[FunctionVersion, Body]]:
    """The function's versions by number, found by spec (``kubectl`` may omit the labels), of
    ``function``'s incarnation when it is given."""
    with store_errors(f"versions of {function_reads.arn(services, ref)}"):
        bodies = await objects_of(services).list(object_store.FUNCTION_VERSIONS, ref.namespace)
    found = [(_version(body), body) for body in bodies if of_function(body, function)]
    mine = [(version, body) for version, body in found if version.spec.function_name == ref.name]
    return sorted(mine, key=lambda item: item[0].spec.version)


def version_configuration(services: Services, body: Mapping[str, Any]) -> dict[str, Any]:
    """Lambda's FunctionConfiguration of a published version (FunctionArn qualified with N)."""
    version = _version(body)
    code = function_reads.published_code(version)
    loaded = function_reads.Read(
        version.function(), object_facts(body), body, version=str(version.spec.version), code=code
    )
    return function_reads.configuration(services, loaded, code)


async def _pinned_code(services: Services, function: Function) -> Code:
    """The function's code as a version keeps it: never a folder or a ConfigMap."""
    code = function.spec.code
    if code.config_map is not None:
        raise InvalidParameterValue(
            "FunctionName: a function with code.configMap cannot be published, as the gateway "
            "does not read ConfigMaps; deploy its code inline or as a zip (UpdateFunctionCode) "
            "and publish again"
        )
    root = function.code_root()
    if root is None:  # inline, image or zip: pinned already
        return code
    files = await asyncio.to_thread(lambda: tree_files(root) if root.is_dir() else {})
    package = await asyncio.to_thread(canonical_zip, files)
    digest, size = await function_code.store_zip(services, package)
    return Code(zip=StoredZip(sha256=digest.hex, size=size))


def _check_revision(body: Mapping[str, Any], given: str | None) -> None:
    facts = object_facts(body)
    if given is not None and given != revision_id(facts.uid, facts.generation):
        raise PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. "
            "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
        )


def _version_body(
    function: Mapping[str, Any], number: int, template: dict[str, Any], *, description: str,
    code_sha256: str, digest: str,
) -> Body:  # fmt: skip
    metadata = function["metadata"]
    annotations = metadata.get("annotations") or {}
    frozen = {key: annotations[key] for key in (ROLE_ANNOTATION,) if key in annotations}
    return {
        "apiVersion": API_VERSION,
        "kind": "FunctionVersion",
        "metadata": {
            "name": version_name(metadata["name"], number),
            "namespace": metadata["namespace"],
            "labels": {FUNCTION_LABEL: metadata["name"], VERSION_LABEL: str(number)},
            **({"annotations": frozen} if frozen else {}),
            "ownerReferences": [owner_reference(function)],
        },
        "spec": {
            "functionName": metadata["name"],
            "version": number,
            "description": description,
            "codeSha256": code_sha256,
            "configSha256": digest,
            "template": template,
        },
    }


async def publish_version(
    services: Services,
    namespace: str,
    name: str,
    *,
    description: str = "",
    code_sha256: str | None = None,
    revision_id: str | None = None,
) -> dict[str, Any]:
    """PublishVersion: the new (or unchanged newest) version's configuration.

    The caller is authorized already (``create functionversions``). ``code_sha256`` and
    ``revision_id`` are Lambda's preconditions on $LATEST: its CodeSha256 (a mismatch is
    InvalidParameterValueException, as Lambda answers) and its RevisionId (412).
    """
    store = objects_of(services)
    ref = FunctionRef(namespace, name, None)
    what = function_reads.arn(services, ref)
    for attempt in range(WRITE_ATTEMPTS):
        with store_errors(what):
            body = await store.get(object_store.FUNCTIONS, namespace, name)
        _check_revision(body, revision_id)
        function = function_reads.parse_function(body)
        if code_sha256 is not None:
            current = await function_code.code_facts(function)
            if current is None or current.sha256 != code_sha256:
                raise InvalidParameterValue(
                    f"CodeSha256 ({code_sha256}) is different from current CodeSha256 in "
                    f"$LATEST ({current.sha256 if current else 'unknown'}). Please try again "
                    "with the CodeSha256 in $LATEST."
                )
        pinned = function.spec.model_copy(update={"code": await _pinned_code(services, function)})
        template = pinned.model_dump(mode="json", by_alias=True, exclude_none=True)
        digest = config_sha256(template)
        code = template_code(pinned).sha256
        versions = await function_versions(services, ref, body)
        newest = versions[-1][0].spec if versions else None
        # Unchanged code and configuration: that version, as Lambda answers — unless it was
        # applied by hand under another code's digest, never served (ADR 031).
        if newest is not None and (newest.config_sha256, newest.code_sha256) == (digest, code):
            return version_configuration(services, versions[-1][1])
        annotations = (body["metadata"].get("annotations") or {}).get(LAST_VERSION_ANNOTATION)
        try:
            number = next_version(annotations)
        except ValueError as exc:  # edited by hand: the versions that exist still count
            raise ServiceError(f"{what}: {exc}") from exc
        if versions:  # one created by kubectl apply past the counter
            number = max(number, versions[-1][0].spec.version + 1)
        bumped = copy.deepcopy(body)
        bumped["metadata"].setdefault("annotations", {})[LAST_VERSION_ANNOTATION] = str(number)
        with store_errors(what, revision_given=revision_id is not None):
            try:
                await store.replace(object_store.FUNCTIONS, bumped, field_manager=PUBLISH_MANAGER)
            except object_store.Conflict:
                if revision_id is not None or attempt == WRITE_ATTEMPTS - 1:
                    raise
                continue
        version = _version_body(
            body, number, template, description=description or function.spec.description,
            code_sha256=code, digest=digest,
        )  # fmt: skip
        with store_errors(f"{what}:{number}"):
            try:
                created = await store.create(
                    object_store.FUNCTION_VERSIONS,
                    version,
                    field_manager=object_store.GATEWAY_MANAGER,
                )
            except object_store.AlreadyExists:  # the number is taken: the counter says so now
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                continue
        return version_configuration(services, created)
    raise AssertionError("unreachable")


async def _authorize(
    services: Services, request: web.Request, ref: FunctionRef, verb: str, action: str,
    version: str | None = None,
) -> None:  # fmt: skip
    name = version_name(ref.name, int(version)) if version is not None else None
    resource = function_arn(ref.namespace, ref.name, services.registry.region, qualifier=version)
    await auth.authorize(
        request, auth.principal_of(request), verb, ref.namespace, name,
        action=action, resource=resource, plural=object_store.FUNCTION_VERSIONS,
    )  # fmt: skip


async def publish(services: Services, request: web.Request, params: Params) -> web.Response:
    ref = unqualified(services, request, params["FunctionName"])
    document = await json_body(request)
    description = string_field(document, "Description") or ""
    code_sha256 = string_field(document, "CodeSha256", limit=128)
    given = string_field(document, "RevisionId", limit=128)
    if document.get("PublishTo") is not None:  # Lambda Managed Instances' target, not kfaas'
        raise InvalidParameterValue("PublishTo is not supported by kfaas: omit it")
    await _authorize(services, request, ref, "create", "PublishVersion")
    configuration = await publish_version(
        services, ref.namespace, ref.name,
        description=description, code_sha256=code_sha256, revision_id=given,
    )  # fmt: skip
    return web.json_response(configuration, status=201)


async def list_versions(services: Services, request: web.Request, params: Params) -> web.Response:
    """$LATEST first, then the published versions by number, paged by Marker and MaxItems."""
    ref = unqualified(services, request, params["FunctionName"])
    with lambda_parameters():
        max_items = parse_max_items(request.query.get("MaxItems"))
    await _authorize(services, request, ref, "list", "ListVersionsByFunction")
    latest = await function_reads.read(services, ref)
    items: list[tuple[int, Body | None]] = [(0, None)]
    items += [
        (version.spec.version, body)
        for version, body in await function_versions(services, ref, latest.body)
    ]
    with lambda_parameters():
        page = paginate(
            items, lambda item: (item[0],),
            marker=request.query.get("Marker"), max_items=max_items,
            scope=f"ListVersionsByFunction {ref.namespace}/{ref.name}",
            key=aliases_api.MARKER_KEY,
        )  # fmt: skip
    # Environment values only for a caller who may read the versions one by one, as
    # ListFunctions shows them only with `get`.
    may_get = await auth.allowed(
        request, auth.principal_of(request), "get", ref.namespace,
        plural=object_store.FUNCTION_VERSIONS,
    )  # fmt: skip
    listed = []
    for _, body in page.items:
        if body is None:
            code = await function_reads.code_facts(services, latest)
            configuration = function_reads.configuration(services, latest, code)
        else:
            configuration = version_configuration(services, body)
        if not may_get:
            configuration.pop("Environment", None)
        listed.append(configuration)
    answer: dict[str, Any] = {"Versions": listed}
    if page.next_marker is not None:
        answer["NextMarker"] = page.next_marker
    return web.json_response(answer)


async def delete_version(
    services: Services, request: web.Request, namespace: str, name: str, qualifier: str
) -> None:
    """DeleteFunction with a Qualifier: one published version, unless an alias routes to it.

    Authorizes ``delete functionversions`` on ``<name>.<N>`` itself.
    """
    if qualifier == LATEST:
        raise InvalidParameterValue(
            "Qualifier: $LATEST cannot be deleted on its own; delete the function without a "
            "qualifier"
        )
    with lambda_parameters():
        parse_version(qualifier, "Qualifier")
    ref = FunctionRef(namespace, name, None)
    await _authorize(services, request, ref, "delete", "DeleteFunction", qualifier)
    what = function_arn(namespace, name, services.registry.region, qualifier=qualifier)
    routing = [
        alias.spec.name
        for alias, _ in await aliases_api.function_aliases(services, ref)
        if routes_to(alias.spec, qualifier)
    ]
    if routing:
        raise ResourceConflict(
            f"Unable to delete version because the following aliases reference it: {routing}"
        )
    try:
        await objects_of(services).delete(
            object_store.FUNCTION_VERSIONS, namespace, version_name(name, int(qualifier))
        )
    except object_store.ObjectNotFound as exc:
        raise ResourceNotFound(f"Function not found: {what}") from exc
    except object_store.StoreError:
        with store_errors(what):
            raise


ROUTES: list[Route] = [
    Route("POST", VERSIONS, publish),
    Route("GET", VERSIONS, list_versions),
    *aliases_api.ROUTES,
]
