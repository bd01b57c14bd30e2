"""The gateways' side of the code store in a cluster: ``kfaas.code_store.CodeStore`` over HTTP.

``CreateFunction`` and ``UpdateFunctionCode`` put a checked zip through this before they write the
Function that names it (ADR 025); ``GetFunction``'s ``Code.Location`` reads through it. Every
gateway holds the store's write token, which also opens any blob for reading. The store's answers
become the seam's errors here (STYLE 9): unreachable or 5xx → ``CodeStoreUnavailable``, full
(507, or 413 for a quota) → ``CodeStorageExceeded``, 404 → ``BlobMissing``; the bytes read are
checked against their digest before anyone uses them.
"""

from __future__ import annotations

from typing import Final

import aiohttp

from kfaas.code_digests import CodeDigest, check_digest
from kfaas.code_store import (
    BlobMissing,
    CodeStorageExceeded,
    CodeStoreError,
    CodeStoreUnavailable,
)

BLOB_PATH: Final = "/v1/blobs/sha256/"
# A 50 MiB zip over the cluster network, with room for a slow disk's fsync.
TIMEOUT: Final = aiohttp.ClientTimeout(total=120, connect=5)


class HttpCodeStore:
    """The ``kfaas code-store`` service at ``url`` (``http://<release>-code-store.<ns>.svc:8090``)."""

    def __init__(self, url: str, write_token: str) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {write_token}"}
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT, headers=self._headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def blob_url(self, digest: CodeDigest) -> str:
        return f"{self.url}{BLOB_PATH}{digest.hex}"

    async def put(self, data: bytes) -> CodeDigest:
        digest = CodeDigest.of(data)
        headers = {"Content-Type": "application/zip"}
        try:
            async with self._http().put(
                self.blob_url(digest), data=data, headers=headers
            ) as answer:
                if answer.status in (200, 201):
                    return digest
                raise _error(answer.status, await _message(answer), digest)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise CodeStoreUnavailable(f"the code store cannot be reached: {exc!r}") from exc

    async def read(self, digest: CodeDigest) -> bytes:
        try:
            async with self._http().get(self.blob_url(digest)) as answer:
                if answer.status != 200:
                    raise _error(answer.status, await _message(answer), digest)
                data = await answer.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise CodeStoreUnavailable(f"the code store cannot be reached: {exc!r}") from exc
        check_digest(digest, data)  # DigestMismatch: a fault, never code handed out
        return data

    async def exists(self, digest: CodeDigest) -> bool:
        try:
            async with self._http().head(self.blob_url(digest)) as answer:
                if answer.status == 200:
                    return True
                if answer.status == 404:
                    return False
                raise _error(answer.status, answer.reason or "", digest)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise CodeStoreUnavailable(f"the code store cannot be reached: {exc!r}") from exc


async def _message(answer: aiohttp.ClientResponse) -> str:
    try:
        body = await answer.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return answer.reason or ""
    return str(body.get("message", "")) if isinstance(body, dict) else ""


def _error(status: int, message: str, digest: CodeDigest) -> CodeStoreError:
    """The seam's error for a store answer that is not success."""
    if status == 404:
        return BlobMissing(f"no code stored with sha256 {digest.hex}")
    if status in (507, 413):
        return CodeStorageExceeded(f"the code store refused the zip ({status}): {message}")
    # 401/403 (a gateway with the wrong key), 400, 5xx: the platform's fault, not the caller's.
    return CodeStoreUnavailable(f"the code store answered {status}: {message}")
