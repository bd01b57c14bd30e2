"""When to retry an asynchronous invocation, and when to give up — Lambda's rules, no I/O.

The async dispatcher calls `next_async_step` after every attempt and does what it says: wait and
retry, or send the invocation record to a destination with the condition Lambda would report.
Keeping the decision here makes the rules (LAMBDA.md, "Asynchronous invocation") testable without
a queue, and lets `KFAAS_ASYNC_RETRY_BASE_SECONDS` shrink every delay in proportion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Lambda backs off throttles and service errors from 1 second up to 5 minutes.
_THROTTLE_FIRST_SECONDS = 1.0
_THROTTLE_MAX_SECONDS = 300.0
# The base that makes our delays equal Lambda's (one minute per function-error retry).
_LAMBDA_BASE_SECONDS = 60.0

Outcome = Literal["success", "function_error", "throttled", "service_error"]
StepKind = Literal["done_success", "retry", "give_up_retries", "give_up_age"]
Condition = Literal["Success", "RetriesExhausted", "EventAgeExceeded"]

_CONDITIONS: dict[StepKind, Condition | None] = {
    "done_success": "Success",
    "retry": None,
    "give_up_retries": "RetriesExhausted",
    "give_up_age": "EventAgeExceeded",
}


@dataclass(frozen=True)
class AsyncStep:
    kind: StepKind
    # Seconds to wait before the retry; 0 for every other kind.
    delay: float = 0.0

    @property
    def condition(self) -> Condition | None:
        """The invocation record's `condition` for this step, None while still retrying."""
        return _CONDITIONS[self.kind]


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")


def async_retry_delay(attempt: int, base_seconds: float) -> float:
    """Delay before retry number `attempt` after a function error: base, then 2 * base."""
    _check_attempt(attempt)
    return attempt * base_seconds


def throttle_retry_delay(attempt: int, base_seconds: float) -> float:
    """Delay before retry number `attempt` after a throttle or service error.

    Doubles from 1 s to at most 5 min at Lambda's pace (base 60 s), scaled by base/60.
    """
    _check_attempt(attempt)
    # Capping the exponent first keeps huge attempt numbers from overflowing the float.
    unscaled = min(_THROTTLE_FIRST_SECONDS * 2.0 ** min(attempt - 1, 32), _THROTTLE_MAX_SECONDS)
    return unscaled * base_seconds / _LAMBDA_BASE_SECONDS


def next_async_step(
    *,
    outcome: Outcome,
    attempts_made: int,
    max_retry_attempts: int,
    event_age_seconds: float,
    max_event_age_seconds: float,
    base_seconds: float,
) -> AsyncStep:
    """Decide what follows an attempt.

    `attempts_made` counts every attempt so far, including the one whose `outcome` is given;
    `event_age_seconds` is measured from when the event was accepted. Function errors are retried
    `max_retry_attempts` times; throttles and service errors are retried for as long as the event
    is younger than `max_event_age_seconds`. A retry that could only start after the event's
    maximum age gives up with EventAgeExceeded, as Lambda does.
    """
    _check_attempt(attempts_made)
    if outcome == "success":
        return AsyncStep("done_success")
    if event_age_seconds >= max_event_age_seconds:
        return AsyncStep("give_up_age")
    if outcome == "function_error":
        if attempts_made > max_retry_attempts:
            return AsyncStep("give_up_retries")
        delay = async_retry_delay(attempts_made, base_seconds)
    else:
        delay = throttle_retry_delay(attempts_made, base_seconds)
    if event_age_seconds + delay > max_event_age_seconds:
        return AsyncStep("give_up_age")
    return AsyncStep("retry", delay)
