"""Aliases (ADR 024 slice 6): CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases.

An alias is a ``FunctionAlias`` object ``<function>.<alias>`` owned by its Function, so deleting
the function deletes it, and ``kubectl`` sees it. Lambda's rules (``kfaas.lambda_versions``) are
checked here and again by the model (the CRD's CEL in a cluster, the folder store in ``kfaas
dev``); the versions an alias names must exist when it is written. Its ``RevisionId`` is the
alias object's own (uid, generation), checked by UpdateAlias against the object read, and the
write carries the read resourceVersion, so a writer in between is a 412 for a caller who gave one.
``versions_api`` serves these routes with its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from kfaas import object_store
from kfaas.lambda_shapes import object_facts, revision_id
from kfaas.lambda_versions import (
    alias_configuration,
    alias_name,
    check_alias,
    check_routing,
    parse_version,
)
from kfaas.manifests import API_VERSION
from kfaas.names import LATEST, FunctionRef, function_arn
from kfaas.object_store import Body
from kfaas.pagination import paginate, parse_max_items
from kfaas.version_manifests import (
    ALIAS_LABEL,
    FUNCTION_LABEL,
    FunctionAlias,
    parse_alias,
    routes_to,
)

from . import auth, function_reads
from .errors import InvalidParameterValue, PreconditionFailed, ResourceNotFound
from .management import Params, Route, json_body, objects_of, store_errors
from .object_access import WRITE_ATTEMPTS, lambda_parameters
from .services import Services

ALIASES: Final = "/2015-03-31/functions/{FunctionName}/aliases"
ALIAS: Final = ALIASES + "/{Name}"
# Signs ListAliases' and ListVersionsByFunction's markers (fixed, as ListFunctions' is, until
# the gateways share a key: ADR 024).
MARKER_KEY: Final = b"kfaas versions and aliases marker v1"
_STALE: Final = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)


def unqualified(services: Services, request: web.Request, raw: str) -> FunctionRef:
    """The function a version or alias operation names: no qualifier but ``$LATEST``."""
    ref = function_reads.function_ref(services, request, raw)
    if ref.qualifier not in (None, LATEST):
        raise InvalidParameterValue(
            f"FunctionName: name the function without a qualifier, not {ref.qualifier!r}"
        )
    return FunctionRef(ref.namespace, ref.name, None)


def owner_reference(function: Mapping[str, Any]) -> dict[str, Any]:
    """Owned by the Function, so the garbage collector deletes it with the function."""
    metadata = function["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "name": metadata["name"],
        "uid": metadata["uid"],
    }


def of_function(body: Mapping[str, Any], function: Mapping[str, Any] | None) -> bool:
    """Whether ``body`` belongs to this incarnation of the function: not to a Function of the
    same name deleted before (its objects wait for the garbage collector in a cluster)."""
    if function is None:
        return True
    owners = [
        owner
        for owner in (body.get("metadata") or {}).get("ownerReferences") or []
        if owner.get("kind") == "Function"
    ]
    uid = (function.get("metadata") or {}).get("uid")
    return not owners or any(owner.get("uid") == uid for owner in owners)


def string_field(document: Mapping[str, Any], key: str, *, limit: int = 256) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidParameterValue(f"{key} must be a string of at most {limit} characters")
    return value


def parsed_alias(body: Mapping[str, Any]) -> FunctionAlias:
    return function_reads.stored(parse_alias, body, "alias")


async def function_aliases(
    services: Services, ref: FunctionRef, function: Mapping[str, Any] | None = None
) -> list[tuple[FunctionAlias, Body]]:
    """The function's aliases and their bodies, found by spec (one ``kubectl`` wrote may carry
    no labels), of ``function``'s incarnation when it is given."""
    with store_errors(f"aliases of {function_reads.arn(services, ref)}"):
        bodies = await objects_of(services).list(object_store.FUNCTION_ALIASES, ref.namespace)
    found = [(parsed_alias(body), body) for body in bodies if of_function(body, function)]
    return [(alias, body) for alias, body in found if alias.spec.function_name == ref.name]


def _answer(services: Services, ref: FunctionRef, body: Mapping[str, Any]) -> dict[str, Any]:
    alias = parsed_alias(body)
    return dict(
        alias_configuration(
            ref.namespace, ref.name, alias.spec.name,
            primary=alias.spec.function_version, weights=alias.spec.weights,
            facts=object_facts(body), region=services.registry.region,
            description=alias.spec.description,
        )
    )  # fmt: skip


