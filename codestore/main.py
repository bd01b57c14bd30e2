"""``kfaas code-store``: the HTTP server over the store's folder, and its garbage collector."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from kfaas import aiokit
from kfaas.code_folder import DirectoryCodeStore
from kfaas.code_store import CodeStoreError
from kfaas.kube_clients import Credentials, KubeClient

from .gc import collect_forever, count_blobs
from .server import StoreMetrics, make_app
from .settings import StoreSettings

log = logging.getLogger("kfaas.codestore")


async def run_code_store(settings: StoreSettings) -> int:
    """Serve until interrupted; garbage-collect every ``gc_interval`` when ``gc`` is on."""
    settings.folder.mkdir(parents=True, exist_ok=True)
    store = DirectoryCodeStore(settings.folder)
    metrics = StoreMetrics()
    await count_blobs(store, metrics)
    runner = web.AppRunner(make_app(store, settings.key, metrics), access_log=None)
    await runner.setup()
    tasks: list[asyncio.Task[None]] = []
    client: KubeClient | None = None
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("code store serving %s on %s:%d", settings.folder, settings.host, settings.port)
        if settings.gc:
            credentials = Credentials.load(settings.kubeconfig)
            client = KubeClient(credentials, field_manager="kfaas-code-store")

            async def gc() -> None:
                assert client is not None
                await collect_forever(
                    store, client, interval=settings.gc_interval,
                    grace_seconds=settings.gc_grace, metrics=metrics,
                    namespace=settings.watch_namespace,
                )  # fmt: skip

            # A sweep the folder refused is logged and tried again later; the server keeps serving.
            tasks.append(
                aiokit.guarded_task(
                    "code-store-gc",
                    gc,
                    log=log,
                    restart=aiokit.Backoff(10.0, 600.0, 60.0),
                    expected=(CodeStoreError,),
                    on_fatal=aiokit.log_end(log),
                )
            )
        await asyncio.Event().wait()
    finally:
        await aiokit.stop_tasks(tasks, grace_seconds=0)
        if client is not None:
            await client.close()
        await runner.cleanup()
    return 0
