"""A private Redis: Debian's redis-server on a free port, persisted append-only.

It listens on loopback, or on another address of this machine when asked: `PodRedis` binds the
real node's bridge address, where pods reach it (the chart's platform Redis in the node tests).

Append-only persistence with RDB snapshots turned off means that data found after a restart can
only have come back through the AOF, which is what kfaas's async queue relies on.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Mapping
from pathlib import Path

from services.base import LOOPBACK, MissingDependency, ServiceDir, ServiceError, progress
from services.processes import launch, running_pid, stop, wait_until

EXECUTABLE = "redis-server"


def _pong(host: str, port: int) -> bool:
    """PING over a raw socket, so readiness needs no client library and no password."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    name = "redis"
    host = LOOPBACK

    def __init__(self, state_dir: Path) -> None:
        self.dir = ServiceDir(state_dir, self.name)
        self.pid_file = self.dir.pid_file(EXECUTABLE)
        self.log_path = self.dir.log_file(EXECUTABLE)

    @staticmethod
    def build() -> None:
        if shutil.which(EXECUTABLE) is None:
            raise MissingDependency("redis-server is not installed (scripts/setup installs it)")

    def running(self) -> bool:
        return running_pid(self.pid_file) is not None

    @property
    def port(self) -> int:
        return self.dir.saved_ports()["port"]

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def environment(self) -> Mapping[str, str]:
        return {"REDIS_URL": self.url}

    def up(self) -> Mapping[str, str]:
        if self.running():
            return self.environment()
        self.build()
        port = self.dir.ports(["port"])["port"]
        progress(f"starting redis on {self.host}:{port}")
        pid = launch(
            [
                EXECUTABLE,
                "--bind",
                self.host,
                "--port",
                str(port),
                "--dir",
                str(self.dir.data),
                "--appendonly",
                "yes",
                # No RDB snapshots: whatever survives a restart came back through the AOF.
                "--save",
                "",
                "--daemonize",
                "no",
                # Protected mode refuses every address but loopback when there is no password.
                "--protected-mode",
                "yes" if self.host == LOOPBACK else "no",
                "--logfile",
                "",
            ],
            pid_file=self.pid_file,
            log_file=self.log_path,
        )
        wait_until(
            lambda: _pong(self.host, port),
            what="redis",
            timeout=20,
            pid=pid,
            log_file=self.log_path,
        )
        return self.environment()

    def down(self) -> None:
        # SIGTERM makes redis fsync the AOF before it exits.
        if stop(self.pid_file):
            progress("stopped redis")

    def restart(self) -> None:
        if not self.running():
            raise ServiceError("redis is not running")
        self.down()
        self.up()

    def wipe(self) -> None:
        self.down()
        self.dir.wipe()


class PodRedis(RedisServer):
    """A Redis that pods on the real node reach: bound on its bridge address (nothing else)."""

    name = "pod-redis"

    def __init__(self, state_dir: Path, host: str) -> None:
        super().__init__(state_dir)
        self.host = host

    def environment(self) -> Mapping[str, str]:
        return {"KFAAS_POD_REDIS_URL": self.url}
