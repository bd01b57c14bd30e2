"""Function operations (ADR 024 slice 4): CreateFunction, UpdateFunctionCode,
UpdateFunctionConfiguration, DeleteFunction, and the reads (``function_reads``).

Each write is the Lambda request mapped to a Function spec by ``kfaas.lambda_requests`` (pure),
checked by the same model the CRD is generated from, and written to the object store with the
read ``resourceVersion`` as precondition. A caller's ``RevisionId`` is compared with the object
read (412 PreconditionFailedException when stale); without one, a write that meets another
writer reads again. Uploaded zips are checked and stored before the Function names them
(``function_code``). The caller is authorized by RBAC (``auth.authorize``); the gateway then
writes as itself and logs who asked.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from aiohttp import web

from kfaas import object_store
from kfaas.lambda_requests import (
    CodeSource,
    check_function,
    code_spec,
    function_body,
    message,
    parse_code_update,
    parse_configuration_update,
    parse_create,
)
from kfaas.lambda_shapes import InvalidParameter, object_facts, revision_id
from kfaas.manifests import Function
from kfaas.names import (
    LATEST,
    FunctionRef,
    InvalidFunctionName,
    QualifierMismatch,
    parse_function_name,
)
from kfaas.object_store import Body

from . import auth, function_code, function_reads, management, versions_api
from .errors import InvalidParameterValue, PreconditionFailed, ResourceNotFound
from .limits import CODE_UPLOAD_LIMIT
from .management import Route
from .services import Services

log = logging.getLogger("kfaas.gateway.management")
FUNCTIONS: Final = "/2015-03-31/functions"
NAMED: Final = FUNCTIONS + "/{FunctionName}"
# A write without RevisionId that meets another writer reads again, this many times in all.
WRITE_ATTEMPTS: Final = 3
# A placeholder digest to check a spec before its zip is stored (the stored one replaces it).
_UNSTORED: Final = {"zip": {"sha256": "0" * 64, "size": 1}}


@contextmanager
def lambda_parameters() -> Iterator[None]:
    """The pure modules' refusals as InvalidParameterValueException naming the parameter."""
    try:
        yield
    except InvalidParameter as exc:
        raise InvalidParameterValue(message(exc)) from exc


async def _upload_document(request: web.Request) -> dict[str, Any]:
    """A request that may carry a zip: up to Lambda's 70,167,211 bytes, parsed off the loop."""
    body = await auth.signed_body(request, CODE_UPLOAD_LIMIT)
    return await asyncio.to_thread(management.parse_json, body)


def _unqualified(services: Services, request: web.Request, raw: str) -> FunctionRef:
    ref = function_reads.function_ref(services, request, raw)
    if ref.qualifier not in (None, LATEST):
        raise InvalidParameterValue(
            f"FunctionName: this operation changes $LATEST; qualifier {ref.qualifier!r} "
            "is not accepted"
        )
    return ref


async def _authorize(
    services: Services, request: web.Request, ref: FunctionRef, verb: str, action: str
) -> None:
    await auth.authorize(
        request, auth.principal_of(request), verb, ref.namespace, ref.name,
        action=action, resource=function_reads.arn(services, ref),
    )  # fmt: skip
    log.info(
        "%s %s by %s",
        action,
        function_reads.arn(services, ref),
        auth.principal_of(request).user,
    )


async def _answer(services: Services, body: Body, *, status: int = 200) -> web.Response:
    loaded = function_reads.Read(function_reads.parse_function(body), object_facts(body), body)
    code = await function_reads.code_facts(services, loaded)
    return web.json_response(function_reads.configuration(services, loaded, code), status=status)


async def _stored_code(services: Services, source: CodeSource) -> dict[str, Any]:
    """The spec's ``code`` once an uploaded zip is checked and stored (or an image)."""
    if source.zip_file is None:
        return code_spec(source)
    digest, size = await function_code.store_zip(services, source.zip_file)
    return code_spec(source, sha256=digest.hex, size=size)


async def _authorize_publish(services: Services, request: web.Request, ref: FunctionRef) -> None:
    """``Publish``: the caller must also be allowed to create versions (PublishVersion's verb)."""
    await auth.authorize(
        request, auth.principal_of(request), "create", ref.namespace, None,
        action="PublishVersion", resource=function_reads.arn(services, ref),
        plural=object_store.FUNCTION_VERSIONS,
    )  # fmt: skip


async def _published(services: Services, written: Body) -> web.Response:
    """PublishVersion of exactly what was written; Lambda answers with the version's."""
    metadata = written["metadata"]
    facts = object_facts(written)
    configuration = await versions_api.publish_version(
        services,
        metadata["namespace"],
        metadata["name"],
        revision_id=revision_id(facts.uid, facts.generation),
    )
    return web.json_response(configuration)


async def create_function(
    services: Services, request: web.Request, params: Mapping[str, str]
) -> web.Response:
    document = await _upload_document(request)
    with lambda_parameters():
        create = await asyncio.to_thread(
            parse_create, document, services.registry.default_namespace
        )
    ref = FunctionRef(create.namespace, create.name, None)
    await _authorize(services, request, ref, "create", "CreateFunction")
    store = management.objects_of(services)
    if create.publish:
        await _authorize_publish(services, request, ref)
    with lambda_parameters():  # refused before the zip is stored
        check_function(function_body(ref.namespace, ref.name, {**create.spec, "code": _UNSTORED},
                                     create.annotations))  # fmt: skip
    spec = {**create.spec, "code": await _stored_code(services, create.code)}
    body = function_body(ref.namespace, ref.name, spec, create.annotations)
    with lambda_parameters():
        check_function(body)
    with management.store_errors(function_reads.arn(services, ref)):
        created = await store.create(
            object_store.FUNCTIONS, body, field_manager=object_store.GATEWAY_MANAGER
        )
    if create.publish:
        published = await _published(services, created)
        published.set_status(201)
        return published
    return await _answer(services, created, status=201)


