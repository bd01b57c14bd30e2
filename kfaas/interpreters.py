"""The interpreter each runtime runs on in `kfaas dev`, found on this machine or refused.

`kfaas dev` runs a function of its own Python's runtime in its own fork server, as before. A
function of another Python runtime (`python3.13` under a 3.11 `kfaas dev`) runs on `python3.13`
found on PATH, which must really be Python 3.13 (a pyenv shim of an unselected version is not)
and must import the kfaas runtime: the runtime needs only the standard library, so the package is
exposed to that interpreter through a directory of links to its sources (``kfaas_path``), never
the dev interpreter's site-packages, whose compiled modules belong to another Python. A runtime
no interpreter here can run is refused with a message saying what is missing (ADR 016).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kfaas import config, runtimes

PROBE_TIMEOUT_SECONDS = 30.0
# What a runtime instance imports of kfaas: if these import, the runtime runs.
PROBE = "import kfaas.runtime.config, kfaas.runtime.startup, kfaas.runtime.server, kfaas.forkserver"


@dataclass(frozen=True)
class Interpreter:
    """Where instances of a runtime run: ``python`` with ``python_path`` prepended to PYTHONPATH
    (None: the dev process's own interpreter, whose environment already imports kfaas)."""

    runtime: str
    python: str
    python_path: str | None = None

    @property
    def own(self) -> bool:
        return self.python_path is None


class RuntimeUnavailable(Exception):
    """Functions whose runtime no interpreter here can run; one line per function."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


Run = Callable[..., "subprocess.CompletedProcess[str]"]


class Interpreters:
    """Finds, checks once and remembers the interpreter of each runtime."""

    def __init__(
        self,
        state_dir: Path,
        *,
        own: tuple[int, int] = (sys.version_info.major, sys.version_info.minor),
        which: Callable[[str], str | None] = shutil.which,
        run: Run = subprocess.run,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.state_dir = state_dir
        # The environment probes run in (less PYTHONPATH): this process's, copied once.
        self.environment = dict(config.host_environment() if environment is None else environment)
        self.own = own
        self._which = which
        self._run = run
        self._found: dict[str, Interpreter | str] = {}

    def resolve(self, runtime: str) -> Interpreter | str:
        """The runtime's interpreter, or why there is none (a message for the user)."""
        if runtime not in self._found:
            self._found[runtime] = self._resolve(runtime)
        return self._found[runtime]

    def require(self, runtime: str) -> Interpreter:
        found = self.resolve(runtime)
        if isinstance(found, str):
            raise RuntimeError(found)
        return found

    def _resolve(self, runtime: str) -> Interpreter | str:
        version = runtimes.python_version(runtime)
        if version is None or version == self.own:
            # `provided` runs its bootstrap under the kfaas runtime server, on this interpreter.
            return Interpreter(runtime, sys.executable)
        command = runtimes.runtime_of(version)
        python = self._which(command)
        if python is None:
            return (
                f"runtime {runtime} needs Python {version[0]}.{version[1]}: no {command} on "
                f"PATH (kfaas dev runs on Python {self.own[0]}.{self.own[1]} and never runs a "
                f"function on another Python than its runtime's); install Python "
                f"{version[0]}.{version[1]} or put its {command} on PATH"
            )
        reported = self._probe(python, "import sys; print('%d.%d' % sys.version_info[:2])", None)
        wanted = f"{version[0]}.{version[1]}"
        if reported.returncode != 0 or reported.stdout.strip() != wanted:
            said = _last_line(reported.stderr) or reported.stdout.strip() or "nothing"
            return (
                f"runtime {runtime} needs Python {wanted}: {python} on PATH does not run as "
                f"Python {wanted} (it said: {said}); put a working {command} on PATH"
            )
        path = str(kfaas_path(self.state_dir / "python-path"))
        imported = self._probe(python, PROBE, path)
        if imported.returncode != 0:
            return (
                f"runtime {runtime}: {python} cannot import the kfaas runtime "
                f"({_last_line(imported.stderr) or 'no error output'})"
            )
        return Interpreter(runtime, python, path)

    def _probe(
        self, python: str, code: str, python_path: str | None
    ) -> subprocess.CompletedProcess[str]:
        env = {key: value for key, value in self.environment.items() if key != "PYTHONPATH"}
        if python_path is not None:
            env["PYTHONPATH"] = python_path
        # Bytecode of the probe goes to the state directory, not next to the sources.
        env["PYTHONPYCACHEPREFIX"] = str(self.state_dir / "pycache" / "probe")
        try:
            return self._run(
                [python, "-P", "-c", code],  # -P: the working directory shadows nothing
                env=env,
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return subprocess.CompletedProcess([python], 1, "", str(exc))


def kfaas_path(root: Path) -> Path:
    """A directory holding only a ``kfaas`` package of links to this installation's sources.

    Put on another interpreter's PYTHONPATH it imports kfaas (and ``kfaas.runtime``, which an
    editable install maps from another folder) and nothing else of this environment.
    """
    package = root / "kfaas"
    if package.is_dir():
        return root
    own = importlib.util.find_spec("kfaas")
    runtime = importlib.util.find_spec("kfaas.runtime")
    if own is None or not own.submodule_search_locations or runtime is None:
        raise RuntimeError("the kfaas package cannot be located")
    if not runtime.submodule_search_locations:
        raise RuntimeError("the kfaas runtime package cannot be located")
    building = root.with_name(root.name + ".tmp")
    shutil.rmtree(building, ignore_errors=True)
    (building / "kfaas").mkdir(parents=True)
    source = Path(next(iter(own.submodule_search_locations)))
    for entry in source.iterdir():
        if entry.name != "__pycache__":
            (building / "kfaas" / entry.name).symlink_to(entry.resolve())
    runtime_dir = Path(next(iter(runtime.submodule_search_locations))).resolve()
    link = building / "kfaas" / "runtime"
    if not link.exists():
        link.symlink_to(runtime_dir)
    building.rename(root)
    return root


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
