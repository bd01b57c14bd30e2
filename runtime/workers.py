"""One worker slot: a process that runs one invocation at a time, and everything that befalls it.

A slot owns its process (replaced whenever it dies), its Runtime API state (for bootstraps that
speak it) and its log pipe. It is where the rules of DESIGN's "Semantics that must hold" live for a
single worker: an overrun is killed and answered `Sandbox.Timedout`; a crash is answered
`Runtime.ExitError`; an init error is answered to the next invocation, after which the worker is
re-initialised; the slot is only handed out again once its replacement finished init, so no
invocation meets a dead worker.

Log ordering: a worker writes its output before its result (the bootstrap flushes first), so when
the result arrives the slot drains the log pipe synchronously up to what the kernel already holds,
and only then writes END/REPORT. Output of one request cannot end up in another's tail.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass, field

from kfaas.runtime import errors, frames, logs
from kfaas.runtime.config import RuntimeConfig
from kfaas.runtime.metrics import Metrics
from kfaas.runtime.process import WorkerProcess, memory_mb, spawn

MEMORY_WATCH_SECONDS = 0.02


@dataclass(slots=True)
class Invocation:
    request_id: str
    event: bytes
    deadline_ms: int = 0  # epoch milliseconds; set when the invocation starts
    function_arn: str = ""
    trace_id: str | None = None
    client_context: str | None = None
    cognito_identity: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    @staticmethod
    def new_request_id() -> str:
        return str(uuid.uuid4())


@dataclass(slots=True)
class Outcome:
    body: bytes
    function_error: bool
    log_tail: bytes
    duration_ms: float
    init_duration_ms: float | None  # set on the first invocation of a worker process


@dataclass(slots=True)
class _Call:
    invocation: Invocation
    result: asyncio.Future[tuple[bytes, bool]]
    started: float
    tail: logs.Tail = field(default_factory=logs.Tail)


class WorkerSlot:
    def __init__(
        self,
        index: int,
        config: RuntimeConfig,
        runtime_api: str,
        private_pipe: bool,
        sink: logs.LogSink,
        metrics: Metrics,
    ) -> None:
        self.index = index
        self.runtime_api = runtime_api
        self.initialised = asyncio.Event()
        self._config = config
        self._private_pipe = private_pipe
        self._sink = sink
        self._metrics = metrics
        self._loop = asyncio.get_running_loop()
        self._process: WorkerProcess | None = None
        self._call: _Call | None = None
        self._lines = logs.LineBuffer()
        self._frames = frames.FrameDecoder()
        self._unsent = bytearray()
        self._last_tag = "init"
        self._init_log = logs.Tail()
        self._init_failure: bytes | int | None = None  # error JSON, or the exit code of init
        self._init_duration_ms: float | None = None
        self._killed_for: str | None = None
        self._reported_peak_mb: int | None = None  # sent by the default bootstrap with a result
        self._respawn_on_exit = False
        self._closing = False
        # Runtime API: a bootstrap's pending `next` call, or an invocation it has yet to fetch.
        self._next_waiter: asyncio.Future[Invocation] | None = None
        self._undelivered: Invocation | None = None

    # -- process lifecycle -------------------------------------------------------------------

    def adopt(self, process: WorkerProcess) -> None:
        self._process = process
        self._lines, self._frames, self._last_tag = logs.LineBuffer(), frames.FrameDecoder(), "init"
        self._init_log = logs.Tail()
        self._loop.add_reader(process.log_fd, self._on_log, process)
        self._loop.add_reader(process.pidfd, self._on_exit, process)
        if process.from_worker is not None:
            self._loop.add_reader(process.from_worker, self._on_frames, process)

    def _spawn(self) -> None:
        self.adopt(spawn(self._config, self.runtime_api, self._private_pipe))

    def _replace(self, reason: str) -> None:
        self._metrics.worker_restart(reason)
        self._sink.event("worker_restart", worker=self.index, reason=reason)
        self.initialised.clear()
        if self._process is not None:
            self._respawn_on_exit = True
            self._process.kill()
        elif not self._closing:
            self._spawn()

    def _on_exit(self, process: WorkerProcess) -> None:
        self._detach(process)
        code = process.popen.wait()  # the pidfd said it has exited: this does not block
        self._process = None
        if self._closing:
            return
        if not self.initialised.is_set() and not self._respawn_on_exit:
            if self._init_failure is None:
                self._init_failure = code
                self._sink.event("worker_init_exit", level="error", worker=self.index, code=code)
            self.initialised.set()
            return
        call = self._call
        if call is not None and not call.result.done():
            reason = self._killed_for or "crash"
            self._complete(json.dumps(errors.exit_error(call.invocation.request_id, code)), True)
            self._killed_for, self._respawn_on_exit = None, False
            self._replace(reason)
        elif self._respawn_on_exit:
            self._respawn_on_exit = False
            self._spawn()
        elif self._init_failure is None:  # died between invocations
            self._replace("crash")

    def _detach(self, process: WorkerProcess) -> None:
        self._drain(process)
        for fd in (process.pidfd, process.log_fd, process.from_worker, process.to_worker):
            if fd is not None:
                self._loop.remove_reader(fd)
                self._loop.remove_writer(fd)
        self._unsent.clear()
        process.close_fds()

    async def close(self) -> None:
        self._closing = True
        process = self._process
        if process is None:
            return
        exited = asyncio.Event()
        self._loop.remove_reader(process.pidfd)
        self._loop.add_reader(process.pidfd, exited.set)
        process.kill()
        await exited.wait()
        self._detach(process)
        process.popen.wait()
        self._process = None

    def _init_done(self, failure: bytes | None) -> None:
        process = self._process
        if self.initialised.is_set() or process is None:
            return
        duration_ms = (time.monotonic() - process.started) * 1000
        self._init_duration_ms = duration_ms
        self._init_failure = failure
        self._metrics.initialised(duration_ms / 1000)
        self.initialised.set()

    # -- what the worker says ----------------------------------------------------------------

    def _on_log(self, process: WorkerProcess) -> None:
        try:
            data = process_read(process.log_fd)
        except BlockingIOError:
            return
        if not data:
            self._loop.remove_reader(process.log_fd)
            return
        self._log_lines(self._lines.feed(data))

    def _log_lines(self, lines: list[bytes]) -> None:
        call = self._call
        tag = call.invocation.request_id if call else self._last_tag
        for line in lines:
            self._sink.function(tag, line)
            (call.tail if call else self._init_log).append(line + b"\n")
        self._sink.flush()

    def _drain(self, process: WorkerProcess, results: bool = True) -> None:
        """Read everything the pipes hold right now, so logs (and results) are complete."""
        pipes = [(process.log_fd, self._logs_in)]
        if results and process.from_worker is not None:
            pipes.insert(0, (process.from_worker, self._frames_in))
        for fd, consume in pipes:
            while not process.closed:
                try:
                    data = process_read(fd)
                except BlockingIOError:
                    break
                if not data:
                    break
                consume(data)

    def _logs_in(self, data: bytes) -> None:
        self._log_lines(self._lines.feed(data))

    def _on_frames(self, process: WorkerProcess) -> None:
        assert process.from_worker is not None
        try:
            data = process_read(process.from_worker)
        except BlockingIOError:
            return
        if not data:
            self._loop.remove_reader(process.from_worker)
            return
        self._frames_in(data)

    def _frames_in(self, data: bytes) -> None:
        for meta, body in self._frames.feed(data):
            kind = meta.get("t")
            if kind == "ready":
                self._init_done(None)
            elif kind == "init_error":
                self._init_done(body)
            elif self._call is not None and meta.get("id") == self._call.invocation.request_id:
                self._reported_peak_mb = meta.get("peak_mb")
                if kind == "ok" and len(body) > errors.MAX_RESPONSE_BYTES:
                    self._complete(json.dumps(errors.response_too_large(len(body))), True)
                else:
                    self._complete(body, kind != "ok")

    def _complete(self, body: bytes | str, function_error: bool) -> None:
        call = self._call
        if call is not None and not call.result.done():
            if self._process is not None:
                self._drain(self._process, results=False)
            call.result.set_result(
                (body.encode() if isinstance(body, str) else body, function_error)
            )

    # -- invoking ----------------------------------------------------------------------------

    async def invoke(self, invocation: Invocation) -> Outcome:
        await self.initialised.wait()
        if self._init_failure is not None:
            return self._answer_init_failure(invocation)
        started = time.monotonic()
        invocation.deadline_ms = int((time.time() + self._config.timeout_seconds) * 1000)
        call = _Call(invocation, self._loop.create_future(), started)
        self._call, self._last_tag = call, invocation.request_id
        init_duration_ms, self._init_duration_ms = self._init_duration_ms, None
        self._platform(call.tail, logs.start_line(invocation.request_id, self._version))
        self._deliver(invocation)
        timer = self._loop.call_later(self._config.timeout_seconds, self._on_timeout, call)
        if self._config.enforce_memory_limit:
            self._watch_memory(call)
        try:
            body, function_error = await call.result
        finally:
            timer.cancel()
        duration_ms = (time.monotonic() - started) * 1000
        peak, self._reported_peak_mb = self._reported_peak_mb, None
        if peak is None:
            peak = memory_mb(self._process.pid)[1] if self._process is not None else 0
        self._finish_log(call.tail, invocation.request_id, duration_ms, peak, init_duration_ms)
        self._call = None
        return Outcome(body, function_error, call.tail.value(), duration_ms, init_duration_ms)

    @property
    def _version(self) -> str:
        return self._config.function_version

    def _platform(self, tail: logs.Tail, line: str) -> None:
        self._sink.platform(line)
        tail.append(line.encode() + b"\n")

    def _finish_log(
        self, tail: logs.Tail, request_id: str, duration: float, peak: int, init: float | None
    ) -> None:
        self._log_lines(self._lines.flush())
        self._platform(tail, logs.end_line(request_id))
        report = logs.report_line(request_id, duration, self._config.memory_mb, peak, init)
        self._platform(tail, report)
        self._sink.flush()

    def _answer_init_failure(self, invocation: Invocation) -> Outcome:
        failure, self._init_failure = self._init_failure, None
        init_duration_ms, self._init_duration_ms = self._init_duration_ms, None
        if isinstance(failure, int):
            body = json.dumps(errors.exit_error(invocation.request_id, failure)).encode()
        else:
            body = failure or b"{}"
        tail = logs.Tail()
        self._platform(tail, logs.start_line(invocation.request_id, self._version))
        tail.append(self._init_log.value())
        self._finish_log(tail, invocation.request_id, 0.0, 0, init_duration_ms)
        self._replace("init_error")  # the next invocation gets a fresh init, as on Lambda
        return Outcome(body, True, tail.value(), 0.0, init_duration_ms)

    def _deliver(self, invocation: Invocation) -> None:
        process = self._process
        if self._private_pipe and process is not None and process.to_worker is not None:
            meta = {
                "id": invocation.request_id,
                "deadline": invocation.deadline_ms,
                "arn": invocation.function_arn,
                "trace": invocation.trace_id,
                "cc": invocation.client_context,
                "ci": invocation.cognito_identity,
                "tp": invocation.traceparent,
                "ts": invocation.tracestate,
            }
            self._send(process, frames.encode(meta, invocation.event))
        elif self._next_waiter is not None and not self._next_waiter.done():
            self._next_waiter.set_result(invocation)
        else:
            self._undelivered = invocation

    def _send(self, process: WorkerProcess, data: bytes) -> None:
        assert process.to_worker is not None
        fd = process.to_worker
        if not self._unsent:
            try:
                written = process_write(fd, data)
            except (BlockingIOError, BrokenPipeError):
                written = 0
            data = data[written:]
            if not data:
                return
            self._loop.add_writer(fd, self._flush_unsent, process)
        self._unsent += data

    def _flush_unsent(self, process: WorkerProcess) -> None:
        assert process.to_worker is not None
        try:
            written = process_write(process.to_worker, self._unsent)
        except BlockingIOError:
            return
        except BrokenPipeError:  # the worker is dying; its exit answers the invocation
            written = len(self._unsent)
        del self._unsent[:written]
        if not self._unsent:
            self._loop.remove_writer(process.to_worker)

    def _on_timeout(self, call: _Call) -> None:
        if self._call is not call or call.result.done():
            return
        error = errors.timeout_error(call.invocation.request_id, self._config.timeout_seconds)
        self._complete(json.dumps(error), True)
        self._replace("timeout")

    def _watch_memory(self, call: _Call) -> None:
        """Kill the worker once its peak RSS passes memoryMB (local mode, KFAAS_MEMORY_LIMIT=1).

        Why a watch and not a limit: RLIMIT_AS/RLIMIT_DATA make allocations fail (a MemoryError
        the handler may catch) instead of ending the process as Lambda does, and count address
        space that is never touched (thread stacks, arenas); cgroups need privileges a laptop
        does not give. VmHWM is the peak since the process started, so a spike between two looks
        is still caught at the next one. It only runs during an invocation; inside a pod the
        container's cgroup limit does this job.
        """
        if self._call is not call or call.result.done() or self._process is None:
            return
        if memory_mb(self._process.pid)[1] > self._config.memory_mb:
            self._killed_for = "memory"
            self._process.kill()
            return
        self._loop.call_later(MEMORY_WATCH_SECONDS, self._watch_memory, call)

    # -- Runtime API (runtime_api.py calls these) --------------------------------------------

    async def next_invocation(self) -> Invocation:
        self._init_done(None)  # the first `next` is how a bootstrap says init is over
        if self._undelivered is not None:
            invocation, self._undelivered = self._undelivered, None
            return invocation
        if self._next_waiter is not None and not self._next_waiter.done():
            self._next_waiter.cancel()  # a previous process's call, left behind
        waiter: asyncio.Future[Invocation] = self._loop.create_future()
        self._next_waiter = waiter
        try:
            return await waiter
        finally:
            if self._next_waiter is waiter:
                self._next_waiter = None

    def post_result(
        self, request_id: str, body: bytes, function_error: bool, too_large: int
    ) -> int:
        """Answer a `response`/`error` post: 202, 403 (not the current invocation) or 413."""
        call = self._call
        if call is None or call.invocation.request_id != request_id or call.result.done():
            return 403
        if too_large:
            self._complete(json.dumps(errors.response_too_large(too_large)), True)
            return 413
        self._complete(body, function_error)
        return 202

    def post_init_error(self, body: bytes) -> int:
        if self.initialised.is_set():
            return 403
        self._init_done(body)
        return 202


def process_read(fd: int) -> bytes:
    return os.read(fd, 1 << 16)


def process_write(fd: int, data: bytes | bytearray) -> int:
    return os.write(fd, data)
