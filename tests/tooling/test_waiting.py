"""The tests' own `eventually`: what it returns, when it gives up and what its failure says."""

from __future__ import annotations

import itertools

import pytest
from waiting import NeverHappened, eventually, eventually_async


def test_returns_the_first_truthy_value() -> None:
    values = iter([None, 0, [], ["pod-a"]])
    assert eventually(lambda: next(values), within=5, what="a pod", interval=0) == ["pod-a"]


def test_names_what_never_happened_and_the_last_value() -> None:
    counter = itertools.count()
    with pytest.raises(NeverHappened) as failure:
        eventually(lambda: next(counter) > 10**9 or None, within=0.05, what="a huge count")
    message = str(failure.value)
    assert "never happened within 0.05 s" in message
    assert "a huge count" in message and "last value None" in message
    assert isinstance(failure.value, AssertionError)


def test_listed_errors_mean_not_yet_and_the_last_one_is_reported() -> None:
    def refused() -> bool:
        raise ConnectionRefusedError("port 1")

    with pytest.raises(NeverHappened, match=r"last error ConnectionRefusedError\('port 1'\)"):
        eventually(refused, within=0.05, what="a listener", ignoring=(OSError,))


def test_other_errors_propagate_at_once() -> None:
    calls = []

    def broken() -> bool:
        calls.append(1)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        eventually(broken, within=30, what="anything", ignoring=(OSError,))
    assert calls == [1]


def test_checks_once_more_after_the_deadline() -> None:
    # A zero budget still looks once: a condition already true never fails.
    assert eventually(lambda: "ready", within=0, what="ready") == "ready"


async def test_async_accepts_plain_and_async_checks() -> None:
    values = iter([False, "sync"])
    assert await eventually_async(lambda: next(values), within=5, what="s", interval=0) == "sync"

    answers = iter([None, {"state": "up"}])

    async def status() -> dict[str, str] | None:
        return next(answers)

    assert await eventually_async(status, within=5, what="up", interval=0) == {"state": "up"}


async def test_async_failure_names_the_last_error() -> None:
    async def timing_out() -> bool:
        raise TimeoutError("no coordinator")

    with pytest.raises(NeverHappened, match="a coordinator; last error TimeoutError"):
        await eventually_async(
            timing_out, within=0.05, what="a coordinator", ignoring=(TimeoutError,)
        )
