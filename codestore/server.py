"""The code store's HTTP surface (ADR 025): blobs by sha256 over a ``DirectoryCodeStore``.

``PUT /v1/blobs/sha256/<hex>`` is for gateways (the write token); ``GET`` and ``HEAD`` of the same
path for whoever holds that digest's read capability (a function pod's init container) or the
write token (a gateway serving ``Code.Location``). Either travels as ``Authorization: Bearer …``
(or in ``X-Kfaas-Code-Capability``) and is compared in constant time by ``code_capabilities``.

A PUT is read in chunks, hashed as it arrives and refused as soon as it passes Lambda's 50 MiB
(413) or, at its end, when its sha256 is not the path's (400); only then does the folder store
write it (temporary file, fsync, rename; a re-put refreshes the blob's time for the sweep). The
body is held in memory while it is checked, so at most ``UPLOADS`` are read at once and the others
wait: the pod's memory bound is that, not the number of gateways.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Final

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from kfaas import code_capabilities
from kfaas.code_archives import MAX_ZIPPED_BYTES, ArchiveTooLarge
from kfaas.code_digests import CHUNK_BYTES, CodeDigest
from kfaas.code_folder import DirectoryCodeStore
from kfaas.code_store import CodeStorageExceeded, CodeStoreUnavailable

log = logging.getLogger("kfaas.codestore")

BLOB_ROUTE: Final = "/v1/blobs/sha256/{hex}"
UPLOADS: Final = 2


class StoreMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.blobs = Gauge("kfaas_code_store_blobs", "Zips stored", registry=r)
        self.bytes = Gauge("kfaas_code_store_bytes", "Bytes of the zips stored", registry=r)
        self.puts = Counter("kfaas_code_store_puts", "Zips uploaded (new or again)", registry=r)
        self.gets = Counter("kfaas_code_store_gets", "Zips served (GET)", registry=r)
        self.refusals = Counter(
            "kfaas_code_store_refusals", "Requests refused", ["reason"], registry=r
        )
        self.sweeps = Counter(
            "kfaas_code_store_sweeps", "Garbage collections", ["outcome"], registry=r
        )
        self.deleted = Counter(
            "kfaas_code_store_deleted", "Zips deleted by garbage collection", registry=r
        )


STORE: Final = web.AppKey("store", DirectoryCodeStore)
KEY: Final = web.AppKey("key", str)
METRICS: Final = web.AppKey("metrics", StoreMetrics)
UPLOAD_SLOTS: Final = web.AppKey("upload_slots", asyncio.Semaphore)


def presented(request: web.Request) -> str | None:
    """The token or capability the caller presents, if any."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get(code_capabilities.HEADER) or None


def _refuse(request: web.Request, status: int, reason: str, message: str) -> web.Response:
    request.app[METRICS].refusals.labels(reason).inc()
    return web.json_response({"error": reason, "message": message}, status=status)


def _digest(request: web.Request) -> CodeDigest | None:
    try:
        return CodeDigest(request.match_info["hex"])
    except ValueError:
        return None


async def put_blob(request: web.Request) -> web.Response:
    app = request.app
    digest = _digest(request)
    if digest is None:
        return _refuse(request, 400, "BadDigest", "the path must name a sha256 in lowercase hex")
    credential = presented(request)
    if not code_capabilities.allows_write(app[KEY], credential):
        status = 401 if credential is None else 403
        return _refuse(request, status, "NotAllowed", "only gateways may upload (write token)")
    store = app[STORE]
    limit = store.max_zipped_bytes
    if request.content_length is not None and request.content_length > limit:
        return _refuse(request, 413, "TooLarge", f"a zip may have at most {limit} bytes")
    async with app[UPLOAD_SLOTS]:
        hashing, chunks, size = hashlib.sha256(), [], 0
        async for chunk in request.content.iter_chunked(CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                return _refuse(request, 413, "TooLarge", f"a zip may have at most {limit} bytes")
            hashing.update(chunk)
            chunks.append(chunk)
        if hashing.hexdigest() != digest.hex:
            message = f"the body's sha256 is {hashing.hexdigest()}, not the path's"
            return _refuse(request, 400, "DigestMismatch", message)
        existed = await store.exists(digest)
        try:
            await store.put(b"".join(chunks))
        except ArchiveTooLarge as exc:
            return _refuse(request, 413, "TooLarge", str(exc))
        except CodeStorageExceeded as exc:
            return _refuse(request, 507, "CodeStorageExceeded", str(exc))
        except CodeStoreUnavailable as exc:
            log.error("cannot store %s: %s", digest.hex, exc)
            return _refuse(request, 503, "Unavailable", str(exc))
    metrics = app[METRICS]
    metrics.puts.inc()
    if not existed:
        metrics.blobs.inc()
        metrics.bytes.inc(size)
    return web.json_response({"sha256": digest.hex, "size": size}, status=200 if existed else 201)


async def get_blob(request: web.Request) -> web.StreamResponse:
    app = request.app
    digest = _digest(request)
    if digest is None:
        return _refuse(request, 400, "BadDigest", "the path must name a sha256 in lowercase hex")
    credential, key = presented(request), app[KEY]
    allowed = code_capabilities.allows_read(key, digest, credential)
    if not (allowed or code_capabilities.allows_write(key, credential)):
        status = 401 if credential is None else 403
        return _refuse(request, status, "NotAllowed", "a read capability for this digest is needed")
    path = app[STORE].blob_path(digest)
    if not path.is_file():
        return _refuse(request, 404, "BlobMissing", f"no code stored with sha256 {digest.hex}")
    if request.method == "GET":
        app[METRICS].gets.inc()
    # The reader checks the sha256 itself (the init container, the gateway): served as stored.
    return web.FileResponse(path, headers={"Content-Type": "application/zip"})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(store: DirectoryCodeStore, key: str, store_metrics: StoreMetrics) -> web.Application:
    # The largest body aiohttp will read: a zip at the limit (the handler refuses past it).
    app = web.Application(client_max_size=MAX_ZIPPED_BYTES + 1)
    app[STORE] = store
    app[KEY] = key
    app[METRICS] = store_metrics
    app[UPLOAD_SLOTS] = asyncio.Semaphore(UPLOADS)
    app.router.add_put(BLOB_ROUTE, put_blob)
    app.router.add_get(BLOB_ROUTE, get_blob)  # HEAD too
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
