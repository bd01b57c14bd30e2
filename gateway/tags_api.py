"""TagResource, UntagResource, ListTags and GetAccountSettings (ADR 024 slice 5).

Tags belong to a Function (an unqualified function ARN) or an EventSourceMapping (its
``event-source-mapping:<UUID>`` ARN) and live in its ``kfaas.dev/tags`` annotation, written by
the field manager ``object_store.TAGS_MANAGER``: a metadata write, so the object's generation —
and with it RevisionId and LastModified — stays where it was. RBAC: ``patch`` to tag or untag,
``get`` to list, on ``functions`` or ``eventsourcemappings``. GetAccountSettings counts over the
functions of the namespaces the caller may ``list`` (``kfaas.lambda_settings.account_settings``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from kfaas import lambda_settings, lambda_tags
from kfaas.names import InvalidFunctionName, parse_function_name
from kfaas.object_store import EVENT_SOURCE_MAPPINGS, FUNCTIONS, TAGS_MANAGER, Body

from . import auth
from .errors import InvalidParameterValue, ResourceConflict, ResourceNotFound
from .management import Params, Route, json_body, objects_of, store_errors
from .object_access import find_mapping, lambda_parameters, modify
from .services import Services

_MAPPING_ARN = re.compile(
    r"arn:[a-z-]+:lambda:[a-z0-9-]*:(?P<namespace>[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)"
    r":event-source-mapping:(?P<uid>[0-9a-fA-F-]{36})"
)


@dataclass(frozen=True)
class Taggable:
    """The object an ARN names: its kind, namespace, name (found) and the ARN itself."""

    plural: str
    namespace: str
    name: str
    arn: str
    uid: str | None = None


async def _taggable(services: Services, arn: str) -> Taggable:
    mapping = _MAPPING_ARN.fullmatch(arn)
    if mapping:
        namespace, uid = mapping["namespace"], mapping["uid"]
        body = await find_mapping(objects_of(services), uid, namespace=namespace, what=arn)
        return Taggable(EVENT_SOURCE_MAPPINGS, namespace, body["metadata"]["name"], arn, uid)
    if not arn.startswith("arn:") or ":function:" not in arn:
        raise InvalidParameterValue(
            f"Resource {arn!r} must be a function or event-source-mapping ARN"
        )
    try:
        ref = parse_function_name(arn, services.registry.default_namespace)
    except InvalidFunctionName as exc:
        raise InvalidParameterValue(f"Resource: {exc}") from exc
    if ref.qualifier is not None:
        raise InvalidParameterValue(
            "Resource: tags belong to the function, not to a version or alias: "
            "use the unqualified function ARN"
        )
    return Taggable(
        FUNCTIONS, ref.namespace, ref.name, services.registry.arn(ref.namespace, ref.name)
    )


async def _authorize(
    services: Services, request: web.Request, target: Taggable, verb: str, action: str
) -> None:
    await auth.authorize(
        request, auth.principal_of(request), verb, target.namespace, target.name,
        action=action, resource=target.arn, plural=target.plural,
    )  # fmt: skip


def _tags_of(body: Body) -> dict[str, str]:
    annotations = body.get("metadata", {}).get("annotations") or {}
    try:
        return lambda_tags.decode_tags(annotations.get(lambda_tags.ANNOTATION))
    except lambda_tags.MalformedTags as exc:
        raise ResourceConflict(
            f"The object's tags cannot be read ({exc}); correct the annotation with kubectl"
        ) from exc


async def _write_tags(
    services: Services, target: Taggable, new_tags: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    def change(body: Body) -> None:
        if target.uid is not None and body["metadata"].get("uid") != target.uid:
            raise ResourceNotFound(f"Resource not found: {target.arn}")
        annotations = body["metadata"].setdefault("annotations", {})
        with lambda_parameters():
            tags = new_tags(_tags_of(body))
            if tags:
                annotations[lambda_tags.ANNOTATION] = lambda_tags.encode_tags(tags)
            else:
                annotations.pop(lambda_tags.ANNOTATION, None)

    await modify(
        objects_of(services), target.plural, target.namespace, target.name, change,
        what=target.arn, field_manager=TAGS_MANAGER,
    )  # fmt: skip


async def tag_resource(services: Services, request: web.Request, params: Params) -> web.Response:
    target = await _taggable(services, params["Resource"])
    await _authorize(services, request, target, "patch", "TagResource")
    tags = (await json_body(request)).get("Tags")
    if not isinstance(tags, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in tags.items()
    ):
        raise InvalidParameterValue("Tags must be an object of strings")
    await _write_tags(services, target, lambda current: lambda_tags.tag(current, tags))
    return web.Response(status=204)


async def untag_resource(services: Services, request: web.Request, params: Params) -> web.Response:
    target = await _taggable(services, params["Resource"])
    await _authorize(services, request, target, "patch", "UntagResource")
    keys = request.query.getall("tagKeys", [])
    if not keys:
        raise InvalidParameterValue("TagKeys must name at least one tag key")
    await _write_tags(services, target, lambda current: lambda_tags.untag(current, keys))
    return web.Response(status=204)


async def list_tags(services: Services, request: web.Request, params: Params) -> web.Response:
    target = await _taggable(services, params["Resource"])
    await _authorize(services, request, target, "get", "ListTags")
    with store_errors(target.arn):
        body = await objects_of(services).get(target.plural, target.namespace, target.name)
    if target.uid is not None and body["metadata"].get("uid") != target.uid:
        raise ResourceNotFound(f"Resource not found: {target.arn}")
    return web.json_response({"Tags": _tags_of(body)})


async def account_settings(
    services: Services, request: web.Request, params: Params
) -> web.Response:
    """Counted over the functions of the namespaces the caller may list (ADR 024)."""
    with store_errors("account settings"):
        functions = await objects_of(services).list(FUNCTIONS)
    principal = auth.principal_of(request)
    listable: dict[str, bool] = {}
    specs = []
    for body in functions:
        namespace = body["metadata"]["namespace"]
        if namespace not in listable:
            listable[namespace] = await auth.allowed(request, principal, "list", namespace)
        if listable[namespace]:
            specs.append(body.get("spec") or {})
    return web.json_response(lambda_settings.account_settings(specs))


ROUTES: list[Route] = [
    Route("POST", "/2017-03-31/tags/{Resource}", tag_resource),
    Route("DELETE", "/2017-03-31/tags/{Resource}", untag_resource),
    Route("GET", "/2017-03-31/tags/{Resource}", list_tags),
    Route("GET", "/2016-08-19/account-settings", account_settings),
]
