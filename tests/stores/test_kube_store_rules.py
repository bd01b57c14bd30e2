"""The Kubernetes store's pure rules: the API server's answers as the store's errors (by status
and reason), label selectors that cannot be smuggled, status writes whose keys replace."""

from __future__ import annotations

import pytest

from kfaas import object_store as store
from kfaas.gateway.kube_store import label_selector, status_merge_patch, translated
from kfaas.kube_clients import KubeError

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
        (KubeError(429, "TooManyRequests", ""), store.StoreUnavailable),
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
