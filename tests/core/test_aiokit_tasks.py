"""The asyncio toolkit's guarded tasks and stopping (``kfaas.aiokit``)."""

from __future__ import annotations

import asyncio
import logging
from typing import NoReturn

import pytest

from kfaas import aiokit
from kfaas.aiokit import Backoff, TaskEnded, guarded_task, stop_tasks, supervise

log = logging.getLogger("tests.aiokit")
QUICK = Backoff(first=0.001, most=0.004)


class Fatal(Exception):
    pass


class Runs:
    """A run that fails with the given errors in turn, then waits until cancelled."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.failed = asyncio.Event()
        self.waiting = asyncio.Event()

    async def __call__(self) -> None:
        self.calls += 1
        if self.errors:
            self.failed.set()
            raise self.errors.pop(0)
        self.waiting.set()
        await asyncio.Event().wait()


def restart_delays(caplog: pytest.LogCaptureFixture) -> list[object]:
    """The pauses the guard logged, in order."""
    return [
        record.args[1]
        for record in caplog.records
        if isinstance(record.args, tuple) and "restarting" in record.getMessage()
    ]


class TestBackoff:
    def test_doubles_from_first_to_most(self) -> None:
        backoff = Backoff(first=0.5, most=30)
        assert [backoff.delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]

    def test_a_long_run_of_failures_stays_at_most(self) -> None:
        assert Backoff(first=0.5, most=30).delay(100_000) == 30


class TestRestarts:
    async def test_failures_restart_with_growing_pauses(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO)
        run = Runs(OSError("a"), OSError("b"), OSError("c"), OSError("d"))
        task = guarded_task("worker", run, log=log, restart=QUICK)
        await run.waiting.wait()
        assert run.calls == 5
        assert restart_delays(caplog) == [0.001, 0.002, 0.004, 0.004]
        await stop_tasks([task], grace_seconds=0)
        assert task.cancelled()

    async def test_a_healthy_run_resets_the_backoff(self, caplog: pytest.LogCaptureFixture) -> None:
        run = Runs(OSError("a"), OSError("b"), OSError("c"))
        always_healthy = Backoff(first=0.001, most=0.004, healthy_after=0.0)
        task = guarded_task("worker", run, log=log, restart=always_healthy)
        await run.waiting.wait()
        assert restart_delays(caplog) == [0.001, 0.001, 0.001]
        await stop_tasks([task], grace_seconds=0)

    async def test_expected_errors_log_one_line_others_a_traceback(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        run = Runs(ConnectionError("source gone"), KeyError("bug"))
        task = guarded_task("worker", run, log=log, restart=QUICK, expected=(ConnectionError,))
        await run.waiting.wait()
        first, second = caplog.records
        assert (first.levelno, first.exc_info) == (logging.WARNING, None)
        assert first.getMessage() == "worker failed, restarting in 0.0 s: source gone"
        assert second.levelno == logging.ERROR and second.exc_info is not None
        assert second.getMessage() == "worker failed; restarting in 0.0 s"
        await stop_tasks([task], grace_seconds=0)

    async def test_a_return_restarts_when_asked(self, caplog: pytest.LogCaptureFixture) -> None:
        calls = 0
        again = asyncio.Event()

        async def returns_once() -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                again.set()
                await asyncio.Event().wait()

        task = guarded_task("worker", returns_once, log=log, restart=QUICK, on_return="restart")
        await again.wait()
        assert [r.getMessage() for r in caplog.records] == [
            "worker stopped on its own; restarting in 0.0 s"
        ]
        await stop_tasks([task], grace_seconds=0)


class TestEnds:
    async def test_a_return_ends_the_guard_by_default(self) -> None:
        async def finished() -> None:
            return None

        await supervise("worker", finished, log=log, restart=QUICK)

    async def test_a_fatal_error_ends_at_once(self) -> None:
        run = Runs(Fatal("cannot run as written"))
        with pytest.raises(Fatal):
            await supervise("worker", run, log=log, restart=QUICK, fatal=(Fatal,))
        assert run.calls == 1

    async def test_an_error_not_to_restart_on_ends_at_once(self) -> None:
        run = Runs(ValueError("bug"))
        with pytest.raises(ValueError, match="bug"):
            await supervise("worker", run, log=log, restart=QUICK, restart_on=(OSError,))
        assert run.calls == 1

    async def test_without_restart_every_failure_ends(self) -> None:
        run = Runs(OSError("gone"))
        with pytest.raises(OSError, match="gone"):
            await supervise("worker", run, log=log)

    async def test_a_return_may_be_fatal(self) -> None:
        async def finished() -> None:
            return None

        with pytest.raises(TaskEnded, match="worker returned on its own"):
            await supervise("worker", finished, log=log, restart=QUICK, on_return="fatal")

    async def test_a_fatal_handler_gets_the_end_instead_of_the_awaiter(self) -> None:
        ends: list[tuple[str, BaseException]] = []
        error = Fatal("no")
        task = guarded_task(
            "worker", Runs(error), log=log, fatal=(Fatal,), on_fatal=lambda *end: ends.append(end)
        )
        await task
        assert ends == [("worker", error)]

    async def test_exit_process_logs_and_exits_with_the_status(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        class Exited(BaseException):
            pass

        def fake_exit(status: int) -> NoReturn:
            raise Exited(status)

        handler = aiokit._ExitProcess(log, 70, fake_exit)
        with pytest.raises(Exited) as exited:
            handler("gateway-functions", OSError("watch gone"))
        assert exited.value.args == (70,)
        [record] = caplog.records
        assert record.levelno == logging.CRITICAL
        assert record.getMessage() == "gateway-functions stopped: OSError('watch gone'); exiting"

    async def test_log_end_logs_the_error_with_its_traceback(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        await guarded_task("reader", Runs(OSError("closed")), log=log, on_fatal=aiokit.log_end(log))
        [record] = caplog.records
        assert record.getMessage() == "reader stopped: OSError('closed')"
        assert record.levelno == logging.ERROR and record.exc_info is not None


class TestCancellation:
    async def test_cancelling_stops_the_guard(self) -> None:
        run = Runs()
        task = guarded_task("worker", run, log=log, restart=QUICK)
        await run.waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert run.calls == 1

    async def test_cancellation_turned_into_another_error_still_stops(self) -> None:
        started = asyncio.Event()
        calls = 0

        async def converts_cancellation() -> None:
            nonlocal calls
            calls += 1
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise ConnectionError("connection reset mid-read") from None

        task = guarded_task("worker", converts_cancellation, log=log, restart=QUICK)
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert calls == 1

    async def test_cancellation_swallowed_by_a_run_that_returns_still_stops(self) -> None:
        started = asyncio.Event()
        calls = 0

        async def swallows_cancellation() -> None:
            nonlocal calls
            calls += 1
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                return

        task = guarded_task(
            "worker", swallows_cancellation, log=log, restart=QUICK, on_return="restart"
        )
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert calls == 1

    async def test_cancelling_during_the_pause_stops(self) -> None:
        run = Runs(*[OSError("down")] * 1000)
        task = guarded_task("worker", run, log=log, restart=Backoff(first=60, most=60))
        await run.failed.wait()  # the guard is in its pause once the run's error reached it
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert run.calls == 1


class TestStopTasks:
    async def test_loops_that_saw_their_flag_end_within_the_grace(self) -> None:
        closing = asyncio.Event()

        async def loop_until_closing() -> str:
            await closing.wait()
            return "finished"

        task = asyncio.create_task(loop_until_closing())
        closing.set()
        await stop_tasks([task], grace_seconds=30)
        assert not task.cancelled() and task.result() == "finished"

    async def test_the_rest_is_cancelled_after_the_grace(self) -> None:
        task = asyncio.create_task(asyncio.Event().wait())
        async with asyncio.timeout(10):
            await stop_tasks([task], grace_seconds=0.01)
        assert task.cancelled()

    async def test_a_task_that_swallows_its_cancellation_is_logged_and_left(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        release = asyncio.Event()

        async def stubborn() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await release.wait()
                raise RuntimeError("ended late") from None

        task = asyncio.create_task(stubborn(), name="stubborn")
        await asyncio.sleep(0)
        await stop_tasks([task], grace_seconds=0, cancelled_seconds=0.01, log=log)
        assert [r.getMessage() for r in caplog.records] == ["stubborn did not stop when cancelled"]
        assert not task.done()
        release.set()
        await asyncio.wait([task])
        assert isinstance(task.exception(), RuntimeError)

    async def test_failed_tasks_are_stopped_quietly(self) -> None:
        async def fails() -> None:
            raise RuntimeError("already failed")

        task = asyncio.create_task(fails())
        await asyncio.sleep(0)
        await stop_tasks([task], grace_seconds=0)
        assert isinstance(task.exception(), RuntimeError)

    async def test_no_tasks(self) -> None:
        await stop_tasks([])


def test_run_returns_the_main_coroutines_value() -> None:
    async def main() -> int:
        await asyncio.sleep(0)
        return 42

    assert aiokit.run(main()) == 42
