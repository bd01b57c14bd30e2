"""Starting worker processes, and reading what the kernel knows about them.

A worker is its own session (so killing it takes any children a custom bootstrap started with it),
runs in the task root as Lambda's do, has stdin on /dev/null and stdout+stderr on one pipe (so the
order of its output survives). A Python worker also gets the private frame pipe pair. A pidfd lets
the event loop learn of the worker's exit without a watcher thread or SIGCHLD games. Nothing here
imports asyncio: `__main__` spawns the first workers before the server's own imports, so both
start up in parallel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from kfaas.runtime.config import RuntimeConfig, log_stream_name, worker_environment


@dataclass
class WorkerProcess:
    popen: subprocess.Popen[bytes]
    pidfd: int
    log_fd: int  # read end of the worker's stdout+stderr, non-blocking
    to_worker: int | None  # private channel: server → worker frames (non-blocking write end)
    from_worker: int | None  # private channel: worker → server frames (non-blocking read end)
    started: float  # time.monotonic() just before spawning
    stream: str
    closed: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self) -> None:
        """SIGKILL the worker's whole session; it cannot be caught, so a stuck handler dies too."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:  # the session leader is already gone and its id reused
            pass

    def returncode(self) -> int | None:
        return self.popen.poll()

    def close_fds(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fd in (self.pidfd, self.log_fd, self.to_worker, self.from_worker):
            if fd is not None:
                os.close(fd)


def spawn(config: RuntimeConfig, runtime_api: str, private_pipe: bool) -> WorkerProcess:
    stream = log_stream_name()
    env = worker_environment(config, runtime_api, stream)
    log_read, log_write = os.pipe()
    child_fds: list[int] = [log_write]
    to_worker = from_worker = None
    if private_pipe:
        request_read, to_worker = os.pipe()
        from_worker, result_write = os.pipe()
        child_fds += [request_read, result_write]
        env["_KFAAS_PIPE"] = f"{request_read},{result_write}"
        argv = [sys.executable, "-m", "kfaas.runtime.bootstrap", config.handler]
    elif config.is_python:
        argv = [sys.executable, "-m", "kfaas.runtime.bootstrap", config.handler]
    else:
        argv = [os.path.join(config.task_root, "bootstrap")]
    started = time.monotonic()
    try:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_write,
            stderr=log_write,
            pass_fds=tuple(child_fds[1:]),
            cwd=config.task_root,
            env=env,
            start_new_session=True,
        )
    except BaseException:
        for fd in (log_read, to_worker, from_worker):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        for fd in child_fds:  # the worker holds its own copies now
            os.close(fd)
    for fd in (log_read, to_worker, from_worker):
        if fd is not None:
            os.set_blocking(fd, False)
    return WorkerProcess(
        popen=popen,
        pidfd=os.pidfd_open(popen.pid),
        log_fd=log_read,
        to_worker=to_worker,
        from_worker=from_worker,
        started=started,
        stream=stream,
    )


def memory_mb(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in MB from /proc; (0, 0) once the process is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            text = status.read()
    except OSError:
        return 0, 0
    rss = peak = 0
    for line in text.splitlines():
        if line.startswith(b"VmRSS:"):
            rss = int(line.split()[1]) // 1024
        elif line.startswith(b"VmHWM:"):
            peak = int(line.split()[1]) // 1024
    return rss, peak
