"""The runtime's pure pieces, tested directly: log tail, lines, error shapes, trace ids, FIFO."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import pytest

from kfaas.runtime import errors, frames, logs, tracing
from kfaas.runtime.config import ConfigError, config_from_env, worker_environment
from kfaas.runtime.pool import FifoPool


def test_tail_keeps_the_last_4_kb() -> None:
    tail = logs.Tail()
    for n in range(5000):
        tail.append(f"{n:05d}\n".encode())
    value = tail.value()
    assert len(value) == 4096
    assert value.endswith(b"04999\n")


def test_line_buffer_splits_lines_and_caps_long_ones() -> None:
    buffer = logs.LineBuffer()
    assert buffer.feed(b"one\ntw") == [b"one"]
    assert buffer.feed(b"o\n") == [b"two"]
    long = buffer.feed(b"x" * (logs.MAX_LINE_BYTES + 10))
    assert long == [b"x" * logs.MAX_LINE_BYTES]
    assert buffer.flush() == [b"x" * 10] and buffer.flush() == []


def test_report_line() -> None:
    assert logs.report_line("r", 1.234, 128, 40, 12.345) == (
        "REPORT RequestId: r\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 40 MB\tInit Duration: 12.35 ms"
    )
    assert "Init Duration" not in logs.report_line("r", 0.1, 128, 40, None)


def _raise_through_kfaas() -> None:
    # Stands in for the bootstrap calling a handler: the first frame is inside kfaas.
    scope: dict[str, Any] = {}
    exec(compile("def handler():\n    raise KeyError('k')\n", "/var/task/app.py", "exec"), scope)
    scope["handler"]()


def test_stack_trace_trims_kfaas_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors, "RUNTIME_DIR", __file__.rsplit("/", 1)[0] + "/")
    try:
        _raise_through_kfaas()
    except KeyError as exc:
        error = errors.user_error(exc)
    assert error["errorType"] == "KeyError"
    assert error["stackTrace"] == ['  File "/var/task/app.py", line 2, in handler\n']


def test_exit_reasons_and_timeout_message() -> None:
    assert errors.exit_reason(3) == "exit status 3"
    assert errors.exit_reason(-signal.SIGSEGV) == "signal: segmentation fault"
    assert errors.exit_reason(-signal.SIGKILL) == "signal: killed"
    message = errors.timeout_error("id-1", 3, now=0.5)["errorMessage"]
    assert message == "1970-01-01T00:00:00.500Z id-1 Task timed out after 3.00 seconds"


def test_xray_header_from_traceparent() -> None:
    header = tracing.xray_trace_header("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
    assert header == "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=0"
    assert tracing.xray_trace_header("garbage") is None


def test_frames_round_trip_in_pieces() -> None:
    data = frames.encode({"id": "a"}, b"body") + frames.encode({"id": "b"})
    decoder = frames.FrameDecoder()
    assert decoder.feed(data[:7]) == []
    assert decoder.feed(data[7:]) == [({"id": "a"}, b"body"), ({"id": "b"}, b"")]


def test_config_and_worker_environment() -> None:
    config = config_from_env(
        {
            "_HANDLER": "app.handler",
            "KFAAS_RUNTIME": "python3.12",
            "AWS_REGION": "eu-west-1",
            "KFAAS_PER_INSTANCE": "3",
            "MINE": "1",
            "_HANDLER_EXTRA": "x",
        },
        interpreter=(3, 12),
    )
    assert config.per_instance == 3 and config.region == "eu-west-1"
    env = worker_environment(config, "127.0.0.1:9001", "stream")
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12" and env["MINE"] == "1"
    assert not any(key.startswith("KFAAS_") for key in env)
    with pytest.raises(ConfigError):
        config_from_env({"_HANDLER": "a.b", "KFAAS_RUNTIME": "nodejs20.x"})
    # A Python runtime runs on its own interpreter only; `provided` on any (its bootstrap's).
    with pytest.raises(ConfigError, match=r"KFAAS_RUNTIME=python3\.13 but this is Python 3\.11"):
        config_from_env({"_HANDLER": "a.b", "KFAAS_RUNTIME": "python3.13"}, interpreter=(3, 11))
    assert config_from_env({"KFAAS_RUNTIME": "provided"}, interpreter=(3, 11)).runtime == "provided"
    assert config_from_env({"_HANDLER": "a.b"}, interpreter=(3, 13)).runtime == "python3.13"
    with pytest.raises(ConfigError):
        config_from_env(
            {"KFAAS_RUNTIME": f"python{sys.version_info.major}.{sys.version_info.minor}"}
        )


@pytest.mark.parametrize(
    ("given", "seen"),
    [
        (None, "on-demand"),
        ("on-demand", "on-demand"),
        ("provisioned-concurrency", "provisioned-concurrency"),
        ("snap-start", "on-demand"),  # not one the platform sets: the default
    ],
)
def test_initialization_type_is_the_platforms(given: str | None, seen: str) -> None:
    environ = {"_HANDLER": "a.b", "KFAAS_RUNTIME": "provided"}
    if given is not None:
        environ["AWS_LAMBDA_INITIALIZATION_TYPE"] = given
    env = worker_environment(config_from_env(environ), "127.0.0.1:9001", "stream")
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == seen


async def test_fifo_pool_serves_waiters_in_order() -> None:
    pool: FifoPool[str] = FifoPool()
    waiters = [asyncio.ensure_future(pool.acquire()) for _ in range(3)]
    await asyncio.sleep(0)  # let them queue up
    waiters[1].cancel()
    pool.release("w1")
    pool.release("w2")
    assert await waiters[0] == "w1"
    assert await waiters[2] == "w2"
    assert pool.waiting == 0
