"""Batching, partial batch responses and what follows an attempt: Lambda's rules as tables."""

from __future__ import annotations

import pytest

from kfaas.pollers.batches import (
    BatchLimits,
    BatchResponse,
    RetryPolicy,
    Step,
    backoff_delay,
    classify_status,
    effective_parallelism,
    is_expired,
    lag,
    next_step,
    read_batch_response,
    read_retry_note,
    retry_note,
    should_flush,
    take_batch,
)
from kfaas.pollers.redis_poller import resumed_failures

LIMITS = BatchLimits(batch_size=3, window_seconds=0.5, payload_bytes=100)


@pytest.mark.parametrize(
    ("count", "size", "next_size", "waited", "flush"),
    [
        (0, 0, None, 10.0, False),  # nothing to send
        (1, 10, None, 0.1, False),  # waiting for more within the window
        (1, 10, None, 0.5, True),  # window over
        (3, 30, 10, 0.0, True),  # batch size reached
        (2, 95, 10, 0.0, True),  # the next record would pass the payload limit
        (2, 50, 10, 0.0, False),
    ],
)
def test_when_a_batch_is_flushed(
    count: int, size: int, next_size: int | None, waited: float, flush: bool
) -> None:
    verdict = should_flush(
        count=count, size_bytes=size, next_size=next_size, waited_seconds=waited, limits=LIMITS
    )
    assert verdict is flush


@pytest.mark.parametrize(
    ("sizes", "taken"),
    [([], 0), ([10, 10, 10, 10], 3), ([60, 60], 1), ([500], 1), ([40, 50, 20], 2)],
)
def test_how_many_records_fit_in_a_batch(sizes: list[int], taken: int) -> None:
    # An oversized record still goes alone: the gateway's 413 then decides its fate.
    assert take_batch(sizes, LIMITS) == taken


IDS = ["10", "11", "12", "13"]


@pytest.mark.parametrize(
    ("payload", "first_failure", "invalid"),
    [
        (b"", None, False),
        (b"null", None, False),
        (b'"done"', None, False),
        (b"{}", None, False),
        (b'{"batchItemFailures": null}', None, False),
        (b'{"batchItemFailures": []}', None, False),
        (b'{"batchItemFailures": [{"itemIdentifier": "12"}]}', 2, False),
        (b'{"batchItemFailures": [{"itemIdentifier": "13"}, {"itemIdentifier": "11"}]}', 1, False),
        (b'{"batchItemFailures": [{"itemIdentifier": 12}]}', 2, False),
        (b"not json", 0, True),
        (b'{"batchItemFailures": "12"}', 0, True),
        (b'{"batchItemFailures": [{"itemIdentifier": ""}]}', 0, True),
        (b'{"batchItemFailures": [{"itemIdentifier": null}]}', 0, True),
        (b'{"batchItemFailures": [{"id": "12"}]}', 0, True),
        (b'{"batchItemFailures": [{"itemIdentifier": "99"}]}', 0, True),
    ],
)
def test_partial_batch_responses(payload: bytes, first_failure: int | None, invalid: bool) -> None:
    response = read_batch_response(payload, IDS, report_item_failures=True)
    assert response.first_failure == first_failure
    assert bool(response.invalid) is invalid


def test_without_report_batch_item_failures_any_answer_is_success() -> None:
    response = read_batch_response(b"not json", IDS, report_item_failures=False)
    assert response.succeeded


def policy(retries: int = 2, bisect: bool = False, age: float = -1) -> RetryPolicy:
    return RetryPolicy(
        maximum_retry_attempts=retries,
        maximum_record_age_seconds=age,
        bisect_on_function_error=bisect,
        base_seconds=1.0,
    )


def step(
    outcome: str,
    *,
    response: BatchResponse | None = None,
    length: int = 4,
    failed: int = 0,
    service: int = 0,
    rules: RetryPolicy | None = None,
) -> Step:
    return next_step(
        outcome=outcome,  # type: ignore[arg-type]
        response=response,
        batch_length=length,
        failed_attempts=failed,
        service_attempts=service,
        policy=rules or policy(),
    )


