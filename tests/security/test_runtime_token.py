"""Only the platform reaches a runtime (issue 8, point 9; ADR 011).

A runtime started with ``KFAAS_RUNTIME_TOKEN`` refuses ``/invoke`` without that token, and the
handler code it runs cannot find the token: not in its environment, not in its own
``/proc/self/environ``, not in its parent's. Under ``kfaas dev`` an instance called directly on its
port is refused, while everything through the gateway still works.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devserver import DevServer, dev_server, make_lambda_client
from runtime.instances import Starter, start, write_files

from kfaas import runtimetoken

__all__ = ["start"]

TOKEN = runtimetoken.derive("platform-key", "tests", "fn")
ECHO = {"app.py": "def handler(event, context):\n    return {'id': context.aws_request_id}\n"}

# The handler looks for the token wherever code running as the same user could.
SNOOP = {
    "app.py": """
        import os

        def _read(path):
            try:
                with open(path, "rb") as file:
                    return file.read().decode("latin-1")
            except OSError as exc:
                return f"unreadable: {exc.strerror}"

        def handler(event, context):
            token = event["token"]
            places = {
                "environ": "\\n".join(f"{k}={v}" for k, v in os.environ.items()),
                "self": _read("/proc/self/environ"),
                "parent": _read(f"/proc/{os.getppid()}/environ"),
            }
            return {
                "named": sorted(k for k in os.environ if "TOKEN" in k),
                "found": sorted(name for name, text in places.items() if token in text),
                "parent": places["parent"][:40],
            }
    """
}


async def test_invoke_needs_the_runtime_token(start: Starter) -> None:
    instance = await start(ECHO, KFAAS_RUNTIME_TOKEN=TOKEN)
    for headers in ({}, {runtimetoken.HEADER: "0" * 64}, {runtimetoken.HEADER: TOKEN[:-1]}):
        reply = await instance.invoke({}, headers=headers)
        assert reply.status == 403, headers
        assert reply.json()["__type"] == "AccessDeniedException"
        assert reply.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    # A forged request id gets nowhere without the token either.
    forged = await instance.invoke({}, headers={"Lambda-Runtime-Aws-Request-Id": "forged"})
    assert forged.status == 403
    good = await instance.invoke({}, headers={runtimetoken.HEADER: TOKEN})
    assert good.status == 200 and good.json()["id"]
    # Probes and scrapes stay open: they carry nothing a caller could abuse.
    assert (await instance.get("/healthz")).status == 200
    assert (await instance.get("/metrics")).status == 200
    refusals = [e for e in instance.events() if e.get("event") == "invoke_refused"]
    assert 1 <= len(refusals) <= 3  # logged at 1, 2, 4…: a flood cannot flood the log


async def test_refusals_are_logged_sparingly(start: Starter) -> None:
    instance = await start(ECHO, KFAAS_RUNTIME_TOKEN=TOKEN)
    replies = await asyncio.gather(*(instance.invoke({}) for _ in range(100)))
    assert {reply.status for reply in replies} == {403}
    refusals = [e for e in instance.events() if e.get("event") == "invoke_refused"]
    assert [e["count"] for e in refusals] == [1, 2, 4, 8, 16, 32, 64]


async def test_an_instance_without_a_token_serves_anyone(start: Starter) -> None:
    # What `kfaas runtime` started by hand does (ADR 002); the operator and kfaas dev set one.
    instance = await start(ECHO)
    assert (await instance.invoke({})).status == 200


async def test_the_handler_cannot_find_the_token(start: Starter) -> None:
    instance = await start(SNOOP, KFAAS_RUNTIME_TOKEN=TOKEN, KFAAS_PER_INSTANCE="2")
    reply = await instance.invoke({"token": TOKEN}, headers={runtimetoken.HEADER: TOKEN})
    assert reply.status == 200, reply.body
    seen = reply.json()
    assert seen["named"] == []
    assert "environ" not in seen["found"] and "self" not in seen["found"]
    if os.geteuid() != 0:  # as a non-root user (a pod), the parent's environ is closed
        assert seen["found"] == [] and seen["parent"].startswith("unreadable"), seen


SYSTEM_PYTHON = "/usr/bin/python3"


def _as_nobody_available() -> bool:
    same_python = os.path.exists(SYSTEM_PYTHON) and subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, check=False,
    ).stdout.strip() == str(tuple(sys.version_info[:2]))  # fmt: skip
    return os.geteuid() == 0 and shutil.which("setpriv") is not None and same_python


_NOT_SOURCE = shutil.ignore_patterns("__pycache__", "*.pyc")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="kfaas-token-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not _as_nobody_available(), reason="needs root, setpriv and a system python")
def test_a_handler_running_as_another_user_cannot_read_its_parent(shared_dir: Path) -> None:
    """As in a pod (uid 65532, no capabilities): the runtime server is not dumpable."""
    # The checkout and its .venv may sit in a folder only root can enter (CI clones into a
    # mktemp -d): give the other user its own copy of the runtime, which needs the stdlib only.
    import kfaas.runtime

    package = shared_dir / "kfaas"
    shutil.copytree(Path(kfaas.__file__).parent, package, ignore=_NOT_SOURCE)
    shutil.copytree(Path(kfaas.runtime.__file__).parent, package / "runtime", ignore=_NOT_SOURCE)
    for path in (package, *package.rglob("*")):
        path.chmod(0o755)
    task_root = shared_dir / "task"
    task_root.mkdir()
    write_files(task_root, SNOOP)
    for path in (task_root, *task_root.iterdir()):
        path.chmod(0o755)
    read_fd, write_fd = os.pipe()
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(shared_dir),
        "LAMBDA_TASK_ROOT": str(task_root),
        "_HANDLER": "app.handler",
        "KFAAS_NAMESPACE": "tests",
        "AWS_LAMBDA_FUNCTION_NAME": "fn",
        "KFAAS_RUNTIME_HOST": "127.0.0.1",
        "KFAAS_RUNTIME_PORT": "0",
        "KFAAS_RUNTIME_API_PORT": "0",
        "KFAAS_READY_FD": str(write_fd),
        "KFAAS_RUNTIME_TOKEN": TOKEN,
        "KFAAS_UVLOOP": "0",
    }
    stdout = shared_dir / "stdout.log"
    with stdout.open("wb") as out:
        process = subprocess.Popen(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             SYSTEM_PYTHON, "-m", "kfaas.runtime"],
            env=env, stdout=out, stderr=subprocess.STDOUT, pass_fds=(write_fd,), cwd=shared_dir,
        )  # fmt: skip
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as ready:
            line = ready.readline()  # the runtime writes it, or exits and closes the pipe
        assert line, stdout.read_text()
        port = json.loads(line)["port"]
        url = f"http://127.0.0.1:{port}/invoke"
        body = json.dumps({"token": TOKEN}).encode()
        status, seen = _post(url, body, {runtimetoken.HEADER: TOKEN})
        assert status == 200, (seen, stdout.read_text())
        assert seen["named"] == [] and seen["found"] == [], seen
        assert seen["parent"].startswith("unreadable"), seen
        assert _post(url, body, {})[0] == 403
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- kfaas dev --------------------------------------------------------------------------------

DEV_FUNCTION = """
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: snoop}
spec:
  runtime: python3.11
  handler: app.handler
  code: {path: ./src}
