"""What every local service has in common: where its state lives, its ports, its errors.

A service owns one folder under the state directory (`~/.cache/kfaas/services/<name>/` unless
`KFAAS_SERVICES_DIR` says otherwise) holding its data, logs, pid files and `ports.json`. Ports are
chosen free on loopback the first time and reused afterwards while they stay free, so a client that
survives a restart finds the service where it was.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service failed to build, start or stop; the message says why and where the log is."""


class MissingDependency(ServiceError):
    """A tool the service needs is not installed here (the only reason a fixture may skip)."""


def cache_root() -> Path:
    """Where version-keyed builds live: outside the repository, shared by every clone."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kfaas"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing), waiting for it: the one lock helper
    of the services. flock, so a process that dies releases it; it is held per open file, so
    threads of one process exclude each other too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_lock(name: str) -> AbstractContextManager[None]:
    """One build of `name` at a time per machine: a developer's run and CI may start together.

    Every cached build (Kubernetes, the node's programs, Kafka, kube-router, Prometheus, Helm,
    the images) checks its cache, takes this lock, checks again, then builds into a partial folder
    it renames when done.
    """
    return file_lock(cache_root() / f"{name}.lock")


def default_state_dir() -> Path:
    override = os.environ.get("KFAAS_SERVICES_DIR")
    return Path(override) if override else cache_root() / "services"


def progress(message: str) -> None:
    """Progress goes to stderr so `eval "$(scripts/services up ...)"` only sees the exports."""
    print(f"services: {message}", file=sys.stderr, flush=True)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers do: connections of a stopped server in TIME_WAIT must not make its
        # port look taken, or a restart would move the service to another port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port(taken: Iterable[int] = ()) -> int:
    """A port the kernel just handed out on loopback and that this service does not use yet."""
    taken = set(taken)
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((LOOPBACK, 0))
            port: int = probe.getsockname()[1]
        if port not in taken:
            return port


def port_accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    """The end of a log, for error messages that must explain a failure on their own."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class ServiceDir:
    """The folder of one service in the state directory and the small facts saved in it."""

    def __init__(self, state_dir: Path, name: str) -> None:
        self.root = state_dir / name
        self.data = self.root / "data"
        self.logs = self.root / "logs"
        self.run = self.root / "run"

    def create(self) -> None:
        for folder in (self.data, self.logs, self.run):
            folder.mkdir(parents=True, exist_ok=True)

    def pid_file(self, process: str) -> Path:
        return self.run / f"{process}.pid"

    def log_file(self, process: str) -> Path:
        return self.logs / f"{process}.log"

    def ports(self, names: Iterable[str]) -> dict[str, int]:
        """Saved ports that are still free, new free ones for the rest; saved for next time.

        Call only while the service is stopped: its own ports would look taken otherwise.
        """
        saved_file = self.root / "ports.json"
        saved: dict[str, int] = json.loads(saved_file.read_text()) if saved_file.exists() else {}
        chosen: dict[str, int] = {}
        for name in names:
            port = saved.get(name)
            if port is None or port in chosen.values() or not port_is_free(port):
                port = free_port(chosen.values())
            chosen[name] = port
        self.create()
        saved_file.write_text(json.dumps(chosen, indent=2) + "\n")
        return chosen

    def saved_ports(self) -> dict[str, int]:
        saved_file = self.root / "ports.json"
        return json.loads(saved_file.read_text()) if saved_file.exists() else {}

    def wipe(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class Service(Protocol):
    """What the command line and the fixtures need from Redis, Kafka and the cluster alike."""

    name: str

    def build(self) -> None:
        """Fetch or compile what the service runs, once per machine and version."""

    def up(self) -> Mapping[str, str]:
        """Start (or find running) and wait until ready; returns the environment clients need."""

    def down(self) -> None:
        """Stop every process of the service; its data stays."""

    def running(self) -> bool: ...

    def environment(self) -> Mapping[str, str]: ...

    def wipe(self) -> None:
        """Stop the service and delete its data, ports and logs."""
