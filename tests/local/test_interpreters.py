"""How `kfaas dev` finds each runtime's interpreter (ADR 016), with PATH and processes faked.

`kfaas dev` itself, with real interpreters on its PATH, is in tests/e2e/test_dev_runtimes.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from kfaas.interpreters import Interpreter, Interpreters, kfaas_path


class Machine:
    """A PATH (command → path) and what each interpreter says when run."""

    def __init__(self, path: dict[str, str], says: dict[str, tuple[int, str, str]]) -> None:
        self.path = path
        self.says = says
        self.runs: list[list[str]] = []

    def which(self, command: str) -> str | None:
        return self.path.get(command)

    def run(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.runs.append(argv)
        code, out, err = self.says[argv[0]]
        if "import kfaas" in argv[-1]:
            code, out, err = self.says.get(argv[0] + " import", (0, "", ""))
        return subprocess.CompletedProcess(argv, code, out, err)


def interpreters(tmp_path: Path, machine: Machine, own: tuple[int, int] = (3, 11)) -> Interpreters:
    return Interpreters(tmp_path, own=own, which=machine.which, run=machine.run)


def test_the_own_runtime_and_provided_run_on_this_interpreter(tmp_path: Path) -> None:
    machine = Machine({}, {})
    found = interpreters(tmp_path, machine)
    assert found.resolve("python3.11") == Interpreter("python3.11", sys.executable)
    assert found.resolve("provided") == Interpreter("provided", sys.executable)
    assert found.require("python3.11").own and machine.runs == []


def test_another_python_is_found_checked_and_remembered(tmp_path: Path) -> None:
    machine = Machine(
        {"python3.13": "/opt/py/python3.13"}, {"/opt/py/python3.13": (0, "3.13\n", "")}
    )
    found = interpreters(tmp_path, machine)
    first = found.resolve("python3.13")
    assert isinstance(first, Interpreter) and not first.own
    assert first.python == "/opt/py/python3.13"
    assert found.resolve("python3.13") is first
    assert len(machine.runs) == 2  # its version, then the import of the runtime; once
    assert all(argv[1] == "-P" for argv in machine.runs)  # the working directory shadows nothing
    assert first.python_path == str(tmp_path / "python-path")
    package = Path(first.python_path) / "kfaas"
    assert (package / "runtime" / "server.py").is_file() and (package / "runtimes.py").is_file()
    assert not (package / "__pycache__").exists()


def test_what_is_missing_is_said(tmp_path: Path) -> None:
    nothing = interpreters(tmp_path, Machine({}, {}))
    assert nothing.resolve("python3.12") == (
        "runtime python3.12 needs Python 3.12: no python3.12 on PATH (kfaas dev runs on Python "
        "3.11 and never runs a function on another Python than its runtime's); install Python "
        "3.12 or put its python3.12 on PATH"
    )
    impostor = Machine({"python3.13": "/bin/python3.13"}, {"/bin/python3.13": (0, "3.11\n", "")})
    said = interpreters(tmp_path, impostor).resolve("python3.13")
    assert said == (
        "runtime python3.13 needs Python 3.13: /bin/python3.13 on PATH does not run as Python "
        "3.13 (it said: 3.11); put a working python3.13 on PATH"
    )
    shim = Machine(
        {"python3.13": "/shims/python3.13"},
        {
            "/shims/python3.13": (
                127,
                "",
                "pyenv: python3.13: command not found\n\nThe `python3.13'",
            )
        },
    )
    assert "(it said: The `python3.13')" in str(interpreters(tmp_path, shim).resolve("python3.13"))
    no_runtime = Machine(
        {"python3.13": "/p/python3.13"},
        {
            "/p/python3.13": (0, "3.13\n", ""),
            "/p/python3.13 import": (1, "", "Traceback...\nSyntaxError: bad\n"),
        },
    )
    assert interpreters(tmp_path, no_runtime).resolve("python3.13") == (
        "runtime python3.13: /p/python3.13 cannot import the kfaas runtime (SyntaxError: bad)"
    )


def test_the_package_directory_is_built_once(tmp_path: Path) -> None:
    root = kfaas_path(tmp_path / "pp")
    marker = root / "kfaas" / "runtimes.py"
    before = marker.lstat().st_mtime_ns
    assert kfaas_path(tmp_path / "pp") == root
    assert marker.lstat().st_mtime_ns == before
    assert not (tmp_path / "pp.tmp").exists()
