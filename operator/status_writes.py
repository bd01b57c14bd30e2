"""Writing an owner's status: computed from fresh reads, sent with the owner's resourceVersion.

Both the owner's handler (after a reconcile pass) and the Deployment watcher write a Function's or
a mapping's status. Each write is computed (``operator/status.py``) from the owner and its
Deployment as they are now and carries the owner's resourceVersion, retried on a conflict, so the
last write always rests on the latest state: no lost condition, no stale count. A write that
would change nothing but transition times is skipped (``kfaas.api_objects.status_differs``).
"""

from __future__ import annotations

import datetime
from typing import Any

from kfaas.api_objects import status_differs
from kfaas.kube_clients import KubeClient, KubeError
from kfaas.names import LATEST

from . import names
from .status import Result, function_status, mapping_status, rfc3339

Body = dict[str, Any]

FUNCTIONS = ("kfaas.dev/v1alpha1", "functions")
VERSIONS = ("kfaas.dev/v1alpha1", "functionversions")
MAPPINGS = ("kfaas.dev/v1alpha1", "eventsourcemappings")


def _owner_kind(kind: str, name: str) -> tuple[tuple[str, str], str]:
    """(apiVersion, plural) of an owner and its Deployment's name; a FunctionVersion is
    `<function>.<N>` (ADR 024), its Deployment the version's."""
    if kind == "Function":
        return FUNCTIONS, names.function_workload(name)
    if kind == "FunctionVersion":
        function, _, version = name.rpartition(".")
        return VERSIONS, names.function_workload(function, version)
    return MAPPINGS, names.poller(name)


def _function_version(kind: str, name: str) -> tuple[str, str]:
    if kind == "FunctionVersion":
        function, _, version = name.rpartition(".")
        return function, version
    return name, LATEST


def _provisioned(owner: Body) -> bool:
    """Whether a Function (or a FunctionVersion's template) asks for provisioned instances."""
    spec = owner.get("spec") or {}
    if owner.get("kind") == "FunctionVersion":
        spec = spec.get("template") or {}
    return bool((spec.get("concurrency") or {}).get("provisioned"))


async def write_status(
    client: KubeClient,
    kind: str,
    namespace: str,
    name: str,
    result: Result | None,
    *,
    attempts: int = 5,
) -> Body | None:
    """Write the owner's status from fresh reads; returns its Deployment as read.

    None when the owner is gone, or when every attempt met someone else's newer write.
    """
    (api_version, plural), workload = _owner_kind(kind, name)
    for _ in range(attempts):
        owner = await client.find(api_version, plural, namespace, name)
        if owner is None:
            return None
        deployment = await client.find("apps/v1", "deployments", namespace, workload)
        now = rfc3339(datetime.datetime.now(datetime.UTC))
        if kind == "EventSourceMapping":
            status = mapping_status(owner, result, deployment, now=now)
        else:
            provisioned = None
            if _provisioned(owner):  # ADR 030: their Deployment counts too
                pc = names.provisioned_workload(*_function_version(kind, name))
                provisioned = await client.find("apps/v1", "deployments", namespace, pc)
            status = function_status(owner, result, deployment, now=now, provisioned=provisioned)
        if not status_differs(owner.get("status") or {}, status):
            return deployment
        version = owner["metadata"]["resourceVersion"]
        try:
            await client.patch(
                api_version, plural, namespace, name,
                {"metadata": {"resourceVersion": version}, "status": status},
                subresource="status",
            )  # fmt: skip
            return deployment
        except KubeError as exc:
            if exc.status == 404:
                return None  # deleted between the read and the write: nothing left to report on
            if exc.status != 409:
                raise
    return None
