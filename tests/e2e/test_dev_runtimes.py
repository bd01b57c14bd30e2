"""`kfaas dev` runs each Python runtime on that Python, or refuses it (ADR 016).

The machine's interpreters are put on the dev server's PATH one by one, so each test decides what
`kfaas dev` can find: nothing, an impostor (`python3.13` that is really 3.11), a Python that
cannot import the kfaas runtime, or a real Python 3.13 (pyenv's, when this machine has one).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from devserver import KFAAS, DevServer, dev_server
from waiting import eventually

FUNCTION = """
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: NAME}
spec:
  runtime: RUNTIME
  handler: app.handler
  code: {path: ./src}
---
"""

CODE = """
import os, sys
def handler(event, context):
    return {"env": os.environ["AWS_EXECUTION_ENV"], "version": list(sys.version_info[:2])}
"""

OWN = f"python{sys.version_info.major}.{sys.version_info.minor}"


def project(folder: Path, **functions: str) -> Path:
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "app.py").write_text(CODE)
    text = "".join(
        FUNCTION.replace("NAME", name).replace("RUNTIME", runtime)
        for name, runtime in functions.items()
    )
    (folder / "functions.yaml").write_text(text)
    return folder


def run_dev(folder: Path, path: str) -> subprocess.CompletedProcess[str]:
    """`kfaas dev` that is expected to stop at once (its start refused)."""
    return subprocess.run(
        [KFAAS, "dev", str(folder), "--port", "0"],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
    )


def a_bin(folder: Path, **scripts: str) -> str:
    folder.mkdir(parents=True)
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return str(folder)


def invoke(dev: DevServer, name: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"{dev.url}/2015-03-31/functions/{name}/invocations", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        return dict(json.loads(reply.read()))


def test_a_runtime_with_no_interpreter_is_refused_naming_what_is_missing(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", mine=OWN, newer="python3.13", older="python3.12")
    # python3.13 on PATH is really this Python; python3.12 is nowhere.
    impostor = a_bin(tmp_path / "bin", **{"python3.13": f'#!/bin/sh\nexec {sys.executable} "$@"\n'})
    done = run_dev(folder, impostor)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "kfaas dev: runtime not available here"
    assert any(
        line.startswith("Function default/older: runtime python3.12 needs Python 3.12: no "
                        "python3.12 on PATH") for line in lines
    ), done.stderr  # fmt: skip
    assert any(
        line.startswith("Function default/newer: runtime python3.13 needs Python 3.13: ")
        and "does not run as Python 3.13" in line
        for line in lines
    ), done.stderr
    assert "default/mine" not in done.stderr  # its own runtime is fine
    assert "serving on" not in done.stdout


def test_a_pyenv_shim_of_an_unselected_version_is_not_an_interpreter(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", newer="python3.13")
    shim = a_bin(
        tmp_path / "bin",
        **{"python3.13": "#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n"},
    )
    done = run_dev(folder, shim)
    assert done.returncode == 2
    assert "it said: pyenv: python3.13: command not found" in done.stderr, done.stderr


def real_python(version: str) -> str | None:
    """A working `pythonX.Y` on this machine (on PATH or pyenv's), or None."""
    command = f"python{version}"
    candidates = [shutil.which(command) or ""]
    candidates += sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/{command}"))
    )
    for candidate in filter(None, candidates):
        try:
            said = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
        except OSError:
            continue
        if said.returncode == 0 and said.stdout.strip() == version:
            return candidate
    return None


def test_each_runtime_runs_on_its_own_python(tmp_path: Path) -> None:
    other = "3.13" if OWN != "python3.13" else "3.12"
    python = real_python(other)
    if python is None:
        pytest.skip(f"no Python {other} on this machine (PATH or ~/.pyenv/versions)")
    folder = project(tmp_path / "p", mine=OWN, other=f"python{other}")
    path = f"{os.path.dirname(python)}{os.pathsep}/usr/bin{os.pathsep}/bin"
    with dev_server([folder], env={"PATH": path}) as dev:
        assert f"runs on: {python}" in dev.output()  # the summary says which Python, once
        assert dev.output().count("runs on:") == 1
        mine = invoke(dev, "mine")
        theirs = invoke(dev, "other")
        theirs_again = invoke(dev, "other")  # a warm instance answers the same
    assert mine == {"env": f"AWS_Lambda_{OWN}", "version": [*sys.version_info[:2]]}
    major, minor = (int(part) for part in other.split("."))
    assert theirs == {"env": f"AWS_Lambda_python{other}", "version": [major, minor]}
    assert theirs_again == theirs
    # The other Python's bytecode went to the dev server's state directory, not the sources.
    assert not list(
        Path(__file__).parents[2].joinpath("runtime").glob(f"__pycache__/*{major}{minor}*")
    )


def test_an_interpreter_that_cannot_import_the_runtime_is_refused(tmp_path: Path) -> None:
    other = "3.13" if OWN != "python3.13" else "3.12"
    python = real_python(other)
    if python is None:
        pytest.skip(f"no Python {other} on this machine (PATH or ~/.pyenv/versions)")
    folder = project(tmp_path / "p", other=f"python{other}")
    # A wrapper that hides every module path: the kfaas runtime cannot be imported.
    broken = a_bin(
        tmp_path / "bin",
        **{f"python{other}": f'#!/bin/sh\nPYTHONPATH=/nonexistent exec {python} "$@"\n'},
    )
    done = run_dev(folder, broken)
    assert done.returncode == 2
    assert f"python{other}: {broken}/python{other} cannot import the kfaas runtime" in done.stderr
    assert "No module named 'kfaas'" in done.stderr, done.stderr


def test_a_reload_to_a_runtime_with_no_interpreter_is_refused(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", fn=OWN)
    other = "python3.12" if OWN != "python3.12" else "python3.13"
    shim = a_bin(tmp_path / "bin", **{other: "#!/bin/sh\necho 'not here' >&2\nexit 127\n"})
    with dev_server([folder], env={"PATH": f"{shim}{os.pathsep}/usr/bin{os.pathsep}/bin"}) as dev:
        before = invoke(dev, "fn")
        manifest = folder / "functions.yaml"
        manifest.write_text(manifest.read_text().replace(OWN, other))
        refusal = f"Function default/fn: runtime {other} needs Python"
        eventually(lambda: refusal in dev.output(), within=30, what=refusal)
        assert "manifests not reloaded" in dev.output()
        assert invoke(dev, "fn") == before  # still served as it was
