"""What a poller decides about a batch — flush, retry, bisect, checkpoint, give up — with no I/O.

The Kafka and Redis loops feed these functions what happened (the invoke outcome, how often each
record was tried, how old it is) and do what they answer. Lambda's rules (LAMBDA.md, "Event source
mappings") live here once for both sources:

- a batch is flushed at `batchSize` records, when `maximumBatchingWindowSeconds` has passed since
  its first record, or before it would pass the 6 MB invoke payload limit;
- `ReportBatchItemFailures`: an empty or null list (or null response) is success; invalid JSON, an
  empty, missing or unknown `itemIdentifier` fails the whole batch; otherwise everything before the
  lowest failed record is checkpointed and the rest is retried;
- a function error with `bisectBatchOnFunctionError` splits the batch in two, which does not count
  as a retry; a single record (or no bisect) is retried `maximumRetryAttempts` times (-1: until it
  expires) and then given up to the on-failure destination;
- throttles and service errors retry with backoff for as long as the records are young enough.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

# The invoke payload limit (RequestResponse), with room for the event's own envelope.
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
ENVELOPE_BYTES = 4096
# Backoff doubles from the base up to this many bases (1 minute at the default base of 1 s).
MAX_BACKOFF_BASES = 60.0

Outcome = Literal["success", "function_error", "throttled", "service_error", "too_large"]
Condition = Literal["RetryAttemptsExhausted", "RecordAgeExceeded"]


@dataclass(frozen=True)
class BatchLimits:
    batch_size: int
    window_seconds: float
    payload_bytes: int = PAYLOAD_LIMIT_BYTES - ENVELOPE_BYTES


def should_flush(
    *,
    count: int,
    size_bytes: int,
    next_size: int | None,
    waited_seconds: float,
    limits: BatchLimits,
) -> bool:
    """Whether the batch collected so far must be sent now.

    `next_size` is the encoded size of the next waiting record (None when none is waiting):
    adding it must not take the batch over the payload limit. An empty batch is never flushed.
    """
    if count == 0:
        return False
    if count >= limits.batch_size or waited_seconds >= limits.window_seconds:
        return True
    return next_size is not None and size_bytes + next_size > limits.payload_bytes


def take_batch(sizes: Sequence[int], limits: BatchLimits) -> int:
    """How many of the waiting records (encoded sizes, in order) fit in one batch (at least one)."""
    taken, total = 0, 0
    for size in sizes:
        if taken >= limits.batch_size or (taken and total + size > limits.payload_bytes):
            break
        taken += 1
        total += size
    return max(taken, 1) if sizes else 0


# -- partial batch responses -----------------------------------------------------------------


@dataclass(frozen=True)
class BatchResponse:
    """How a function's answer settles a batch: all done, or failed from `first_failure` on."""

    first_failure: int | None
    invalid: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.first_failure is None


def read_batch_response(
    payload: bytes, item_ids: Sequence[str], *, report_item_failures: bool
) -> BatchResponse:
    """Interpret a successful invocation's response under `ReportBatchItemFailures`.

    Without the response type every answer means success. With it, the batch fails from its lowest
    failed record; an invalid response fails it from the start and `invalid` says why. A JSON value
    that is not an object (a handler returning "ok") carries no failures and counts as success.
    """
    if not report_item_failures:
        return BatchResponse(None)
    if not payload.strip():
        return BatchResponse(None)
    try:
        response = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return BatchResponse(0, "the response is not valid JSON")
    if not isinstance(response, dict):
        return BatchResponse(None)
    failures = response.get("batchItemFailures")
    if failures is None:
        return BatchResponse(None)
    if not isinstance(failures, list):
        return BatchResponse(0, "batchItemFailures is not a list")
    positions = {item_id: index for index, item_id in enumerate(item_ids)}
    lowest: int | None = None
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if isinstance(identifier, int) and not isinstance(identifier, bool):
            identifier = str(identifier)
        if not isinstance(identifier, str) or not identifier:
            return BatchResponse(0, f"invalid batch item failure {json.dumps(failure)}")
        if identifier not in positions:
            return BatchResponse(0, f"itemIdentifier {identifier!r} is not in the batch")
        index = positions[identifier]
        lowest = index if lowest is None else min(lowest, index)
    return BatchResponse(lowest)


# -- what to do after an attempt -------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    maximum_retry_attempts: int  # -1: until the records expire
    maximum_record_age_seconds: float  # -1: never expire
    bisect_on_function_error: bool
    base_seconds: float


StepKind = Literal["done", "checkpoint", "bisect", "retry", "give_up"]


