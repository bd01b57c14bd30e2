"""Everything an instance can do before its event loop exists: bind ports, start workers.

`python -m kfaas.runtime` calls `prepare` before importing asyncio and the server, so the workers'
interpreter start-up and handler imports overlap with the server's own imports — on a cold start
that overlap is most of the budget. Sockets are bound here so that port 0 ("pick a free port",
ADR 002) is resolved before a worker is told its `AWS_LAMBDA_RUNTIME_API`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from kfaas.runtime.config import RuntimeConfig, forget_runtime_token
from kfaas.runtime.process import WorkerProcess, spawn

_PR_SET_DUMPABLE = 4  # linux/prctl.h


@dataclass
class Prepared:
    config: RuntimeConfig
    listener: socket.socket
    api_sockets: list[socket.socket]
    processes: list[WorkerProcess]
    private_pipe: bool

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)


def protect_token(config: RuntimeConfig) -> None:
    """Keep the runtime token (ADR 011) away from handler code, which runs as the same user.

    Workers get an environment of their own without it (``worker_environment``); it also leaves
    this process's ``os.environ``, so nothing started later inherits it. The process is made
    non-dumpable: its ``/proc/<pid>/environ`` and ``/mem`` then belong to root, so a handler cannot
    read the token from its parent (the kernel resets this for the workers, which are exec'd).
    Root in the same container, or ptrace with CAP_SYS_PTRACE, still can: pods run as non-root
    without capabilities.
    """
    forget_runtime_token()
    if config.runtime_token is None:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def prepare(config: RuntimeConfig) -> Prepared:
    protect_token(config)
    if config.ready_fd is not None:
        os.set_inheritable(config.ready_fd, False)  # workers must not hold the readiness pipe
    listener = _listen(config.host, config.port)
    api_sockets: list[socket.socket] = []
    processes: list[WorkerProcess] = []
    private_pipe = config.is_python and config.python_channel == "pipe"
    try:
        for index in range(config.per_instance):
            port = config.runtime_api_port + index if config.runtime_api_port else 0
            api_sockets.append(_listen("127.0.0.1", port))
        for api in api_sockets:
            address = f"127.0.0.1:{api.getsockname()[1]}"
            processes.append(spawn(config, address, private_pipe))
    except BaseException:
        for process in processes:
            process.kill()
            process.popen.wait()
            process.close_fds()
        for sock in (listener, *api_sockets):
            sock.close()
        raise
    return Prepared(config, listener, api_sockets, processes, private_pipe)
