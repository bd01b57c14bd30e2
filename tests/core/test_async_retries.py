"""Async retries: Lambda's delays, the retry budget for function errors, and the event age."""

from __future__ import annotations

from typing import Any

import pytest

from kfaas.retries import (
    AsyncStep,
    Outcome,
    async_retry_delay,
    next_async_step,
    throttle_retry_delay,
)


class TestDelays:
    def test_function_errors_wait_one_then_two_bases(self) -> None:
        assert [async_retry_delay(n, 60) for n in (1, 2)] == [60, 120]
        assert [async_retry_delay(n, 0.1) for n in (1, 2)] == pytest.approx([0.1, 0.2])

    def test_throttles_back_off_from_one_second_to_five_minutes(self) -> None:
        delays = [throttle_retry_delay(n, 60) for n in range(1, 12)]
        assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
        assert throttle_retry_delay(10_000, 60) == 300

    def test_throttle_delays_scale_with_the_base(self) -> None:
        assert throttle_retry_delay(1, 6) == pytest.approx(0.1)
        assert throttle_retry_delay(20, 6) == pytest.approx(30)

    @pytest.mark.parametrize("delay", [async_retry_delay, throttle_retry_delay])
    def test_attempts_count_from_one(self, delay: Any) -> None:
        with pytest.raises(ValueError, match="start at 1"):
            delay(0, 60)


def step(outcome: Outcome, attempts: int, age: float = 0, max_retries: int = 2) -> AsyncStep:
    return next_async_step(
        outcome=outcome,
        attempts_made=attempts,
        max_retry_attempts=max_retries,
        event_age_seconds=age,
        max_event_age_seconds=21600,
        base_seconds=60,
    )


@pytest.mark.parametrize(
    ("outcome", "attempts", "age", "max_retries", "expected"),
    [
        ("success", 1, 0, 2, AsyncStep("done_success")),
        ("success", 3, 99999, 2, AsyncStep("done_success")),
        ("function_error", 1, 0, 2, AsyncStep("retry", 60)),
        ("function_error", 2, 60, 2, AsyncStep("retry", 120)),
        ("function_error", 3, 180, 2, AsyncStep("give_up_retries")),
        ("function_error", 1, 0, 0, AsyncStep("give_up_retries")),
        ("function_error", 1, 21590, 2, AsyncStep("give_up_age")),
        ("function_error", 1, 21600, 2, AsyncStep("give_up_age")),
        ("throttled", 1, 0, 0, AsyncStep("retry", 1)),
        ("throttled", 40, 10000, 0, AsyncStep("retry", 300)),
        ("service_error", 3, 0, 2, AsyncStep("retry", 4)),
        ("throttled", 40, 21400, 0, AsyncStep("give_up_age")),
        ("service_error", 1, 21600, 2, AsyncStep("give_up_age")),
    ],
)
def test_next_step(
    outcome: Outcome, attempts: int, age: float, max_retries: int, expected: AsyncStep
) -> None:
    assert step(outcome, attempts, age, max_retries) == expected


@pytest.mark.parametrize(
    ("kind", "condition"),
    [
        ("done_success", "Success"),
        ("give_up_retries", "RetriesExhausted"),
        ("give_up_age", "EventAgeExceeded"),
        ("retry", None),
    ],
)
def test_steps_name_the_invocation_record_condition(kind: Any, condition: str | None) -> None:
    assert AsyncStep(kind).condition == condition
