"""Create/Get/Update/Delete/ListEventSourceMappings on EventSourceMapping objects (ADR 024).

Each mapping is an ``EventSourceMapping`` object; its ``metadata.uid`` is Lambda's UUID, found by
listing (the store has no uid index), and one the API creates is named by ``generateName:
<function>-``. Create, Update and Delete answer 202 as Lambda does (the pollers follow the
operator's reconcile); ``State`` follows the operator's ``status.state``. The request ↔ spec
mapping is ``kfaas.lambda_mappings``. RBAC: the verb on ``eventsourcemappings`` plus ``get`` on
the function named.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kfaas import lambda_mapping_shapes, lambda_mappings, lambda_tags
from kfaas.manifests import EventSourceMapping
from kfaas.object_store import EVENT_SOURCE_MAPPINGS, FUNCTIONS, GATEWAY_MANAGER, Body
from kfaas.pagination import paginate, parse_max_items

from . import auth
from .errors import ResourceNotFound
from .management import Params, Route, json_body, objects_of, store_errors
from .object_access import checked, find_mapping, lambda_parameters, modified_epoch, modify
from .services import Services

# Signs the listing's markers; fixed, as ListFunctions' (ADR 024): a made-up marker could only
# move where a listing the caller may read starts.
_MARKER_KEY = b"kfaas ListEventSourceMappings marker v1"
# Lambda returns at most 100 mappings per page, whatever MaxItems asks.
PAGE_CAP = 100
# Kubernetes keeps at most 58 characters of a generateName before its random suffix.
_GENERATE_PREFIX = 57


def _answer(services: Services, body: Body, *, status: int = 200, **override: Any) -> web.Response:
    configuration = lambda_mapping_shapes.mapping_configuration(
        body, region=services.registry.region, last_modified=modified_epoch(body)
    )
    return web.json_response({**configuration, **override}, status=status)


def _checked(body: Body) -> None:
    """The spec as the CRD would take it; a generateName'd body is checked under a stand-in name."""
    metadata = body["metadata"]
    checked({**body, "metadata": {**metadata, "name": metadata.get("name") or "new"}},
            EventSourceMapping)  # fmt: skip


async def _function_readable(
    services: Services, request: web.Request, namespace: str, name: str, action: str
) -> None:
    """The caller may ``get`` the function a mapping names, and it exists."""
    arn = services.registry.arn(namespace, name)
    await auth.authorize(
        request, auth.principal_of(request), "get", namespace, name, action=action, resource=arn
    )
    with store_errors(arn):
        await objects_of(services).get(FUNCTIONS, namespace, name)


async def _authorize_mapping(
    services: Services, request: web.Request, body: Body, verb: str, action: str
) -> None:
    metadata = body["metadata"]
    arn = lambda_mapping_shapes.mapping_arn(
        metadata["namespace"], str(metadata.get("uid")), services.registry.region
    )
    await auth.authorize(
        request, auth.principal_of(request), verb, metadata["namespace"], metadata["name"],
        action=action, resource=arn, plural=EVENT_SOURCE_MAPPINGS,
    )  # fmt: skip


async def create_mapping(services: Services, request: web.Request, params: Params) -> web.Response:
    document = await json_body(request)
    with lambda_parameters():
        namespace, spec = lambda_mappings.create_spec(
            document,
            default_namespace=services.registry.default_namespace,
            region=services.registry.region,
            redis_url=services.platform_redis_url,
        )
        tags = lambda_tags.encode_tags(document["Tags"]) if document.get("Tags") else None
    function = spec["functionName"]
    await auth.authorize(
        request, auth.principal_of(request), "create", namespace, None,
        action="CreateEventSourceMapping", plural=EVENT_SOURCE_MAPPINGS,
        resource=services.registry.arn(namespace, function),
    )  # fmt: skip
    await _function_readable(services, request, namespace, function, "CreateEventSourceMapping")
    metadata: dict[str, Any] = {"generateName": f"{function[:_GENERATE_PREFIX]}-"}
    metadata["namespace"] = namespace
    if tags is not None:
        metadata["annotations"] = {lambda_tags.ANNOTATION: tags}
    body: Body = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": metadata,
        "spec": spec,
    }
    _checked(body)
    with store_errors(f"an event source mapping of {services.registry.arn(namespace, function)}"):
        created = await objects_of(services).create(
            EVENT_SOURCE_MAPPINGS, body, field_manager=GATEWAY_MANAGER
        )
    return _answer(services, created, status=202)


