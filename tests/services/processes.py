"""Start, find and stop service processes that are nobody's children.

`scripts/services up` must leave the services running after it exits, and pytest must not hold
`Popen` objects for them (an unwaited child is a ResourceWarning, which fails the suite). So every
process is started through `sh -c 'cmd & echo $!'` in a session of its own: the shell prints the pid
and exits, the service is re-parented, and from then on it is known only by its pid file. On
machines whose init never reaps orphans a stopped service lingers as a zombie; `alive` treats a
zombie as gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from waiting import NeverHappened, eventually

from services.base import ServiceError, tail

_LAUNCH = '"$@" </dev/null >>"$0" 2>&1 & echo $!'


def launch(
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start argv detached, appending its output to log_file; returns and records its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n")
    shell = subprocess.run(
        ["sh", "-c", _LAUNCH, str(log_file), *argv],
        env=dict(env) if env is not None else None,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    pid = int(shell.stdout.strip())
    # The resolved executable is recorded with the pid, so a pid reused by another program after
    # a reboot is never mistaken for the service (argv[0] won't do: redis-server rewrites it, and
    # Debian's redis-server is a link to redis-check-rdb).
    program = shutil.which(argv[0]) or argv[0]
    pid_file.write_text(f"{pid} {os.path.realpath(program)}\n")
    return pid


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name in parentheses may itself hold spaces; the state follows the last ")".
    return stat.rsplit(")", 1)[1].split()[0]


def _executable(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running and not a zombie (which is all that is left of it where init does not reap)."""
    state = _state(pid)
    return state is not None and state not in ("Z", "X")


def running_pid(pid_file: Path) -> int | None:
    """The pid recorded in pid_file if that process still runs the program that was started."""
    try:
        pid_text, program = pid_file.read_text().rstrip("\n").split(" ", 1)
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        return None
    return pid if alive(pid) and _executable(pid) == program else None


def stop(pid_file: Path, *, grace: float = 20.0) -> bool:
    """SIGTERM, then SIGKILL after `grace` seconds; returns whether something was running."""
    pid = running_pid(pid_file)
    pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        try:
            eventually(lambda: not alive(pid), within=wait, what=f"{pid} gone", interval=0.05)
        except NeverHappened:
            continue
        return True
    raise ServiceError(f"{pid_file.stem} (pid {pid}) survived SIGKILL")


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    pid: int,
    log_file: Path,
    interval: float = 0.1,
) -> None:
    """Poll `ready` until it holds; fail at once with the log's tail if the process died."""

    def started() -> bool:
        if ready():
            return True
        # Not checked against the executable: just after launch the pid may still be the shell
        # that is about to exec it.
        if not alive(pid):
            raise ServiceError(
                f"{what} exited during startup; end of {log_file}:\n{tail(log_file)}"
            )
        return False

    try:
        eventually(started, within=timeout, what=f"{what} ready", interval=interval)
    except NeverHappened:
        raise ServiceError(
            f"{what}: not ready after {timeout:.0f} s; end of {log_file}:\n{tail(log_file)}"
        ) from None
