"""The local backend starts another Python's instances on that Python, from a fork server of its
own or as plain processes (ADR 016); skipped where this machine has no second Python."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from kfaas import runtimetoken
from kfaas.backends import Endpoint
from kfaas.local import LocalBackend
from kfaas.manifests import Function, parse_manifest

OTHER = "3.13" if sys.version_info[:2] != (3, 13) else "3.12"
CODE = (
    "import os, sys\n"
    "def handler(e, c):\n"
    "    return [os.environ['AWS_EXECUTION_ENV'], list(sys.version_info[:2])]\n"
)


def other_python() -> str | None:
    command = f"python{OTHER}"
    candidates = [shutil.which(command) or ""]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{OTHER}*/bin/{command}")))
    for candidate in filter(None, candidates):
        said = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if said.returncode == 0 and said.stdout.strip() == OTHER:
            return candidate
    return None


def function(runtime: str) -> Function:
    manifest = parse_manifest(
        {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "other"},
            "spec": {
                "runtime": runtime,
                "handler": "app.handler",
                "code": {"inline": {"app.py": CODE}},
                "concurrency": {"provisioned": 1},
            },
        }
    )
    assert isinstance(manifest, Function)
    return manifest


@pytest.mark.parametrize("fork_server", [True, False])
async def test_instances_of_another_python_run_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork_server: bool
) -> None:
    python = other_python()
    if python is None:
        pytest.skip(f"no Python {OTHER} on this machine (PATH or ~/.pyenv/versions)")
    monkeypatch.setenv("PATH", f"{os.path.dirname(python)}{os.pathsep}{os.environ['PATH']}")
    backend = LocalBackend(state_dir=tmp_path / "state", use_fork_server=fork_server)
    ready: asyncio.Queue[list[Endpoint]] = asyncio.Queue()
    backend.subscribe(lambda key, endpoints: ready.put_nowait(endpoints) if endpoints else None)
    await backend.start()
    try:
        backend.set_function("default/other", function(f"python{OTHER}"))
        (endpoint,) = await asyncio.wait_for(ready.get(), 60)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{endpoint.url}/invoke",
                data=b"{}",
                headers={runtimetoken.HEADER: endpoint.token},
            ) as reply,
        ):
            answer = await reply.json()
    finally:
        await backend.stop()
    major, minor = (int(part) for part in OTHER.split("."))
    assert answer == [f"AWS_Lambda_python{OTHER}", [major, minor]]