async def get_mapping(services: Services, request: web.Request, params: Params) -> web.Response:
    uid = params["UUID"]
    body = await find_mapping(objects_of(services), uid, what=uid)
    await _authorize_mapping(services, request, body, "get", "GetEventSourceMapping")
    return _answer(services, body)


async def update_mapping(services: Services, request: web.Request, params: Params) -> web.Response:
    uid = params["UUID"]
    found = await find_mapping(objects_of(services), uid, what=uid)
    await _authorize_mapping(services, request, found, "update", "UpdateEventSourceMapping")
    document = await json_body(request)
    namespace, name = found["metadata"]["namespace"], found["metadata"]["name"]
    region = services.registry.region
    with lambda_parameters():
        wanted = lambda_mappings.update_spec(
            found.get("spec") or {}, document, namespace=namespace, region=region
        )
    if "FunctionName" in document:  # moved to another function: the caller must see that one
        await _function_readable(
            services, request, namespace, wanted["functionName"], "UpdateEventSourceMapping"
        )

    def change(body: Body) -> None:
        if body["metadata"].get("uid") != found["metadata"].get("uid"):
            raise ResourceNotFound(f"The resource you requested does not exist: {uid}")
        with lambda_parameters():
            body["spec"] = lambda_mappings.update_spec(
                body.get("spec") or {}, document, namespace=namespace, region=region
            )
        _checked(body)

    written = await modify(
        objects_of(services), EVENT_SOURCE_MAPPINGS, namespace, name, change, what=uid
    )
    return _answer(services, written, status=202)


async def delete_mapping(services: Services, request: web.Request, params: Params) -> web.Response:
    uid = params["UUID"]
    body = await find_mapping(objects_of(services), uid, what=uid)
    await _authorize_mapping(services, request, body, "delete", "DeleteEventSourceMapping")
    metadata = body["metadata"]
    with store_errors(uid):
        # No resourceVersion precondition: the pollers' status reports move it every few seconds.
        await objects_of(services).delete(
            EVENT_SOURCE_MAPPINGS, metadata["namespace"], metadata["name"]
        )
    return _answer(services, body, status=202, State="Deleting")


async def list_mappings(services: Services, request: web.Request, params: Params) -> web.Response:
    """Paged by MaxItems (at most 100 a page, as Lambda) and Marker; ``?FunctionName`` filters."""
    query = request.query
    with lambda_parameters():
        max_items = parse_max_items(query.get("MaxItems"), cap=PAGE_CAP)
    principal = auth.principal_of(request)
    raw_function = query.get("FunctionName")
    function: tuple[str, str] | None = None
    if raw_function:
        with lambda_parameters():
            function = lambda_mappings.function_of(
                raw_function, services.registry.default_namespace
            )
    with store_errors("event source mappings"):
        bodies = await objects_of(services).list(
            EVENT_SOURCE_MAPPINGS, function[0] if function else None
        )
    source = query.get("EventSourceArn")
    listable: dict[str, bool] = {}
    visible: list[Body] = []
    for body in bodies:
        namespace = body["metadata"]["namespace"]
        spec = body.get("spec") or {}
        if function is not None and spec.get("functionName") != function[1]:
            continue
        if namespace not in listable:
            listable[namespace] = await auth.allowed(
                request, principal, "list", namespace, plural=EVENT_SOURCE_MAPPINGS
            )
        if not listable[namespace]:
            continue
        if source and lambda_mapping_shapes.source_arn(spec) != source:
            continue
        visible.append(body)
    with lambda_parameters():
        page = paginate(
            visible,
            lambda body: (body["metadata"]["namespace"], body["metadata"]["name"]),
            marker=query.get("Marker"),
            max_items=max_items,
            scope=f"ListEventSourceMappings {raw_function or ''} {source or ''}",
            key=_MARKER_KEY,
        )
    answer: dict[str, Any] = {
        "EventSourceMappings": [
            lambda_mapping_shapes.mapping_configuration(
                body, region=services.registry.region, last_modified=modified_epoch(body)
            )
            for body in page.items
        ]
    }
    if page.next_marker is not None:
        answer["NextMarker"] = page.next_marker
    return web.json_response(answer)


_PATH = "/2015-03-31/event-source-mappings"
ROUTES: list[Route] = [
    Route("POST", _PATH, create_mapping),
    Route("GET", _PATH, list_mappings),
    Route("GET", _PATH + "/{UUID}", get_mapping),
    Route("PUT", _PATH + "/{UUID}", update_mapping),
    Route("DELETE", _PATH + "/{UUID}", delete_mapping),
]