@dataclass(frozen=True)
class Step:
    kind: StepKind
    # checkpoint: records [0, split) are done and [split, …) are retried; bisect: halves at split.
    split: int = 0
    # Seconds to wait before the next attempt.
    delay: float = 0.0
    # Whether the records still in play have one more failed attempt against their retries.
    counts_as_retry: bool = False
    condition: Condition | None = None


def backoff_delay(attempt: int, base_seconds: float) -> float:
    """Delay before retry number `attempt` (from 1): base, 2 bases, 4 bases … at most 60 bases."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    return base_seconds * min(2.0 ** min(attempt - 1, 32), MAX_BACKOFF_BASES)


def is_expired(age_seconds: float, policy: RetryPolicy) -> bool:
    limit = policy.maximum_record_age_seconds
    return limit >= 0 and age_seconds > limit


def next_step(
    *,
    outcome: Outcome,
    response: BatchResponse | None,
    batch_length: int,
    failed_attempts: int,
    service_attempts: int,
    policy: RetryPolicy,
) -> Step:
    """Decide what follows one invocation of a batch.

    `failed_attempts` counts the function errors the batch's records already had, not counting
    this one; `service_attempts` counts throttles and service errors in a row, including this one.
    """
    if outcome == "success":
        assert response is not None
        if response.succeeded:
            return Step("done")
        failed_attempts += 1
        split = response.first_failure or 0
        if _exhausted(failed_attempts, policy):
            # Records before the failure are done; the rest is given up (the loop splits them).
            return Step("give_up", split=split, condition="RetryAttemptsExhausted")
        delay = backoff_delay(failed_attempts, policy.base_seconds)
        return Step("checkpoint", split=split, delay=delay, counts_as_retry=True)
    if outcome in ("throttled", "service_error"):
        return Step("retry", delay=backoff_delay(max(service_attempts, 1), policy.base_seconds))
    # A function error, or a payload the gateway refuses as too large.
    if (policy.bisect_on_function_error and batch_length > 1) or (
        outcome == "too_large" and batch_length > 1
    ):
        return Step("bisect", split=batch_length // 2)
    if outcome == "too_large":
        return Step("give_up", condition="RetryAttemptsExhausted")
    failed_attempts += 1
    if _exhausted(failed_attempts, policy):
        return Step("give_up", condition="RetryAttemptsExhausted")
    return Step(
        "retry", delay=backoff_delay(failed_attempts, policy.base_seconds), counts_as_retry=True
    )


def _exhausted(failed_attempts: int, policy: RetryPolicy) -> bool:
    retries_made = failed_attempts - 1
    limit = policy.maximum_retry_attempts
    return limit >= 0 and retries_made >= limit


def classify_status(status: int, function_error: str | None) -> Outcome:
    """An Invoke API answer as an outcome: 429 is a throttle, not a function error."""
    if status == 200:
        return "function_error" if function_error else "success"
    if status == 429:
        return "throttled"
    if status == 413:
        return "too_large"
    return "service_error"


# -- retry state that outlives a rebalance ---------------------------------------------------


def retry_note(offset: int, failed_attempts: int) -> str:
    """Kafka commit metadata saying how often the record at the committed offset failed."""
    return json.dumps({"kfaas": 1, "offset": offset, "attempts": failed_attempts})


def read_retry_note(metadata: str | None, committed: int | None) -> int:
    """The failed attempts a note records for the committed offset; 0 for anything else.

    A note left by an older commit (another offset) or by another tool is ignored.
    """
    if not metadata or committed is None:
        return 0
    try:
        note = json.loads(metadata)
    except ValueError:
        return 0
    if not isinstance(note, dict) or note.get("kfaas") != 1 or note.get("offset") != committed:
        return 0
    attempts = note.get("attempts")
    return attempts if isinstance(attempts, int) and attempts > 0 else 0


def effective_parallelism(requested: int, partitions: int | None) -> int:
    """Pollers to run: `parallelism`, but never more Kafka consumers than partitions."""
    if partitions is None or partitions < 1:
        return requested
    return max(1, min(requested, partitions))


def lag(high_watermark: int | None, committed: int | None) -> int | None:
    """Records a partition still has to deliver (Lambda's OffsetLag); None when unknown."""
    if high_watermark is None:
        return None
    return max(high_watermark - (committed or 0), 0)


def failure_summary(payload: Any) -> str:
    """A short text of a function error's body for logs."""
    if isinstance(payload, dict):
        return f"{payload.get('errorType', 'Error')}: {payload.get('errorMessage', '')}"[:300]
    return str(payload)[:300]
