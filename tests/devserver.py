"""Runs ``kfaas dev`` as a real subprocess for end-to-end tests and benchmarks.

Shared by tests and bench so both measure the command users run. The server's output is kept in a
file and printed on failure, so a broken test shows what the platform said.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from waiting import NeverHappened, eventually

SERVING = re.compile(rb"kfaas dev: serving on (http://[\d.]+:\d+)")
KFAAS = str(Path(sys.executable).with_name("kfaas"))


class DevServer:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def dev_server(
    paths: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    args: Sequence[str] = (),
) -> Iterator[DevServer]:
    """Start ``kfaas dev PATHS --port 0 *ARGS``, wait until /healthz answers, stop it afterwards.

    Each server gets a fresh state folder, removed afterwards, unless the caller names one
    (``--state`` or KFAAS_DEV_STATE): tests run in parallel and must not share one.
    """
    log = Path(tempfile.mkstemp(prefix="kfaas-dev-", suffix=".log")[1])
    own_state: str | None = None
    if "--state" not in args and "KFAAS_DEV_STATE" not in (env or {}):
        own_state = tempfile.mkdtemp(prefix="kfaas-dev-state-")
        args = [*args, "--state", own_state]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [KFAAS, "dev", *map(str, paths), "--port", "0", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=tempfile.gettempdir(),
        )
    try:
        url = _wait_serving(process, log, timeout)
        yield DevServer(process, url, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if own_state is not None:
            shutil.rmtree(own_state, ignore_errors=True)


def _wait_serving(process: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    def serving() -> str | None:
        match = SERVING.search(log.read_bytes())
        if match:
            url = match.group(1).decode()
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return url
        if process.poll() is not None:
            raise RuntimeError(f"kfaas dev exited with {process.returncode}:\n{log.read_text()}")
        return None

    try:
        return eventually(serving, within=timeout, what="kfaas dev serving", interval=0.05)
    except NeverHappened as late:
        raise RuntimeError(f"{late}:\n{log.read_text()}") from None


def make_lambda_client(url: str) -> Any:
    """boto3's Lambda client as a user points it at kfaas: dummy credentials, no retries."""
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 0}, read_timeout=120),
    )