async def _rewrite(
    services: Services,
    ref: FunctionRef,
    change: Callable[[Body], Body],
    revision: Callable[[Body], str | None],
) -> Body:
    """Read, check the caller's RevisionId, ``change``, write with the read resourceVersion."""
    store = management.objects_of(services)
    what = function_reads.arn(services, ref)
    for attempt in range(WRITE_ATTEMPTS):
        with management.store_errors(what):
            body = await store.get(object_store.FUNCTIONS, ref.namespace, ref.name)
        given = revision(body)
        facts = object_facts(body)
        if given is not None and given != revision_id(facts.uid, facts.generation):
            raise PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
            )
        new = change(body)
        with lambda_parameters():
            check_function(new)
        with management.store_errors(what, revision_given=given is not None):
            try:
                return await store.replace(
                    object_store.FUNCTIONS, new, field_manager=object_store.GATEWAY_MANAGER
                )
            except object_store.Conflict:
                if given is not None or attempt == WRITE_ATTEMPTS - 1:
                    raise
    raise AssertionError("unreachable")


async def update_function_configuration(
    services: Services, request: web.Request, params: Mapping[str, str]
) -> web.Response:
    ref = _unqualified(services, request, params["FunctionName"])
    await _authorize(services, request, ref, "update", "UpdateFunctionConfiguration")
    document = await management.json_body(request)

    def change(body: Body) -> Body:
        metadata = body.get("metadata") or {}
        with lambda_parameters():
            update = parse_configuration_update(
                document, body.get("spec") or {}, metadata.get("annotations") or {}
            )
        new = copy.deepcopy(body)
        new["spec"] = update.spec
        if update.annotations:
            new["metadata"]["annotations"] = update.annotations
        return new

    revision = document.get("RevisionId")
    written = await _rewrite(services, ref, change, lambda body: _revision(revision))
    return await _answer(services, written)


def _revision(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidParameterValue("RevisionId must be a string")
    return value


async def update_function_code(
    services: Services, request: web.Request, params: Mapping[str, str]
) -> web.Response:
    ref = _unqualified(services, request, params["FunctionName"])
    await _authorize(services, request, ref, "update", "UpdateFunctionCode")
    document = await _upload_document(request)
    store = management.objects_of(services)
    with management.store_errors(function_reads.arn(services, ref)):
        current = await store.get(object_store.FUNCTIONS, ref.namespace, ref.name)
    with lambda_parameters():
        update = await asyncio.to_thread(parse_code_update, document, current.get("spec") or {})
    if update.publish:
        await _authorize_publish(services, request, ref)
    if update.dry_run:  # checked, not stored nor written: the configuration as it stands
        if update.code.zip_file is not None:
            await function_code.check_zip(update.code.zip_file)
        return await _answer(services, current)
    code = await _stored_code(services, update.code)

    def change(body: Body) -> Body:
        new = copy.deepcopy(body)
        new["spec"]["code"] = code
        return new

    written = await _rewrite(services, ref, change, lambda body: update.revision_id)
    if update.publish:
        return await _published(services, written)
    return await _answer(services, written)


async def delete_function(
    services: Services, request: web.Request, params: Mapping[str, str]
) -> web.Response:
    ref = function_reads.function_ref(services, request, params["FunctionName"])
    if ref.qualifier is not None:  # one published version (versions_api authorizes it)
        await versions_api.delete_version(services, request, ref.namespace, ref.name, ref.qualifier)
        return web.Response(status=204)
    await _authorize(services, request, ref, "delete", "DeleteFunction")
    store = management.objects_of(services)
    with management.store_errors(function_reads.arn(services, ref)):
        await store.delete(object_store.FUNCTIONS, ref.namespace, ref.name)
    return web.Response(status=204)


async def download_code(
    services: Services, request: web.Request, params: Mapping[str, str]
) -> web.Response:
    async def rebuild(source: str) -> Function | None:
        """The function (or version) a Location names, read as GetFunction read it; None if
        it is gone or the name is not one."""
        try:
            ref = parse_function_name(source, services.registry.default_namespace)
        except (InvalidFunctionName, QualifierMismatch):
            return None
        try:
            return (await function_reads.read(services, ref)).function
        except ResourceNotFound:
            return None

    return await function_code.download(services, request, params["Digest"], rebuild)


ROUTES: list[Route] = [
    Route("POST", FUNCTIONS, create_function),
    Route("GET", FUNCTIONS, function_reads.list_functions),
    Route("GET", NAMED, function_reads.get_function),
    Route("DELETE", NAMED, delete_function),
    Route("GET", NAMED + "/configuration", function_reads.get_function_configuration),
    Route("PUT", NAMED + "/configuration", update_function_configuration),
    Route("PUT", NAMED + "/code", update_function_code),
    Route("GET", function_code.CODE_PATH + "/{Digest}", download_code),
]
