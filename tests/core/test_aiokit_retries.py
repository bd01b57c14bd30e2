"""The asyncio toolkit's retry-until-deadline and wait-with-timeout (``kfaas.aiokit``)."""

from __future__ import annotations

import asyncio

import pytest

from kfaas.aiokit import DeadlinePassed, retry_until_deadline, wait_event


class Flaky:
    """Fails with the given errors in turn, then answers ``result``; counts its calls."""

    def __init__(self, *errors: BaseException, result: str = "done") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


async def hang_forever() -> str:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


class TestRetryUntilDeadline:
    async def test_succeeds_after_retries(self) -> None:
        operation = Flaky(ConnectionError("one"), ConnectionError("two"))
        retried: list[tuple[str, float]] = []
        result = await retry_until_deadline(
            operation,
            retry_on=(ConnectionError,),
            within_seconds=30,
            first_delay=0.001,
            on_retry=lambda exc, delay: retried.append((str(exc), delay)),
        )
        assert result == "done"
        assert operation.calls == 3
        assert retried == [("one", 0.001), ("two", 0.002)]

    async def test_gives_up_with_the_last_error_as_cause(self) -> None:
        errors = [ConnectionError(f"attempt {n}") for n in range(1000)]
        operation = Flaky(*errors)
        with pytest.raises(DeadlinePassed) as caught:
            await retry_until_deadline(
                operation,
                retry_on=(ConnectionError,),
                within_seconds=0.1,
                first_delay=0.01,
                max_delay=0.02,
            )
        assert operation.calls > 1
        assert caught.value.__cause__ is errors[operation.calls - 1]
        assert f"after {operation.calls} attempt(s)" in str(caught.value)

    async def test_delays_double_up_to_the_maximum(self) -> None:
        delays: list[float] = []
        operation = Flaky(*[OSError()] * 6)
        await retry_until_deadline(
            operation,
            retry_on=(OSError,),
            within_seconds=30,
            first_delay=0.001,
            max_delay=0.004,
            on_retry=lambda _, delay: delays.append(delay),
        )
        assert delays == [0.001, 0.002, 0.004, 0.004, 0.004, 0.004]

    async def test_an_error_not_named_propagates_at_once(self) -> None:
        operation = Flaky(ValueError("bad request"), result="never")
        with pytest.raises(ValueError, match="bad request"):
            await retry_until_deadline(operation, retry_on=(ConnectionError,), within_seconds=30)
        assert operation.calls == 1

    async def test_no_retry_when_the_first_delay_already_passes_the_deadline(self) -> None:
        operation = Flaky(ConnectionError("down"))
        with pytest.raises(DeadlinePassed):
            await retry_until_deadline(
                operation, retry_on=(ConnectionError,), within_seconds=0.0, first_delay=0.05
            )
        assert operation.calls == 1

    async def test_attempt_timeout_retries_an_attempt_that_hangs(self) -> None:
        calls = 0

        async def hangs_once() -> str:
            nonlocal calls
            calls += 1
            if calls == 1:
                return await hang_forever()
            return "second"

        result = await retry_until_deadline(
            hangs_once,
            retry_on=(ConnectionError,),
            within_seconds=30,
            first_delay=0.001,
            attempt_timeout=0.05,
        )
        assert (result, calls) == ("second", 2)

    async def test_attempts_are_bounded_by_the_time_left(self) -> None:
        # attempt_timeout is far beyond the deadline: the hanging attempt is cut at the deadline.
        async with asyncio.timeout(5):
            with pytest.raises(DeadlinePassed) as caught:
                await retry_until_deadline(
                    hang_forever,
                    retry_on=(ConnectionError,),
                    within_seconds=0.1,
                    attempt_timeout=60,
                )
        assert isinstance(caught.value.__cause__, TimeoutError)

    async def test_without_attempt_timeout_timeouts_are_not_retried(self) -> None:
        operation = Flaky(TimeoutError("its own"), result="never")
        with pytest.raises(TimeoutError, match="its own"):
            await retry_until_deadline(operation, retry_on=(ConnectionError,), within_seconds=30)

    async def test_cancellation_during_the_backoff_is_not_swallowed(self) -> None:
        failing = Flaky(*[ConnectionError()] * 1000)
        retried = asyncio.Event()
        task = asyncio.create_task(
            retry_until_deadline(
                failing,
                retry_on=(ConnectionError,),
                within_seconds=60,
                first_delay=30,
                max_delay=30,
                on_retry=lambda *_: retried.set(),
            )
        )
        await retried.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert failing.calls == 1

    async def test_cancellation_a_library_turned_into_its_error_still_stops(self) -> None:
        started = asyncio.Event()
        calls = 0

        async def converts_cancellation() -> None:
            nonlocal calls
            calls += 1
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise ConnectionError("connection closed") from None

        task = asyncio.create_task(
            retry_until_deadline(
                converts_cancellation, retry_on=(ConnectionError,), within_seconds=60
            )
        )
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert calls == 1

    async def test_clean_up_in_a_task_already_cancelled_still_retries(self) -> None:
        # Clean-up on shutdown runs while its task is being cancelled; a retry there is not a
        # cancellation turned into an error.
        started = asyncio.Event()
        operation = Flaky(ConnectionError("blip"), result="committed")

        async def shutting_down() -> str:
            try:
                started.set()
                await asyncio.Event().wait()
            except asyncio.CancelledError:  # still being cancelled while it cleans up
                return await retry_until_deadline(
                    operation, retry_on=(ConnectionError,), within_seconds=30, first_delay=0.001
                )
            raise AssertionError("unreachable")

        task = asyncio.create_task(shutting_down())
        await started.wait()
        task.cancel()
        assert await task == "committed"
        assert operation.calls == 2


class TestWaitEvent:
    async def test_true_when_the_event_is_set_in_time(self) -> None:
        event = asyncio.Event()
        asyncio.get_running_loop().call_soon(event.set)
        assert await wait_event(event, 30) is True

    async def test_false_when_the_time_passes(self) -> None:
        assert await wait_event(asyncio.Event(), 0.01) is False

    async def test_an_awaitable_that_finishes_in_time(self) -> None:
        assert await wait_event(asyncio.sleep(0), 30) is True

    async def test_an_awaitable_that_does_not_finish_is_cancelled(self) -> None:
        cancelled = asyncio.Event()

        async def slow() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        assert await wait_event(slow(), 0.01) is False
        assert cancelled.is_set()

    async def test_an_awaitable_that_fails_raises(self) -> None:
        async def fails() -> None:
            raise TimeoutError("its own timeout")

        with pytest.raises(TimeoutError, match="its own"):
            await wait_event(fails(), 30)

    async def test_cancelling_the_waiter_is_not_swallowed(self) -> None:
        task = asyncio.create_task(wait_event(asyncio.Event(), 60))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
