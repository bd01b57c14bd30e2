"""A pre-imported template process that forks new local instances in milliseconds.

Starting ``kfaas runtime`` as a fresh interpreter costs about 200 ms of imports (aiohttp, telemetry)
before it can serve, which alone is over the cold-start budget. ``kfaas dev`` therefore starts this
fork server once: it imports the runtime's modules, then waits for requests and forks a child per
instance, which runs the module's ``__main__`` with its own environment, working directory and
readiness descriptor. The fork server is single-threaded and runs no event loop, so forking it is
safe; it reaps its children, reports their exits, and takes them down when its parent goes away.

Wire protocol (both directions are JSON lines): requests arrive on ``request_fd`` with at most one
file descriptor attached (SCM_RIGHTS); replies ``{"id": n, "pid": p}`` / ``{"id": n, "error": …}``
and exit notices ``{"exited": p, "status": code}`` go out on ``reply_fd``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import runpy
import selectors
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any

from kfaas import aiokit

log = logging.getLogger("kfaas.forkserver")

ExitListener = Callable[[int, int], None]


def serve(request_fd: int, reply_fd: int, preload: list[str]) -> None:
    """The fork server's loop (runs in its own process)."""
    for module in preload:
        importlib.import_module(module)
    requests = socket.socket(fileno=request_fd)
    replies = os.fdopen(reply_fd, "w", buffering=1)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(requests, selectors.EVENT_READ, "request")
    selector.register(wake_read, selectors.EVENT_READ, "signal")
    children: set[int] = set()
    buffer = b""
    pending_fds: list[int] = []
    try:
        while True:
            for key, _ in selector.select():
                if key.data == "signal":
                    os.read(wake_read, 512)
                    _reap(children, replies)
                    continue
                data, fds, _, _ = socket.recv_fds(requests, 65536, 4)
                if not data:
                    return
                buffer += data
                pending_fds.extend(fds)
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    request = json.loads(line)
                    passed = pending_fds.pop(0) if request.get("fd_env") else None
                    pid = os.fork()
                    if pid == 0:  # the child never returns from here
                        signal.set_wakeup_fd(-1)
                        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                        selector.close()
                        requests.close()
                        _run_child(request, passed)
                    children.add(pid)
                    if passed is not None:
                        os.close(passed)
                    replies.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _reap(children: set[int], replies: Any) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        replies.write(
            json.dumps({"exited": pid, "status": os.waitstatus_to_exitcode(status)}) + "\n"
        )


def _run_child(request: dict[str, Any], passed: int | None) -> None:
    code = 0
    try:
        os.setpgid(0, 0)
        os.environ.clear()
        os.environ.update(request["env"])
        if passed is not None:
            os.environ[request["fd_env"]] = str(passed)
        os.chdir(request["cwd"])
        sys.argv = [request["module"]]
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class ForkServer:
    """The parent's handle on a fork server process."""

    def __init__(
        self,
        preload: list[str],
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``python`` runs the server; ``env`` is its environment (None: this process's), which
        another interpreter needs to import kfaas (``kfaas.interpreters``)."""
        self.preload = preload
        self.python = python
        self.env = dict(env) if env is not None else None
        self._process: asyncio.subprocess.Process | None = None
        self._requests: socket.socket | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._next_id = 0
        self._exit_listeners: list[ExitListener] = []

    def on_exit(self, listener: ExitListener) -> None:
        self._exit_listeners.append(listener)

    async def start(self) -> None:
        ours, theirs = socket.socketpair()
        reply_read, reply_write = os.pipe()
        # -P: the working directory does not shadow the kfaas that PYTHONPATH names.
        isolation = ["-P"] if self.env is not None else []
        self._process = await asyncio.create_subprocess_exec(
            self.python,
            *isolation,
            "-c",
            "import sys, kfaas.forkserver as f; "
            "f.serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(','))",
            str(theirs.fileno()),
            str(reply_write),
            ",".join(self.preload),
            pass_fds=(theirs.fileno(), reply_write),
            stdin=asyncio.subprocess.DEVNULL,
            env=self.env,
        )
        theirs.close()
        os.close(reply_write)
        self._requests = ours
        reader = asyncio.StreamReader(limit=1 << 20)
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(reply_read, "rb")
        )
        # It ends when the server exits; if it fails instead, that is logged, never silent.
        self._reader_task = aiokit.guarded_task(
            "kfaas-forkserver",
            lambda: self._read(reader),
            log=log,
            on_fatal=aiokit.log_end(log),
        )

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                message = json.loads(line)
                if "exited" in message:
                    for listener in self._exit_listeners:
                        listener(message["exited"], message["status"])
                elif (waiter := self._waiting.pop(message["id"], None)) and not waiter.done():
                    waiter.set_result(message["pid"])
        finally:
            # Nobody would answer them any more (the server exited, or this reader failed).
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(RuntimeError("the fork server exited"))

    async def spawn(
        self,
        module: str,
        *,
        env: Mapping[str, str],
        cwd: str,
        fd: int | None = None,
        fd_env: str | None = None,
    ) -> int:
        """Fork a child running ``python -m module``; returns its pid. ``fd`` is handed over."""
        if self._requests is None:
            raise RuntimeError("the fork server is not started")
        self._next_id += 1
        request = {"id": self._next_id, "module": module, "env": dict(env), "cwd": cwd}
        if fd is not None:
            request["fd_env"] = fd_env or "KFAAS_PASSED_FD"
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[self._next_id] = waiter
        data = (json.dumps(request) + "\n").encode()
        socket.send_fds(self._requests, [data], [fd] if fd is not None else [])
        return await waiter

    async def stop(self) -> None:
        if self._requests is not None:
            self._requests.close()
            self._requests = None
        if self._process is not None and not await aiokit.wait_event(self._process.wait(), 5):
            self._process.kill()
            await self._process.wait()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)