def _routing(document: Mapping[str, Any]) -> dict[str, float] | None:
    """RoutingConfig.AdditionalVersionWeights as given (None when RoutingConfig is absent)."""
    routing = document.get("RoutingConfig")
    if routing is None:
        return None
    weights = routing.get("AdditionalVersionWeights", {}) if isinstance(routing, dict) else None
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(w, (int, float)) and not isinstance(w, bool)
        for k, w in weights.items()
    ):
        raise InvalidParameterValue(
            "RoutingConfig: AdditionalVersionWeights must map version numbers to weights"
        )
    return {version: float(weight) for version, weight in weights.items()}


async def _check_versions(services: Services, ref: FunctionRef, versions: list[str]) -> None:
    """Every version an alias names exists (Lambda: ResourceNotFoundException)."""
    store = objects_of(services)
    for version in versions:
        if version == LATEST:
            continue
        what = f"{function_reads.arn(services, ref)}:{version}"
        try:
            await store.get(object_store.FUNCTION_VERSIONS, ref.namespace, f"{ref.name}.{version}")
        except object_store.ObjectNotFound as exc:
            raise ResourceNotFound(f"Function not found: {what}") from exc
        except object_store.StoreError:
            with store_errors(what):
                raise


def _primary(document: Mapping[str, Any]) -> str | None:
    primary = string_field(document, "FunctionVersion")
    if primary is not None and primary != LATEST:
        with lambda_parameters():
            parse_version(primary)
    return primary


async def _authorize(
    services: Services, request: web.Request, ref: FunctionRef, verb: str, action: str,
    alias: str | None,
) -> None:  # fmt: skip
    name = alias_name(ref.name, alias) if alias is not None else None
    resource = function_arn(ref.namespace, ref.name, services.registry.region, qualifier=alias)
    await auth.authorize(
        request, auth.principal_of(request), verb, ref.namespace, name,
        action=action, resource=resource, plural=object_store.FUNCTION_ALIASES,
    )  # fmt: skip


def _alias_param(params: Params) -> str:
    with lambda_parameters():
        check_alias(params["Name"])
    return params["Name"]


async def create_alias(services: Services, request: web.Request, params: Params) -> web.Response:
    ref = unqualified(services, request, params["FunctionName"])
    document = await json_body(request)
    name = string_field(document, "Name", limit=128)
    primary = _primary(document)
    if name is None or primary is None:
        raise InvalidParameterValue("Name and FunctionVersion are required")
    with lambda_parameters():
        check_alias(name)
        weights = _routing(document) or {}
        check_routing(primary, weights)
    await _authorize(services, request, ref, "create", "CreateAlias", name)
    store = objects_of(services)
    with store_errors(function_reads.arn(services, ref)):
        function = await store.get(object_store.FUNCTIONS, ref.namespace, ref.name)
    await _check_versions(services, ref, [primary, *weights])
    body: Body = {
        "apiVersion": API_VERSION,
        "kind": "FunctionAlias",
        "metadata": {
            "name": alias_name(ref.name, name),
            "namespace": ref.namespace,
            "labels": {FUNCTION_LABEL: ref.name, ALIAS_LABEL: name},
            "ownerReferences": [owner_reference(function)],
        },
        "spec": {
            "functionName": ref.name,
            "name": name,
            "functionVersion": primary,
            "description": string_field(document, "Description") or "",
            "routingConfig": {"additionalVersionWeights": weights},
        },
    }
    what = function_arn(ref.namespace, ref.name, services.registry.region, qualifier=name)
    with store_errors(what):
        created = await store.create(
            object_store.FUNCTION_ALIASES, body, field_manager=object_store.GATEWAY_MANAGER
        )
    return web.json_response(_answer(services, ref, created), status=201)


async def _read(services: Services, ref: FunctionRef, alias: str) -> Body:
    what = function_arn(ref.namespace, ref.name, services.registry.region, qualifier=alias)
    try:
        return await objects_of(services).get(
            object_store.FUNCTION_ALIASES, ref.namespace, alias_name(ref.name, alias)
        )
    except object_store.ObjectNotFound as exc:
        raise ResourceNotFound(f"Alias not found: {what}") from exc
    except object_store.StoreError:
        with store_errors(what):
            raise