"""


@pytest.fixture(scope="module")
def snoop_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    root = tmp_path_factory.mktemp("token-dev")
    (root / "fn.yaml").write_text(DEV_FUNCTION)
    write_files(root / "src", SNOOP)
    with dev_server([root], env={"KFAAS_LOG_LEVEL": "info"}) as server:
        yield server


def _instance_ports(server: DevServer) -> list[int]:
    found = re.findall(r"instance \w+ of default/snoop ready on port (\d+)", server.output())
    return [int(port) for port in found]


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_kfaas_dev_instances_refuse_direct_calls(snoop_dev: DevServer) -> None:
    client = make_lambda_client(snoop_dev.url)
    # Through the gateway it works (the gateway presents the token)…
    response = client.invoke(FunctionName="snoop", Payload=json.dumps({"token": "KFAAS_RUNTIME"}))
    seen = json.loads(response["Payload"].read())
    assert response["StatusCode"] == 200 and "FunctionError" not in response, seen
    # …and the handler never saw a token variable.
    assert seen["named"] == [] and seen["found"] == [], seen
    ports = _instance_ports(snoop_dev)
    assert ports, snoop_dev.output()
    # Called directly on its port, with or without a guessed token, the instance refuses.
    for headers in ({}, {runtimetoken.HEADER: "0" * 64}):
        status, body = _post(
            f"http://127.0.0.1:{ports[-1]}/invoke",
            b'{"token": "x"}',
            {"Lambda-Runtime-Aws-Request-Id": "forged", **headers},
        )
        assert status == 403 and body["__type"] == "AccessDeniedException", body
    # The gateway still serves after the refused calls.
    again = client.invoke(FunctionName="snoop", Payload=json.dumps({"token": "x"}))
    assert again["StatusCode"] == 200


# -- the cluster gateway ----------------------------------------------------------------------


def test_the_cluster_gateway_presents_each_function_its_own_token() -> None:
    """KubernetesBackend derives the token from the platform key; nothing per function is kept."""
    from kfaas.backends import Endpoint
    from kfaas.gateway.kube_clients import KubernetesBackend
    from kfaas.gateway.registry import FunctionRegistry
    from kfaas.manifests import Function, parse_manifest

    registry = FunctionRegistry()
    for namespace, name in (("media", "thumb"), ("billing", "thumb")):
        manifest = parse_manifest(
            {
                "apiVersion": "kfaas.dev/v1alpha1",
                "kind": "Function",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"runtime": "python3.12", "handler": "a.b", "code": {"image": "x:1"}},
            }
        )
        assert isinstance(manifest, Function)
        registry.put(manifest)
    backend = KubernetesBackend(
        None,  # type: ignore[arg-type]  # _publish reads only what the watches stored
        registry,
        platform_namespace="platform",
        replica="r",
        runtime_token_key="platform-key",
    )
    for index, namespace in enumerate(("media", "billing")):
        backend.slices.objects[f"{namespace}/thumb-fn-abc"] = {
            "metadata": {"labels": {"kfaas.dev/function": "thumb"}},
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [f"10.0.0.{index}"], "conditions": {"ready": True}}],
        }
    published: dict[str, list[Endpoint]] = {}
    backend.subscribe(lambda key, endpoints: published.__setitem__(key, endpoints))
    backend._publish("media/thumb")
    backend._publish("billing/thumb")
    tokens = {key: [e.token for e in endpoints] for key, endpoints in published.items()}
    assert tokens == {
        "media/thumb": [runtimetoken.derive("platform-key", "media", "thumb")],
        "billing/thumb": [runtimetoken.derive("platform-key", "billing", "thumb")],
    }
    assert "platform-key" not in repr(published) and tokens["media/thumb"][0] not in repr(published)
