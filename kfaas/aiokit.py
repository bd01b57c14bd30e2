"""The asyncio toolkit every component uses: retries until a deadline, guarded tasks, stopping.

Background loops and retries were written once per component and the copies drifted (issue 10:
one supervisor honoured ``Task.cancelling()``, another did not). They live here once, in the
spirit of Kopf's ``aiokits/aiotasks.py``; this module imports only the standard library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, TypedDict, TypeVar, Unpack

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
    cancels = _cancel_requests()
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
            if _cancel_requests() > cancels:
                raise asyncio.CancelledError from exc
            if loop.time() + delay > deadline:
                raise DeadlinePassed(
                    f"gave up after {attempts} attempt(s) in {within_seconds:g} s: {exc!r}"
                ) from exc
            if on_retry is not None:
                on_retry(exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


def _cancel_requests() -> int:
    """How many cancellations of this task are pending (``Task.cancelling()``).

    A client library may turn our cancellation into its own error (redis-py can, mid-read): if the
    count grew while an attempt ran, the stop was still asked for, and the error must not be taken
    for a failure to retry or restart. Compared with the count on entry, not with zero, so that
    clean-up running in a task already being cancelled (a ``finally`` on shutdown) still retries.
    """
    current = asyncio.current_task()
    return current.cancelling() if current is not None else 0


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


# -- Guarded tasks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Pauses between restarts: ``first``, doubling, at most ``most`` seconds.

    A run that lasted ``healthy_after`` seconds before it failed was healthy: the next pause is
    ``first`` again.
    """

    first: float
    most: float
    healthy_after: float = float("inf")

    def delay(self, failures: int) -> float:
        """The pause after the ``failures``-th failure in a row (1 for the first)."""
        return min(self.first * 2.0 ** min(failures - 1, 64), self.most)


class TaskEnded(Exception):
    """A guarded task that must run until cancelled returned on its own."""


FatalHandler = Callable[[str, BaseException], None]


class GuardOptions(TypedDict, total=False):
    """How ``supervise`` and ``guarded_task`` treat the ends of a run (see ``supervise``)."""

    restart: Backoff | None
    expected: tuple[type[Exception], ...]
    restart_on: tuple[type[Exception], ...]
    fatal: tuple[type[Exception], ...]
    on_return: Literal["end", "restart", "fatal"]
    on_fatal: FatalHandler | None


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    log: logging.Logger | None,
    restart: Backoff | None = None,
    expected: tuple[type[Exception], ...] = (),
    restart_on: tuple[type[Exception], ...] = (Exception,),
    fatal: tuple[type[Exception], ...] = (),
    on_return: Literal["end", "restart", "fatal"] = "end",
    on_fatal: FatalHandler | None = None,
) -> None:
    """Await ``run()`` under guard, so that it never stops silently (STYLE 10).

    With a ``restart`` backoff, a run that fails with an error in ``expected`` (logged in one line)
    or ``restart_on`` (logged with its traceback) is started again after the backoff's pause; an
    error in ``fatal``, or any other, ends the guard. Without ``restart`` every failure ends it.
    A run that returns ends the guard quietly (``on_return="end"``: its loop saw it should stop),
    is restarted like a failure (``"restart"``), or is fatal (``"fatal"``, as TaskEnded).

    A fatal end goes to ``on_fatal(name, error)`` if given (to log it and stop the process, see
    ``exit_process``; the guard then returns), else the error is raised to whoever awaits.
    Cancellation always stops the guard, also when a library turned it into its own error.
    """
    loop = asyncio.get_running_loop()
    failures = 0
    cancels = _cancel_requests()
    while True:
        started = loop.time()
        error: Exception
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
            again = isinstance(exc, (*expected, *restart_on)) and not isinstance(exc, fatal)
        else:
            if on_return == "end":
                return
            error = TaskEnded(f"{name} returned on its own")
            again = on_return == "restart"
        if _cancel_requests() > cancels:
            if log is not None:
                log.debug("%s stopped while being cancelled: %r", name, error)
            raise asyncio.CancelledError from error
        if restart is None or not again:
            if on_fatal is None:
                raise error
            on_fatal(name, error)
            return
        if loop.time() - started >= restart.healthy_after:
            failures = 0
        failures += 1
        delay = restart.delay(failures)
        if log is not None:
            if isinstance(error, TaskEnded):
                log.error("%s stopped on its own; restarting in %.1f s", name, delay)
            elif isinstance(error, expected):
                log.warning("%s failed, restarting in %.1f s: %s", name, delay, error)
            else:
                log.error("%s failed; restarting in %.1f s", name, delay, exc_info=error)
        await asyncio.sleep(delay)


def guarded_task(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    log: logging.Logger | None,
    **options: Unpack[GuardOptions],
) -> asyncio.Task[None]:
    """``supervise(name, run, ...)`` as a task of that name (the options are ``supervise``'s)."""
    return asyncio.create_task(supervise(name, run, log=log, **options), name=name)


def exit_process(log: logging.Logger, status: int = 1) -> FatalHandler:
    """A fatal handler that logs the end at CRITICAL and ends the process with ``status`` at once.

    For tasks the process is blind without (the gateway's watches): ``os._exit`` rather than an
    exception, since nothing awaits them and a clean shutdown could hang on what failed.
    """
    return _ExitProcess(log, status, os._exit)


def log_end(log: logging.Logger) -> FatalHandler:
    """A fatal handler that logs the end with its traceback and lets the task end.

    For tasks the process survives without, degraded, whose loss must still not be silent.
    """

    def handler(name: str, error: BaseException) -> None:
        log.error("%s stopped: %r", name, error, exc_info=error)

    return handler


@dataclass(frozen=True)
class _ExitProcess:
    log: logging.Logger
    status: int
    exit: Callable[[int], NoReturn]

    def __call__(self, name: str, error: BaseException) -> None:
        self.log.critical("%s stopped: %r; exiting", name, error)
        self.exit(self.status)


# -- Stopping --------------------------------------------------------------------------------------


async def stop_tasks(
    tasks: Collection[asyncio.Task[Any]],
    grace_seconds: float = 5.0,
    *,
    cancelled_seconds: float | None = None,
    log: logging.Logger | None = None,
) -> None:
    """Let tasks that saw their closing flag end within ``grace_seconds``, cancel the rest, wait.

    ``cancelled_seconds`` bounds the wait after cancelling (None: as long as it takes): a task
    still running then swallowed its cancellation (a client library can); it is logged as a
    warning and left to end when its resources close, its outcome retrieved whenever that is.
    """
    if not tasks:
        return
    if grace_seconds > 0:
        await asyncio.wait(tasks, timeout=grace_seconds)
    for task in tasks:
        task.cancel()
    _, stuck = await asyncio.wait(tasks, timeout=cancelled_seconds)
    for task in stuck:
        if log is not None:
            log.warning("%s did not stop when cancelled", task.get_name())
        task.add_done_callback(_retrieve)
    for task in tasks:
        if task.done():
            _retrieve(task)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a task's outcome as seen, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


# -- Running -------------------------------------------------------------------------------------


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool = True) -> T:
    """Run a long-lived server: uvloop when it is installed (and wanted), asyncio's loop otherwise.

    uvloop makes aiohttp's server and client markedly faster on the invoke path; nothing depends
    on it.
    """
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
