"""The Kubernetes store's own rules: the API server's answers as the store's errors (by status
and reason), label selectors that cannot be smuggled, status writes whose keys replace, and a
gateway limited to one namespace (the chart's watchNamespace) asking for no other."""

from __future__ import annotations

from typing import Any, cast

import pytest

from kfaas import object_store as store
from kfaas.gateway.kube_store import (
    KubernetesObjectStore,
    label_selector,
    status_merge_patch,
    translated,
)
from kfaas.kube_clients import KubeClient, KubeError
from kfaas.object_store import Body

INVALID_DETAILS = {
    "name": "f",
    "group": "kfaas.dev",
    "kind": "Function",
    "causes": [
        {"reason": "FieldValueTypeInvalid", "message": "Invalid value", "field": "spec.memoryMB"},
        {"reason": "FieldValueInvalid", "message": "Invalid value", "field": "spec.timeout"},
    ],
}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (KubeError(404, "NotFound", 'functions.kfaas.dev "f" not found'), store.ObjectNotFound),
        (KubeError(409, "AlreadyExists", "exists"), store.AlreadyExists),
        (KubeError(409, "Conflict", "the object has been modified"), store.Conflict),
        (KubeError(0, "Unreachable", "connection refused"), store.StoreUnavailable),
        (KubeError(500, "InternalError", "etcd"), store.StoreUnavailable),
        (KubeError(503, "ServiceUnavailable", ""), store.StoreUnavailable),
        (KubeError(504, "Timeout", ""), store.StoreUnavailable),
        (KubeError(429, "TooManyRequests", ""), store.StoreBusy),
        (KubeError(401, "Unauthorized", ""), store.StoreUnavailable),
        (KubeError(403, "Forbidden", "cannot create"), store.StoreUnavailable),
        (KubeError(405, "MethodNotAllowed", ""), store.StoreError),
    ],
)
def test_answers_become_the_store_s_errors(error: KubeError, expected: type[Exception]) -> None:
    assert type(translated(error, "create functions")) is expected


def test_a_refusal_names_the_first_field_and_keeps_the_api_server_s_message() -> None:
    message = 'Function.kfaas.dev "f" is invalid: spec.memoryMB: Invalid value: "string"'
    error = translated(KubeError(422, "Invalid", message, INVALID_DETAILS), "create")
    assert isinstance(error, store.Invalid)
    assert (error.field, str(error)) == ("spec.memoryMB", message)
    bare = translated(KubeError(400, "BadRequest", "the body is not JSON"), "create")
    assert isinstance(bare, store.Invalid) and bare.field is None


def test_forbidden_says_the_platform_s_rbac_lacks_the_verb() -> None:
    error = translated(KubeError(403, "Forbidden", "cannot create resource"), "create functions")
    assert "gateway's RBAC lacks this verb" in str(error)
    assert "platform misconfiguration" in str(error)


def test_label_selectors_refuse_what_would_be_read_as_structure() -> None:
    assert label_selector(None) is None
    assert label_selector({"b": "2", "kfaas.dev/function": "f"}) == "b=2,kfaas.dev/function=f"
    for labels in ({"a": "x,b=y"}, {"a": "x y"}, {"a!": "x"}, {"": "x"}, {"a": "x=y"}):
        with pytest.raises(store.Invalid) as refused:
            label_selector(labels)
        assert refused.value.field == "labels"


def test_status_keys_replace_whole_through_a_merge_patch() -> None:
    live = {"counts": {"a": 1, "b": {"c": 2, "d": 3}}, "conditions": [{"type": "Ready"}], "x": 1}
    patch = status_merge_patch(live, {"counts": {"b": {"c": 5}}, "conditions": [], "y": None})
    assert patch == {
        "counts": {"a": None, "b": {"c": 5, "d": None}},
        "conditions": [],
        "y": None,
    }


class RecordingClient:
    """Answers every list with nothing and every get with a bare object; records the paths."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    async def list(
        self, api_version: str, plural: str, namespace: str | None = None, **query: Any
    ) -> Body:
        self.calls.append(("list", namespace))
        return {"items": []}

    async def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> Body:
        self.calls.append(("get", namespace))
        return {"metadata": {"name": name, "namespace": namespace}}


async def test_a_gateway_limited_to_one_namespace_keeps_to_it() -> None:
    client = RecordingClient()
    limited = KubernetesObjectStore(cast(KubeClient, client), watch_namespace="team-a")
    assert await limited.list(store.FUNCTIONS) == []
    assert await limited.list(store.FUNCTIONS, "team-b") == []
    await limited.get(store.FUNCTIONS, "team-a", "f")
    with pytest.raises(store.ObjectNotFound):
        await limited.get(store.FUNCTIONS, "team-b", "f")
    with pytest.raises(store.ObjectNotFound):
        await limited.delete(store.FUNCTIONS, "team-b", "f")
    body = {"metadata": {"name": "f", "namespace": "team-b"}, "spec": {}}
    with pytest.raises(store.Invalid) as refused:
        await limited.create(store.FUNCTIONS, body, field_manager=store.GATEWAY_MANAGER)
    assert refused.value.field == "metadata.namespace"
    # Only the namespace it may read was asked for; the others never left the process.
    assert client.calls == [("list", "team-a"), ("get", "team-a")]
