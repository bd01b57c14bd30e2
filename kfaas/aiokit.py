"""The asyncio toolkit every component uses: retries until a deadline, guarded tasks, stopping.

Background loops and retries were written once per component and the copies drifted (issue 10:
one supervisor honoured ``Task.cancelling()``, another did not). They live here once, in the
spirit of Kopf's ``aiokits/aiotasks.py``; this module imports only the standard library.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlinePassed(Exception):
    """retry_until_deadline gave up; ``__cause__`` is the last error it retried."""


async def retry_until_deadline(
    operation: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...],
    within_seconds: float,
    first_delay: float = 0.05,
    max_delay: float = 1.0,
    attempt_timeout: float | None = None,
    least_attempt_seconds: float = 0.1,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Await ``operation()`` until it succeeds or the deadline passes.

    On an exception in ``retry_on`` (or TimeoutError when ``attempt_timeout`` bounds each attempt —
    by min(attempt_timeout, time left)) sleep with doubling backoff (first_delay, doubling, at most
    max_delay) and try again. When the next attempt would start past the deadline, raise
    DeadlinePassed from the last exception. Any other exception propagates at once. Cancellation
    is never swallowed.

    An attempt that starts just before the deadline still gets ``least_attempt_seconds`` (never
    more than ``attempt_timeout``). ``within_seconds`` may be ``math.inf``: retry until cancelled.
    ``on_retry(error, delay)`` is called before each sleep, to log or count the failure.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    retried: tuple[type[BaseException], ...] = retry_on
    if attempt_timeout is not None:
        retried = (*retry_on, TimeoutError)
    delay = first_delay
    attempts = 0
    while True:
        attempts += 1
        try:
            if attempt_timeout is None:
                return await operation()
            left = max(deadline - loop.time(), min(least_attempt_seconds, attempt_timeout))
            async with asyncio.timeout(min(attempt_timeout, left)):
                return await operation()
        except retried as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            _stop_if_cancelling()
            if loop.time() + delay > deadline:
                raise DeadlinePassed(
                    f"gave up after {attempts} attempt(s) in {within_seconds:g} s: {exc!r}"
                ) from exc
            if on_retry is not None:
                on_retry(exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


def _stop_if_cancelling() -> None:
    """Raise CancelledError if this task is being cancelled.

    A client library may turn our cancellation into its own error (redis-py can, mid-read): the
    stop was still asked for, so it must not be taken for a failure to retry or restart.
    """
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        raise asyncio.CancelledError


async def wait_event(what: asyncio.Event | Awaitable[Any], seconds: float | None) -> bool:
    """Wait until ``what`` — an Event, or any awaitable — happens or ``seconds`` pass.

    True if the event is set (or the awaitable finished) by then; an awaitable that times out is
    cancelled, one that fails raises. ``seconds=None`` waits for as long as it takes.
    ``asyncio.timeout`` rather than ``wait_for``: on Python 3.11 ``wait_for`` can swallow a
    cancellation that arrives as the event is set, and the loop it runs in would never stop.
    """
    if isinstance(what, asyncio.Event):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await what.wait()
        return what.is_set()
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            await what
    except TimeoutError:
        if not scope.expired():
            raise  # the awaitable's own TimeoutError, not our limit
        return False
    return True