async def get_alias(services: Services, request: web.Request, params: Params) -> web.Response:
    ref = unqualified(services, request, params["FunctionName"])
    alias = _alias_param(params)
    await _authorize(services, request, ref, "get", "GetAlias", alias)
    return web.json_response(_answer(services, ref, await _read(services, ref, alias)))


async def update_alias(services: Services, request: web.Request, params: Params) -> web.Response:
    ref = unqualified(services, request, params["FunctionName"])
    alias = _alias_param(params)
    document = await json_body(request)
    primary = _primary(document)
    description = string_field(document, "Description")
    given = string_field(document, "RevisionId")
    with lambda_parameters():
        routing = _routing(document)
    await _authorize(services, request, ref, "update", "UpdateAlias", alias)
    what = function_arn(ref.namespace, ref.name, services.registry.region, qualifier=alias)
    for attempt in range(WRITE_ATTEMPTS):
        live = await _read(services, ref, alias)
        facts = object_facts(live)
        if given is not None and given != revision_id(facts.uid, facts.generation):
            raise PreconditionFailed(_STALE)
        current = parsed_alias(live).spec
        new = copy.deepcopy(live)
        spec = new["spec"]
        spec["functionVersion"] = primary if primary is not None else current.function_version
        spec["description"] = description if description is not None else current.description
        weights = routing if routing is not None else current.weights
        spec["routingConfig"] = {"additionalVersionWeights": weights}
        with lambda_parameters():
            check_routing(spec["functionVersion"], weights)
        await _check_versions(services, ref, [spec["functionVersion"], *weights])
        with store_errors(what, revision_given=given is not None):
            try:
                written = await objects_of(services).replace(
                    object_store.FUNCTION_ALIASES, new, field_manager=object_store.GATEWAY_MANAGER
                )
            except object_store.Conflict:
                if given is not None or attempt == WRITE_ATTEMPTS - 1:
                    raise
                continue
        return web.json_response(_answer(services, ref, written))
    raise AssertionError("unreachable")


async def delete_alias(services: Services, request: web.Request, params: Params) -> web.Response:
    ref = unqualified(services, request, params["FunctionName"])
    alias = _alias_param(params)
    await _authorize(services, request, ref, "delete", "DeleteAlias", alias)
    what = function_arn(ref.namespace, ref.name, services.registry.region, qualifier=alias)
    try:
        await objects_of(services).delete(
            object_store.FUNCTION_ALIASES, ref.namespace, alias_name(ref.name, alias)
        )
    except object_store.ObjectNotFound as exc:
        raise ResourceNotFound(f"Alias not found: {what}") from exc
    except object_store.StoreError:
        with store_errors(what):
            raise
    return web.Response(status=204)


async def list_aliases(services: Services, request: web.Request, params: Params) -> web.Response:
    ref = unqualified(services, request, params["FunctionName"])
    version = request.query.get("FunctionVersion") or None
    with lambda_parameters():
        max_items = parse_max_items(request.query.get("MaxItems"))
        if version is not None and version != LATEST:
            parse_version(version)
    await _authorize(services, request, ref, "list", "ListAliases", None)
    with store_errors(function_reads.arn(services, ref)):
        function = await objects_of(services).get(object_store.FUNCTIONS, ref.namespace, ref.name)
    aliases = await function_aliases(services, ref, function)
    if version is not None:  # the aliases that may run it: as primary or as the weighted one
        aliases = [(alias, body) for alias, body in aliases if routes_to(alias.spec, version)]
    with lambda_parameters():
        page = paginate(
            aliases, lambda item: (item[0].spec.name,),
            marker=request.query.get("Marker"), max_items=max_items,
            scope=f"ListAliases {ref.namespace}/{ref.name}", key=MARKER_KEY,
        )  # fmt: skip
    answer: dict[str, Any] = {"Aliases": [_answer(services, ref, body) for _, body in page.items]}
    if page.next_marker is not None:
        answer["NextMarker"] = page.next_marker
    return web.json_response(answer)


ROUTES: list[Route] = [
    Route("POST", ALIASES, create_alias),
    Route("GET", ALIASES, list_aliases),
    Route("GET", ALIAS, get_alias),
    Route("PUT", ALIAS, update_alias),
    Route("DELETE", ALIAS, delete_alias),
]
