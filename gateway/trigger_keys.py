"""Where HTTP trigger keys come from: Secrets and ConfigMaps, key files in `kfaas dev`, JWKS URLs.

A trigger names its keys (``spec.http.apiKey``, ``spec.http.jwt``); the gateway reads them on
demand. The reading is bounded because a function's author chooses what is read: JWKS documents
are fetched with a timeout, without redirects, up to a size cap, cached, and fetched again for an
unknown ``kid`` at most once per interval per URL, so a flood of tokens with random key ids costs
one request upstream, not one each. Secrets and ConfigMaps are read through :class:`KeySources`:
the apiserver in a cluster (``kube_clients.KubernetesKeySources``), local files in `kfaas dev`
(:class:`LocalKeyFiles`), where cluster references cannot be resolved.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import aiohttp

from kfaas.manifests import ApiKeySource, JwtKeySource, KeyRef

from .trigger_tokens import SigningKey, load_key_set

log = logging.getLogger("kfaas.gateway.trigger_auth")

KeySource = ApiKeySource | JwtKeySource
MAX_KEY_FILE_BYTES: Final = 1024 * 1024
MAX_JWKS_BYTES: Final = 256 * 1024
MAX_JWKS_URLS: Final = 1000


class KeysUnavailable(Exception):
    """The keys a trigger names cannot be read now; the request is refused, the reason logged."""


class KeySources(Protocol):
    async def values(self, namespace: str, source: KeySource) -> list[str]:
        """The texts holding a trigger's keys (Secret/ConfigMap values or a file's content)."""
        ...


def selected(data: Mapping[str, str], ref: KeyRef, what: str) -> list[str]:
    """Every value of a Secret or ConfigMap, or only ``ref.key``'s."""
    if ref.key is None:
        return [data[key] for key in sorted(data)]
    if ref.key not in data:
        raise KeysUnavailable(f"{what} {ref.name} has no key {ref.key}")
    return [data[ref.key]]


class LocalKeyFiles:
    """`kfaas dev`'s key sources: the files named by ``file``, re-read when they change."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int], str]] = {}

    async def values(self, namespace: str, source: KeySource) -> list[str]:
        if source.file is None:
            raise KeysUnavailable(
                "Secret and ConfigMap references are read in a cluster only; "
                "`kfaas dev` reads keys from `file`"
            )
        return [self._read(source.file)]

    def _read(self, path: str) -> str:
        try:
            stat = os.stat(path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            cached = self._cache.get(path)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            if stat.st_size > MAX_KEY_FILE_BYTES:
                raise KeysUnavailable(f"{path} is larger than {MAX_KEY_FILE_BYTES} bytes")
            with open(path, encoding="utf-8") as file:
                text = file.read(MAX_KEY_FILE_BYTES)
        except (OSError, UnicodeDecodeError) as exc:
            raise KeysUnavailable(f"cannot read {path}: {exc}") from None
        self._cache[path] = (stamp, text)
        return text


@dataclass
class _Fetched:
    keys: list[SigningKey]
    at: float
    attempted_at: float


class JwksClient:
    """JWKS documents by URL: fetched bounded, cached ``ttl``, refreshed for unknown key ids."""

    def __init__(
        self,
        *,
        timeout_seconds: float = 5.0,
        ttl_seconds: float = 600.0,
        refresh_interval_seconds: float = 30.0,
        max_bytes: int = MAX_JWKS_BYTES,
    ) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=timeout_seconds)
        self.ttl = ttl_seconds
        self.refresh_interval = refresh_interval_seconds
        self.max_bytes = max_bytes
        self._cache: dict[str, _Fetched] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def keys(self, url: str, *, kid: str | None) -> list[SigningKey]:
        """The keys at ``url``; refetched when stale, or when ``kid`` is unknown (rate-limited)."""
        if not self._wants_fetch(url, kid):
            return self._cache[url].keys
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            # Another request may have fetched while this one waited.
            if self._wants_fetch(url, kid):
                await self._refresh(url)
        return self._cache[url].keys

    def _wants_fetch(self, url: str, kid: str | None) -> bool:
        entry = self._cache.get(url)
        if entry is None:
            return True
        now = time.monotonic()
        if now - entry.attempted_at < self.refresh_interval:
            return False
        known = kid is None or any(key.kid == kid for key in entry.keys)
        return not known or now - entry.at >= self.ttl

    async def _refresh(self, url: str) -> None:
        now = time.monotonic()
        entry = self._cache.get(url)
        try:
            keys = load_key_set([await self._fetch(url)])
        except KeysUnavailable as exc:
            log.warning("JWKS %s: %s", url, exc)
            # Keep serving the keys known so far; try again after the interval, not per request.
            if entry is None:
                entry = _Fetched([], at=float("-inf"), attempted_at=now)
            entry.attempted_at = now
            self._store(url, entry)
            return
        self._store(url, _Fetched(keys, at=now, attempted_at=now))

    def _store(self, url: str, entry: _Fetched) -> None:
        if url not in self._cache and len(self._cache) >= MAX_JWKS_URLS:
            oldest = min(self._cache, key=lambda known: self._cache[known].attempted_at)
            del self._cache[oldest]
            self._locks.pop(oldest, None)
        self._cache[url] = entry

    async def _fetch(self, url: str) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.get(
                url, allow_redirects=False, headers={"Accept": "application/json"}
            ) as response:
                if response.status != 200:
                    raise KeysUnavailable(f"answered {response.status}")
                if (response.content_length or 0) > self.max_bytes:
                    raise KeysUnavailable(f"larger than {self.max_bytes} bytes")
                body = bytearray()
                while chunk := await response.content.read(64 * 1024):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise KeysUnavailable(f"larger than {self.max_bytes} bytes")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise KeysUnavailable(f"cannot be fetched: {exc!r}") from None
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise KeysUnavailable("is not UTF-8") from None
