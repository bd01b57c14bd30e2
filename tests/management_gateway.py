"""A gateway serving the management API in-process (tests/management/conftest.py's fixtures).

``management_gateway`` runs ``gateway.app.create_app`` on its own event loop in a thread (boto3 is
synchronous), over kfaas dev's folder stores in the test's ``tmp_path``: a
``DirectoryObjectStore`` and a ``DirectoryCodeStore``. No instance ever starts (the backend is
inert), so tests play the operator themselves:
``gateway.run(gateway.objects.write_status(...))``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import zipfile
from collections.abc import Coroutine, Generator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from aiohttp import web
from botocore.config import Config

from kfaas import object_store
from kfaas.backends import EndpointsListener
from kfaas.code_folder import DirectoryCodeStore
from kfaas.config import Settings
from kfaas.dir_store import DirectoryObjectStore
from kfaas.gateway.app import create_app
from kfaas.gateway.auth import Auth, Authorizer, Credential, Principal
from kfaas.gateway.auth_rules import StaticCredentials
from kfaas.gateway.registry import FunctionRegistry

T = TypeVar("T")
START_SECONDS = 10


class NoInstances:
    """A backend that never starts anything: the management API needs no instance."""

    def subscribe(self, listener: EndpointsListener) -> None:
        pass

    def demand(self, function_key: str, concurrency: int) -> None:
        pass


@dataclass
class ManagementGateway:
    url: str
    client: Any  # boto3's Lambda client
    objects: DirectoryObjectStore
    code_store: DirectoryCodeStore
    loop: asyncio.AbstractEventLoop
    app: web.Application

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the gateway's loop (the stores belong to it) and wait."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(START_SECONDS)


def serve_in_thread(
    app: web.Application,
) -> Generator[tuple[str, asyncio.AbstractEventLoop], None, None]:
    """Serve ``app`` on 127.0.0.1 from a thread with its own loop until the generator closes."""
    loop = asyncio.new_event_loop()
    started: Future[str] = Future()
    stop = asyncio.Event()

    async def main() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            started.set_result(f"http://{host}:{port}")
            await stop.wait()
        finally:
            await runner.cleanup()

    def thread_main() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported to the test instead of a thread warning
            if not started.done():
                started.set_exception(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=thread_main, name="management-gateway", daemon=True)
    thread.start()
    try:
        yield started.result(START_SECONDS), loop
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(START_SECONDS)


@contextlib.contextmanager
def management_gateway_on(
    folder: Path,
    *,
    authentication: Auth | None = None,
    access_key: tuple[str, str] = ("test", "test"),
    location_key: str | None = None,
) -> Iterator[ManagementGateway]:
    """A gateway over folder stores in ``folder``, and boto3 on it signing with ``access_key``."""
    objects = DirectoryObjectStore.open(folder / "state")
    code_store = DirectoryCodeStore(folder / "state" / "code")
    app = create_app(
        FunctionRegistry(default_namespace="default", region="us-east-1"),
        NoInstances(),
        Settings(),
        objects=objects,
        code_store=code_store,
        authentication=authentication,
        location_key=location_key,
    )
    served = serve_in_thread(app)
    try:
        url, loop = next(served)
        client = boto3.client(
            "lambda",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=access_key[0],
            aws_secret_access_key=access_key[1],
            config=Config(retries={"max_attempts": 0}, read_timeout=120),
        )
        yield ManagementGateway(url, client, objects, code_store, loop, app)
    finally:
        served.close()
        objects.close()


def apply_function(
    gateway: ManagementGateway, name: str = "resize", namespace: str = "default", **spec: Any
) -> dict[str, Any]:
    """A Function written into the store as kubectl apply (or kfaas dev's files) would write it."""
    body = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}},
            **spec,
        },
    }
    created: dict[str, Any] = gateway.run(
        gateway.objects.create(
            object_store.FUNCTIONS, body, field_manager=object_store.DEV_FILES_MANAGER
        )
    )
    return created


def handler_zip(body: str = "return 1", *, deflated: bool = True) -> bytes:
    """A zip of ``app.py`` whose handler runs ``body``: the same bytes every time (a fixed date,
    where zipfile would stamp the clock), so digests compare across calls."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        entry = zipfile.ZipInfo("app.py", date_time=(2026, 1, 1, 0, 0, 0))
        archive.writestr(entry, f"def handler(event, context):\n    {body}\n", method)
    return buffer.getvalue()


@contextlib.contextmanager
def signed_gateway_on(folder: Path, authorizer: Authorizer) -> Iterator[ManagementGateway]:
    """A gateway checking SigV4 (one key, the user ``alice``) and asking ``authorizer``."""
    credentials = StaticCredentials([Credential("AKTEST", "secret", Principal("alice"))])
    with management_gateway_on(
        folder,
        authentication=Auth("sigv4", credentials, authorizer),
        access_key=("AKTEST", "secret"),
    ) as gateway:
        yield gateway


def denied(client: Any, action: str, call: Any, **arguments: Any) -> None:
    """``call`` is refused with AccessDeniedException naming ``lambda:<action>``."""
    with pytest.raises(client.exceptions.ClientError) as caught:
        call(**arguments)
    error = caught.value.response["Error"]
    assert error["Code"] == "AccessDeniedException", error
    assert f"lambda:{action}" in error["Message"]
