"""Per-function settings on the Function object (ADR 024 slice 5): what Lambda keeps beside code.

Put/Get/DeleteFunctionConcurrency ↔ ``spec.concurrency.reserved``; Put/Update/Get/Delete-
FunctionEventInvokeConfig ↔ ``spec.async`` (``$LATEST`` only: a published version's is frozen in
its template); Tag/Untag/ListTags ↔ the ``kfaas.dev/tags`` annotation of a Function or an
EventSourceMapping, written by its own field manager so LastModified and RevisionId stay; and
GetAccountSettings, counted over the functions of the namespaces the caller may list. The
mapping logic is ``kfaas.lambda_settings`` and ``kfaas.lambda_tags``; this module reads, checks
RBAC and writes.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kfaas import lambda_settings
from kfaas.manifests import Function
from kfaas.names import FunctionRef
from kfaas.object_store import FUNCTIONS, Body

from . import auth, tags_api
from .errors import ResourceNotFound
from .management import Params, Route, json_body, objects_of, store_errors
from .object_access import checked, function_ref, lambda_parameters, modified_epoch, modify
from .services import Services


async def _authorized(
    services: Services, request: web.Request, ref: FunctionRef, verb: str, action: str
) -> str:
    arn = services.registry.arn(ref.namespace, ref.name)
    await auth.authorize(
        request, auth.principal_of(request), verb, ref.namespace, ref.name,
        action=action, resource=arn,
    )  # fmt: skip
    return arn


# -- Concurrency -------------------------------------------------------------------------------


async def put_concurrency(services: Services, request: web.Request, params: Params) -> web.Response:
    ref = function_ref(services, params["FunctionName"])
    arn = await _authorized(services, request, ref, "patch", "PutFunctionConcurrency")
    with lambda_parameters():
        reserved = lambda_settings.reserved_concurrency(await json_body(request))

    def change(body: Body) -> None:
        body["spec"].setdefault("concurrency", {})["reserved"] = reserved
        checked(body, Function)

    await modify(objects_of(services), FUNCTIONS, ref.namespace, ref.name, change, what=arn)
    return web.json_response({"ReservedConcurrentExecutions": reserved})


async def get_concurrency(services: Services, request: web.Request, params: Params) -> web.Response:
    ref = function_ref(services, params["FunctionName"])
    arn = await _authorized(services, request, ref, "get", "GetFunctionConcurrency")
    with store_errors(arn):
        body = await objects_of(services).get(FUNCTIONS, ref.namespace, ref.name)
    reserved = lambda_settings.reserved_of(body.get("spec") or {})
    return web.json_response({} if reserved is None else {"ReservedConcurrentExecutions": reserved})


async def delete_concurrency(
    services: Services, request: web.Request, params: Params
) -> web.Response:
    ref = function_ref(services, params["FunctionName"])
    arn = await _authorized(services, request, ref, "patch", "DeleteFunctionConcurrency")

    def change(body: Body) -> None:
        concurrency = body["spec"].get("concurrency")
        if concurrency:
            concurrency.pop("reserved", None)

    await modify(objects_of(services), FUNCTIONS, ref.namespace, ref.name, change, what=arn)
    return web.Response(status=204)


# -- Event invoke config -----------------------------------------------------------------------


def _invoke_config_ref(services: Services, request: web.Request, params: Params) -> FunctionRef:
    return function_ref(
        services,
        params["FunctionName"],
        qualifier=request.query.get("Qualifier"),
        parameter="Qualifier",
    )


def _invoke_config_answer(services: Services, ref: FunctionRef, body: Body) -> web.Response:
    config = lambda_settings.event_invoke_config(
        body.get("spec") or {},
        namespace=ref.namespace,
        name=ref.name,
        region=services.registry.region,
        last_modified=modified_epoch(body),
    )
    return web.json_response(config)


async def _write_invoke_config(
    services: Services, request: web.Request, params: Params, *, replace: bool
) -> web.Response:
    ref = _invoke_config_ref(services, request, params)
    action = "PutFunctionEventInvokeConfig" if replace else "UpdateFunctionEventInvokeConfig"
    arn = await _authorized(services, request, ref, "patch", action)
    document = await json_body(request)
    write = (
        lambda_settings.put_event_invoke_config
        if replace
        else lambda_settings.update_event_invoke_config
    )

    def change(body: Body) -> None:
        spec = body["spec"]
        with lambda_parameters():
            spec["async"] = write(
                spec.get("async"),
                document,
                namespace=ref.namespace,
                region=services.registry.region,
            )
        checked(body, Function)

    written = await modify(
        objects_of(services), FUNCTIONS, ref.namespace, ref.name, change, what=arn
    )
    return _invoke_config_answer(services, ref, written)


async def put_invoke_config(
    services: Services, request: web.Request, params: Params
) -> web.Response:
    return await _write_invoke_config(services, request, params, replace=True)


async def update_invoke_config(
    services: Services, request: web.Request, params: Params
) -> web.Response:
    return await _write_invoke_config(services, request, params, replace=False)


async def get_invoke_config(
    services: Services, request: web.Request, params: Params
) -> web.Response:
    ref = _invoke_config_ref(services, request, params)
    arn = await _authorized(services, request, ref, "get", "GetFunctionEventInvokeConfig")
    with store_errors(arn):
        body = await objects_of(services).get(FUNCTIONS, ref.namespace, ref.name)
    if not lambda_settings.is_configured(body.get("spec") or {}):
        raise _no_invoke_config(arn)
    return _invoke_config_answer(services, ref, body)


async def list_invoke_configs(
    services: Services, request: web.Request, params: Params
) -> web.Response:
    """ListFunctionEventInvokeConfigs: at most one, ``$LATEST``'s (versions' are frozen)."""
    ref = function_ref(services, params["FunctionName"])
    arn = await _authorized(services, request, ref, "get", "ListFunctionEventInvokeConfigs")
    with store_errors(arn):
        body = await objects_of(services).get(FUNCTIONS, ref.namespace, ref.name)
    configs: list[dict[str, Any]] = []
    if lambda_settings.is_configured(body.get("spec") or {}):
        configs.append(
            lambda_settings.event_invoke_config(
                body["spec"],
                namespace=ref.namespace,
                name=ref.name,
                region=services.registry.region,
                last_modified=modified_epoch(body),
            )
        )
    return web.json_response({"FunctionEventInvokeConfigs": configs})


async def delete_invoke_config(
    services: Services, request: web.Request, params: Params
) -> web.Response:
    ref = _invoke_config_ref(services, request, params)
    arn = await _authorized(services, request, ref, "patch", "DeleteFunctionEventInvokeConfig")

    def change(body: Body) -> None:
        if not lambda_settings.is_configured(body["spec"]):
            raise _no_invoke_config(arn)
        del body["spec"]["async"]

    await modify(objects_of(services), FUNCTIONS, ref.namespace, ref.name, change, what=arn)
    return web.Response(status=204)


def _no_invoke_config(arn: str) -> ResourceNotFound:
    return ResourceNotFound(f"The function {arn} doesn't have an EventInvokeConfig")


_CONCURRENCY = "/functions/{FunctionName}/concurrency"
_INVOKE_CONFIG = "/2019-09-25/functions/{FunctionName}/event-invoke-config"
ROUTES: list[Route] = [
    Route("PUT", "/2017-10-31" + _CONCURRENCY, put_concurrency),
    Route("DELETE", "/2017-10-31" + _CONCURRENCY, delete_concurrency),
    Route("GET", "/2019-09-30" + _CONCURRENCY, get_concurrency),
    Route("PUT", _INVOKE_CONFIG, put_invoke_config),
    Route("POST", _INVOKE_CONFIG, update_invoke_config),
    Route("GET", _INVOKE_CONFIG, get_invoke_config),
    Route("DELETE", _INVOKE_CONFIG, delete_invoke_config),
    Route("GET", _INVOKE_CONFIG + "/list", list_invoke_configs),
    *tags_api.ROUTES,
]
