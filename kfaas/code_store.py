"""Where uploaded zips are kept, by their sha256 (ADR 025).

The management API stores a zip once it has been checked (``code_archives.verify_archive``) and
only then names its digest in a Function (``code.zip``), so a Function never names code that is
not stored. ``CodeStore`` is the seam: ``kfaas dev`` keeps blobs in a folder under its state
directory; a cluster's gateways talk to the ``kfaas code-store`` role (ADR 025's later slices).
"""

from __future__ import annotations

from typing import Protocol

from .code_digests import CodeDigest


class CodeStoreError(Exception):
    """The code store refused or could not do an operation; ``str()`` says why."""


class BlobMissing(CodeStoreError):
    """No blob is stored under that digest."""


class CodeStorageExceeded(CodeStoreError):
    """The store is full or over its quota (Lambda's ``CodeStorageExceededException``)."""


class CodeStoreUnavailable(CodeStoreError):
    """The store could not be reached; nothing was stored."""


class CodeStore(Protocol):
    async def put(self, data: bytes) -> CodeDigest:
        """Keep ``data`` (a checked zip) under its sha256; a blob already there is kept as is,
        its time refreshed (the sweep's grace period starts again)."""
        ...

    async def read(self, digest: CodeDigest) -> bytes:
        """The blob's bytes, checked against ``digest`` (``BlobMissing`` if absent)."""
        ...

    async def exists(self, digest: CodeDigest) -> bool: ...