def test_success_is_done() -> None:
    assert step("success", response=BatchResponse(None)).kind == "done"


def test_a_partial_failure_checkpoints_before_the_lowest_failure() -> None:
    decided = step("success", response=BatchResponse(2))
    assert (decided.kind, decided.split, decided.counts_as_retry) == ("checkpoint", 2, True)
    assert decided.delay == 1.0


def test_a_partial_failure_out_of_retries_gives_up_the_rest() -> None:
    decided = step("success", response=BatchResponse(1), failed=2)
    assert (decided.kind, decided.split, decided.condition) == (
        "give_up",
        1,
        "RetryAttemptsExhausted",
    )


def test_function_errors_retry_with_backoff_then_give_up() -> None:
    assert step("function_error", failed=0) == Step("retry", delay=1.0, counts_as_retry=True)
    assert step("function_error", failed=1) == Step("retry", delay=2.0, counts_as_retry=True)
    assert step("function_error", failed=2).kind == "give_up"


def test_zero_retries_gives_up_at_the_first_error() -> None:
    assert step("function_error", rules=policy(retries=0)).kind == "give_up"


def test_minus_one_retries_forever() -> None:
    assert step("function_error", failed=5000, rules=policy(retries=-1)).kind == "retry"


def test_bisect_splits_without_counting_a_retry() -> None:
    decided = step("function_error", length=5, failed=2, rules=policy(bisect=True))
    assert decided == Step("bisect", split=2)


def test_a_single_record_is_not_bisected() -> None:
    assert step("function_error", length=1, rules=policy(bisect=True)).kind == "retry"


@pytest.mark.parametrize("outcome", ["throttled", "service_error"])
def test_throttles_and_service_errors_back_off_and_never_give_up(outcome: str) -> None:
    decided = step(outcome, failed=100, service=3, rules=policy(retries=0))
    assert decided == Step("retry", delay=4.0)


def test_a_payload_too_large_is_split_then_given_up() -> None:
    assert step("too_large", length=4).kind == "bisect"
    assert step("too_large", length=1).kind == "give_up"


def test_backoff_doubles_up_to_sixty_bases() -> None:
    assert [backoff_delay(n, 0.5) for n in (1, 2, 3, 7, 8, 10_000)] == [
        0.5,
        1.0,
        2.0,
        30.0,
        30.0,
        30.0,
    ]
    with pytest.raises(ValueError):
        backoff_delay(0, 1.0)


def test_record_age() -> None:
    assert not is_expired(10_000, policy(age=-1))
    assert not is_expired(60, policy(age=60))
    assert is_expired(60.5, policy(age=60))


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (200, None, "success"),
        (200, "Unhandled", "function_error"),
        (429, None, "throttled"),
        (413, None, "too_large"),
        (404, None, "service_error"),
        (502, None, "service_error"),
        (0, None, "service_error"),
    ],
)
def test_invoke_answers(status: int, error: str | None, outcome: str) -> None:
    assert classify_status(status, error) == outcome


def test_parallelism_is_capped_at_the_partition_count() -> None:
    assert effective_parallelism(5, 2) == 2
    assert effective_parallelism(1, 8) == 1
    assert effective_parallelism(3, None) == 3


def test_retry_counts_travel_in_commit_metadata() -> None:
    note = retry_note(42, 3)
    assert read_retry_note(note, 42) == 3
    assert read_retry_note(note, 43) == 0, "a note about another offset is stale"
    assert read_retry_note("", 42) == 0
    assert read_retry_note("someone else's metadata", 42) == 0
    assert read_retry_note('{"offset": 42, "attempts": 3}', 42) == 0
    assert read_retry_note(note, None) == 0


def test_failures_a_redelivered_entry_had() -> None:
    # First delivery 1, +1 per recorded failure (XCLAIM RETRYCOUNT), +1 for the redelivery.
    assert resumed_failures(2) == 0
    assert resumed_failures(5) == 3
    assert resumed_failures(1) == 0


def test_offset_lag() -> None:
    assert lag(100, 40) == 60
    assert lag(None, 40) is None
    assert lag(10, None) == 10
