"""The object store's errors become Lambda's, whatever the backend, and a hostile body is a 400
(gateway.management)."""

from __future__ import annotations

import pytest

from kfaas import object_store as store
from kfaas.gateway import errors
from kfaas.gateway.management import parse_json, store_errors

ARN = "arn:aws:lambda:us-east-1:default:function:f"


@pytest.mark.parametrize(
    ("raised", "revision_given", "answer", "status"),
    [
        (store.ObjectNotFound("gone"), False, errors.ResourceNotFound, 404),
        (store.AlreadyExists("there"), False, errors.ResourceConflict, 409),
        (store.Conflict("modified"), False, errors.ResourceConflict, 409),
        (store.Conflict("modified"), True, errors.PreconditionFailed, 412),
        (store.Invalid("bad", "spec.memoryMB"), False, errors.InvalidParameterValue, 400),
        (store.StoreBusy("429"), False, errors.TooManyRequests, 429),
        (store.StoreUnavailable("down"), False, errors.ServiceError, 500),
    ],
)
def test_each_store_error_has_its_lambda_answer(
    raised: store.StoreError, revision_given: bool, answer: type[errors.ApiError], status: int
) -> None:
    with pytest.raises(answer) as caught, store_errors(ARN, revision_given=revision_given):
        raise raised
    assert caught.value.status == status


def test_a_throttled_store_says_when_to_retry_and_names_the_field_of_a_refusal() -> None:
    with pytest.raises(errors.TooManyRequests) as busy, store_errors(ARN):
        raise store.StoreBusy("storage is (re)initializing")
    assert busy.value.headers == {"Retry-After": "1"}
    with pytest.raises(errors.InvalidParameterValue) as invalid, store_errors(ARN):
        raise store.Invalid("must be at least 128", "spec.memoryMB")
    assert "spec.memoryMB" in invalid.value.message


@pytest.mark.parametrize("body", [b'{"a":' * 60_000 + b"1" + b"}" * 60_000, b"[" * 200_000])
def test_a_body_nested_past_pythons_limit_is_invalid_content_not_a_fault(body: bytes) -> None:
    """The fuzzer's find: CreateFunction with a deeply nested body raised RecursionError (500)."""
    with pytest.raises(errors.InvalidRequestContent, match="nested too deeply"):
        parse_json(body)
