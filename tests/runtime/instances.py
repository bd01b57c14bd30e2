"""Real runtime instances for the tests: `python -m kfaas.runtime` subprocesses on free ports.

`start(files, **env)` writes the function's code into a fresh task root, starts an instance with
`KFAAS_READY_FD` (so the test waits on the readiness line, not on polling), and returns an
`Instance` that invokes it over HTTP and reads what it wrote to stdout.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

PYTHON = sys.executable


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def function_error(self) -> bool:
        return self.headers.get("X-Amz-Function-Error") == "Unhandled"


@dataclass
class Instance:
    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    task_root: Path
    session: aiohttp.ClientSession
    closed: bool = field(default=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def invoke(
        self, event: Any = None, raw: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        body = raw if raw is not None else json.dumps(event).encode()
        data = io.BytesIO(body) if len(body) > 1024 * 1024 else body  # aiohttp warns on big bytes
        url = f"{self.url}/invoke"
        async with self.session.post(url, data=data, headers=headers or {}) as resp:
            return Reply(resp.status, dict(resp.headers), await resp.read())

    async def get(self, path: str) -> Reply:
        async with self.session.get(self.url + path) as resp:
            return Reply(resp.status, dict(resp.headers), await resp.read())

    def log(self) -> str:
        return self.stdout.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def stop(self) -> int:
        if not self.closed:
            self.closed = True
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


async def _read_ready_line(fd: int, limit_seconds: float) -> bytes:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    data = bytearray()

    def readable() -> None:
        chunk = os.read(fd, 4096)
        data.extend(chunk)
        if (not chunk or b"\n" in data) and not done.done():
            done.set_result(bytes(data))

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        return await asyncio.wait_for(done, limit_seconds)
    finally:
        loop.remove_reader(fd)


Starter = Callable[..., Awaitable[Instance]]


def _spawn(env: dict[str, str], stdout: Path, ready_fd: int, cwd: Path) -> subprocess.Popen[bytes]:
    with open(stdout, "wb") as out:
        return subprocess.Popen(
            [PYTHON, "-m", "kfaas.runtime"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(ready_fd,),
            cwd=cwd,
        )


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        if name == "bootstrap":
            path.chmod(0o755)


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Starter]:
    instances: list[Instance] = []
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    counter = 0

    async def starter(files: dict[str, str], expect_ready: bool = True, **env: str) -> Instance:
        nonlocal counter
        counter += 1
        root = tmp_path / f"instance{counter}"
        task_root = root / "task"
        task_root.mkdir(parents=True)
        write_files(task_root, files)
        read_fd, write_fd = os.pipe()
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": "app.handler",
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            "KFAAS_NAMESPACE": "tests",
            "KFAAS_RUNTIME_HOST": "127.0.0.1",
            "KFAAS_RUNTIME_PORT": "0",
            "KFAAS_RUNTIME_API_PORT": "0",
            "KFAAS_READY_FD": str(write_fd),
            **env,
        }
        stdout = root / "stdout.log"
        process = _spawn(full_env, stdout, write_fd, root)
        os.close(write_fd)
        try:
            line = await _read_ready_line(read_fd, 30)
        finally:
            os.close(read_fd)
        if not line:
            process.wait(timeout=10)
            raise AssertionError(f"runtime exited before ready: {stdout.read_text()}")
        instance = Instance(process, json.loads(line)["port"], stdout, task_root, session)
        instances.append(instance)
        return instance

    yield starter
    for instance in instances:
        instance.stop()
    await session.close()
