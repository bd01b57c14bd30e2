"""Waiting in tests: the one `eventually` (and its asyncio twin) every test and fixture uses.

Tests wait on real processes (kfaas dev, pollers, brokers, a cluster) with deadlines, never bare
sleeps (STYLE 13). Each folder used to carry its own polling loop, and the copies drifted: some
returned the value, some only a bool, some said nothing but "timed out". Here there is one
semantics for both worlds:

- `check` is called until it returns something truthy, which is returned (so a check can hand back
  what it found: a pod, a record, a status);
- it is always called at least once, and once more after the deadline has passed;
- exceptions propagate at once, except those listed in `ignoring`, which count as "not yet";
- on time-out `NeverHappened` (an AssertionError) names what never happened, how long was waited
  and the last value returned or the last error ignored.

Imported as `from waiting import eventually` (pytest's `pythonpath = ["tests"]`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")

# Long enough for a status dict or an assertion's listing, short enough to keep a failure readable.
_REPR_LIMIT = 2000


class NeverHappened(AssertionError):
    """What a test waited for did not happen before its deadline."""


def eventually(
    check: Callable[[], T | None],
    *,
    within: float,
    what: str,
    interval: float = 0.1,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``check`` every ``interval`` s until it returns something truthy; return that."""
    poll = _Poll(within, what)
    while True:
        try:
            value = check()
        except ignoring as error:
            poll.failed(error)
        else:
            if value:
                return value
            poll.seen(value)
        poll.raise_if_late()
        time.sleep(interval)


@overload
async def eventually_async(
    check: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    what: str,
    interval: float = 0.1,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T: ...


@overload
async def eventually_async(
    check: Callable[[], T | None],
    *,
    within: float,
    what: str,
    interval: float = 0.1,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T: ...


async def eventually_async(
    check: Callable[[], object],
    *,
    within: float,
    what: str,
    interval: float = 0.1,
    ignoring: tuple[type[BaseException], ...] = (),
) -> object:
    """`eventually` inside a running loop: ``check`` may be a plain or an async function."""
    poll = _Poll(within, what)
    while True:
        try:
            value = check()
            if isinstance(value, Awaitable):
                value = await value
        except ignoring as error:
            poll.failed(error)
        else:
            if value:
                return value
            poll.seen(value)
        poll.raise_if_late()
        await asyncio.sleep(interval)


class _Poll:
    """The deadline and the last outcome of one wait (shared by the sync and async loops)."""

    def __init__(self, within: float, what: str) -> None:
        self.within = within
        self.what = what
        self.deadline = time.monotonic() + within
        self.attempts = 0
        self.value: object = None
        self.error: str | None = None

    def seen(self, value: object) -> None:
        self.value = value
        self.error = None

    def failed(self, error: BaseException) -> None:
        # Only its text is kept: the exception's traceback would hold the check's frames (an
        # unclosed socket of a refused urlopen, say) alive until a later, unrelated collection.
        self.error = repr(error)

    def raise_if_late(self) -> None:
        self.attempts += 1
        if time.monotonic() <= self.deadline:
            return
        if self.error is not None:
            last = f"last error {_shorten(self.error)}"
        else:
            last = f"last value {_shorten(repr(self.value))}"
        raise NeverHappened(
            f"never happened within {self.within:g} s ({self.attempts} checks): {self.what}; {last}"
        )


def _shorten(text: str) -> str:
    if len(text) <= _REPR_LIMIT:
        return text
    return f"{text[: _REPR_LIMIT // 2]} … {text[-_REPR_LIMIT // 2 :]}"
