"""The code store's HTTP server (ADR 025) and the gateways' client for it, over a real socket."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from codestore.zips import make_zip

from kfaas import code_capabilities
from kfaas.code_digests import CodeDigest
from kfaas.code_folder import DirectoryCodeStore
from kfaas.code_store import BlobMissing, CodeStorageExceeded, CodeStore, CodeStoreUnavailable
from kfaas.codestore.server import StoreMetrics, make_app
from kfaas.gateway.code_store_client import HttpCodeStore

KEY = "0" * 64
WRITE = code_capabilities.write_token(KEY)
ZIP = make_zip([("app.py", "def handler(event, context):\n    return event\n")])
DIGEST = CodeDigest.of(ZIP)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    store = DirectoryCodeStore(tmp_path / "code", max_zipped_bytes=64 * 1024)
    server = TestServer(make_app(store, KEY, StoreMetrics()))
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _url(server: TestServer, digest: str = DIGEST.hex) -> str:
    return str(server.make_url(f"/v1/blobs/sha256/{digest}"))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_gateway_puts_and_a_capability_reads_exactly_that_blob(
    server: TestServer, http: aiohttp.ClientSession
) -> None:
    async with http.put(_url(server), data=ZIP, headers=_bearer(WRITE)) as answer:
        assert answer.status == 201
        assert await answer.json() == {"sha256": DIGEST.hex, "size": len(ZIP)}
    capability = code_capabilities.read_capability(KEY, DIGEST)
    async with http.get(_url(server), headers=_bearer(capability)) as answer:
        assert answer.status == 200
        assert await answer.read() == ZIP
    async with http.head(_url(server), headers=_bearer(capability)) as answer:
        assert answer.status == 200
    # The same capability opens no other digest (stored or not).
    other = hashlib.sha256(b"other").hexdigest()
    async with http.get(_url(server, other), headers=_bearer(capability)) as answer:
        assert answer.status == 403
    # The header form works too.
    headers = {code_capabilities.HEADER: capability}
    async with http.get(_url(server), headers=headers) as answer:
        assert answer.status == 200


async def test_a_second_put_of_the_same_bytes_is_200(
    server: TestServer, http: aiohttp.ClientSession
) -> None:
    for status in (201, 200):
        async with http.put(_url(server), data=ZIP, headers=_bearer(WRITE)) as answer:
            assert answer.status == status


async def test_uploads_need_the_write_token(
    server: TestServer, http: aiohttp.ClientSession
) -> None:
    async with http.put(_url(server), data=ZIP) as answer:
        assert answer.status == 401
    capability = code_capabilities.read_capability(KEY, DIGEST)
    async with http.put(_url(server), data=ZIP, headers=_bearer(capability)) as answer:
        assert answer.status == 403
    async with http.put(_url(server), data=ZIP, headers=_bearer(WRITE[:-1] + "0")) as answer:
        assert answer.status == 403
    async with http.get(_url(server)) as answer:
        assert answer.status == 401


async def test_a_body_that_is_not_the_paths_digest_is_refused(
    server: TestServer, http: aiohttp.ClientSession
) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    async with http.put(_url(server, wrong), data=ZIP, headers=_bearer(WRITE)) as answer:
        assert answer.status == 400
        assert (await answer.json())["error"] == "DigestMismatch"
    async with http.get(_url(server, wrong), headers=_bearer(WRITE)) as answer:
        assert answer.status == 404


async def test_a_malformed_digest_is_refused(
    server: TestServer, http: aiohttp.ClientSession
) -> None:
    async with http.put(_url(server, "ABC"), data=ZIP, headers=_bearer(WRITE)) as answer:
        assert answer.status == 400
    async with http.get(_url(server, "../../etc/passwd"), headers=_bearer(WRITE)) as answer:
        assert answer.status in (400, 404)


async def test_a_body_over_the_limit_is_413_declared_or_streamed(
    server: TestServer, http: aiohttp.ClientSession
) -> None:
    big = b"x" * (64 * 1024 + 1)
    digest = hashlib.sha256(big).hexdigest()
    async with http.put(_url(server, digest), data=big, headers=_bearer(WRITE)) as answer:
        assert answer.status == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b"x" * (16 * 1024)

    async with http.put(_url(server, digest), data=chunks(), headers=_bearer(WRITE)) as answer:
        assert answer.status == 413


async def test_health_and_metrics(server: TestServer, http: aiohttp.ClientSession) -> None:
    async with http.put(_url(server), data=ZIP, headers=_bearer(WRITE)) as answer:
        assert answer.status == 201
    async with http.put(_url(server), data=ZIP) as answer:
        assert answer.status == 401
    async with http.get(server.make_url("/healthz")) as answer:
        assert answer.status == 200
    async with http.get(server.make_url("/metrics")) as answer:
        text = await answer.text()
    assert "kfaas_code_store_blobs 1.0" in text
    assert f"kfaas_code_store_bytes {float(len(ZIP))}" in text
    assert "kfaas_code_store_puts_total 1.0" in text
    assert 'kfaas_code_store_refusals_total{reason="NotAllowed"} 1.0' in text


# -- the gateways' client ----------------------------------------------------------------------


async def test_the_client_is_a_code_store(server: TestServer) -> None:
    client = HttpCodeStore(str(server.make_url("/")), WRITE)
    seam: CodeStore = client
    try:
        assert await seam.exists(DIGEST) is False
        assert await seam.put(ZIP) == DIGEST
        assert await seam.exists(DIGEST) is True
        assert await seam.read(DIGEST) == ZIP
        with pytest.raises(BlobMissing):
            await seam.read(CodeDigest.of(b"never stored"))
    finally:
        await client.close()


async def test_the_client_translates_the_stores_refusals(server: TestServer) -> None:
    wrong_key = HttpCodeStore(str(server.make_url("")), code_capabilities.write_token("1" * 64))
    too_big = HttpCodeStore(str(server.make_url("")), WRITE)
    try:
        with pytest.raises(CodeStoreUnavailable, match="403"):
            await wrong_key.put(ZIP)
        with pytest.raises(CodeStorageExceeded, match="413"):
            await too_big.put(b"x" * (64 * 1024 + 1))
    finally:
        await wrong_key.close()
        await too_big.close()


async def test_an_unreachable_store_is_unavailable() -> None:
    client = HttpCodeStore("http://127.0.0.1:9", WRITE)
    try:
        with pytest.raises(CodeStoreUnavailable):
            await client.put(ZIP)
        with pytest.raises(CodeStoreUnavailable):
            await client.exists(DIGEST)
    finally:
        await client.close()


async def test_a_full_disk_is_507(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    class Full(DirectoryCodeStore):
        async def put(self, data: bytes) -> CodeDigest:
            raise CodeStorageExceeded("the code store is full: [Errno 28] No space left")

    server = TestServer(make_app(Full(tmp_path), KEY, StoreMetrics()))
    await server.start_server()
    client = HttpCodeStore(str(server.make_url("")), WRITE)
    try:
        async with http.put(_url(server), data=ZIP, headers=_bearer(WRITE)) as answer:
            assert answer.status == 507
        with pytest.raises(CodeStorageExceeded):
            await client.put(ZIP)
    finally:
        await client.close()
        await server.close()


# -- the cluster gateway's settings ------------------------------------------------------------


def test_the_gateway_takes_the_store_from_its_variables() -> None:
    from kfaas.cli.command import _parser
    from kfaas.cli.settings import server_settings

    gateway = _parser().parse_args(["gateway"])
    assert server_settings(gateway, {}).code_store_url is None
    environ = {"KFAAS_CODE_STORE_URL": "http://store:8090", "KFAAS_CODE_STORE_KEY": KEY}
    server = server_settings(gateway, environ)
    assert (server.code_store_url, server.code_store_key) == ("http://store:8090", KEY)
    assert KEY not in repr(server)
    with pytest.raises(ValueError, match="KFAAS_CODE_STORE_URL needs KFAAS_CODE_STORE_KEY"):
        server_settings(gateway, {"KFAAS_CODE_STORE_URL": "http://store:8090"})
    with pytest.raises(ValueError, match="must be an http"):
        server_settings(gateway, {**environ, "KFAAS_CODE_STORE_URL": "store:8090"})
    # kfaas dev keeps its zips in its state folder and never reads these.
    dev = _parser().parse_args(["dev"])
    assert server_settings(dev, environ).code_store_url is None
