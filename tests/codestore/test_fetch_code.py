"""`kfaas fetch-code`, the init container: fetch, check, unpack; any failure one line, exit 1."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from codestore.zips import make_zip

from kfaas import code_capabilities
from kfaas.code_digests import CodeDigest
from kfaas.code_folder import DirectoryCodeStore
from kfaas.codestore import fetch
from kfaas.codestore.server import StoreMetrics, make_app
from kfaas.codestore.settings import FetchSettings, StoreSettings

KEY = "k" * 64
ZIP = make_zip([("app.py", "def handler(event, context):\n    return 1\n"), ("lib/x.py", "")])
DIGEST = CodeDigest.of(ZIP)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    store = DirectoryCodeStore(tmp_path / "store")
    await store.put(ZIP)
    server = TestServer(make_app(store, KEY, StoreMetrics()))
    await server.start_server()
    yield server
    await server.close()


def _settings(server: TestServer, tmp_path: Path, **changes: str) -> FetchSettings:
    (tmp_path / "task").mkdir(exist_ok=True)
    (tmp_path / "scratch").mkdir(exist_ok=True)
    environ = {
        "KFAAS_CODE_STORE_URL": str(server.make_url("")),
        "KFAAS_CODE_SHA256": DIGEST.hex,
        "KFAAS_CODE_CAPABILITY": code_capabilities.read_capability(KEY, DIGEST),
        "KFAAS_CODE_TARGET": str(tmp_path / "task"),
        "KFAAS_CODE_SCRATCH": str(tmp_path / "scratch"),
        **changes,
    }
    return FetchSettings.from_env(environ)


async def test_the_zip_is_fetched_checked_and_unpacked(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(server, tmp_path)
    # A tree left by an earlier run the kubelet killed mid-unpack is replaced.
    (settings.target / "stale.py").write_text("old")
    assert await asyncio.to_thread(fetch.main, settings) == 0
    assert (settings.target / "app.py").read_text().startswith("def handler")
    assert (settings.target / "lib" / "x.py").exists()
    assert not (settings.target / "stale.py").exists()
    assert os.listdir(settings.scratch) == []  # the zip does not stay in /tmp
    assert DIGEST.hex in capsys.readouterr().out


async def test_a_wrong_capability_is_one_line_and_exit_1(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(server, tmp_path, KFAAS_CODE_CAPABILITY="f" * 64)
    assert await asyncio.to_thread(fetch.main, settings) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "403" in error
    assert os.listdir(settings.target) == []


async def test_a_digest_not_stored_is_404(server: TestServer, tmp_path: Path) -> None:
    other = CodeDigest.of(b"other")
    capability = code_capabilities.read_capability(KEY, other)
    settings = _settings(
        server, tmp_path, KFAAS_CODE_SHA256=other.hex, KFAAS_CODE_CAPABILITY=capability
    )
    with pytest.raises(fetch.FetchFailed, match="404"):
        await asyncio.to_thread(fetch.fetch_code, settings)


async def test_bytes_that_are_not_the_digest_never_unpack(tmp_path: Path) -> None:
    async def lying(request: web.Request) -> web.Response:
        return web.Response(body=make_zip([("evil.py", "x")]))

    app = web.Application()
    app.router.add_get("/v1/blobs/sha256/{hex}", lying)
    server = TestServer(app)
    await server.start_server()
    try:
        settings = _settings(server, tmp_path)
        with pytest.raises(fetch.FetchFailed, match="other bytes"):
            await asyncio.to_thread(fetch.fetch_code, settings)
        assert os.listdir(settings.target) == []
    finally:
        await server.close()


def test_an_unreachable_store_says_where(tmp_path: Path) -> None:
    settings = FetchSettings(
        url="http://127.0.0.1:9", digest=DIGEST, capability="x", target=tmp_path, scratch=tmp_path
    )
    with pytest.raises(
        fetch.FetchFailed, match=re.escape("cannot reach the code store at http://127.0.0.1:9")
    ):
        fetch.fetch_code(settings)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "KFAAS_CODE_STORE_URL, KFAAS_CODE_SHA256, KFAAS_CODE_CAPABILITY must be set"),
        (
            {
                "KFAAS_CODE_STORE_URL": "store:8090",
                "KFAAS_CODE_SHA256": "a",
                "KFAAS_CODE_CAPABILITY": "c",
            },
            "must be an http",
        ),
        (
            {
                "KFAAS_CODE_STORE_URL": "http://s",
                "KFAAS_CODE_SHA256": "A" * 64,
                "KFAAS_CODE_CAPABILITY": "c",
            },
            "KFAAS_CODE_SHA256 must be a sha256",
        ),
    ],
)
def test_fetch_settings_name_what_is_wrong(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        FetchSettings.from_env(environ)


def test_store_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KFAAS_CODE_STORE_KEY or KFAAS_CODE_STORE_KEY_FILE"):
        StoreSettings.from_env({})
    key_file = tmp_path / "key"
    key_file.write_text("secret\n")
    settings = StoreSettings.from_env(
        {
            "KFAAS_CODE_STORE_KEY_FILE": str(key_file),
            "KFAAS_CODE_STORE_DIR": str(tmp_path),
            "KFAAS_CODE_STORE_GC_GRACE_SECONDS": "60",
            "KFAAS_CODE_STORE_GC": "false",
        }
    )
    assert (settings.key, settings.folder, settings.port) == ("secret", tmp_path, 8090)
    assert (settings.gc, settings.gc_grace, settings.gc_interval) == (False, 60.0, 3600.0)
    assert "secret" not in repr(settings)
    with pytest.raises(ValueError, match="KFAAS_CODE_STORE_GC_INTERVAL_SECONDS"):
        StoreSettings.from_env(
            {"KFAAS_CODE_STORE_KEY": "k", "KFAAS_CODE_STORE_GC_INTERVAL_SECONDS": "0"}
        )
    with pytest.raises(ValueError, match="cannot be read"):
        StoreSettings.from_env({"KFAAS_CODE_STORE_KEY_FILE": str(tmp_path / "missing")})
