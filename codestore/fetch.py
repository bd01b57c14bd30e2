"""``kfaas fetch-code``: a function pod's init container fetches its zip and unpacks it (ADR 025).

It downloads ``KFAAS_CODE_SHA256`` from the store with the read capability the operator put into
the function's token Secret, into a scratch file (the pod's /tmp, never memory: up to 50 MiB),
checks the bytes against the digest (a store or network that answers other bytes is a fault,
never code that runs), and unpacks them with ``code_archives.extract_archive``'s checks into the
``code`` volume that the runtime container then mounts read-only at /var/task. Any failure is one
line on stderr and a non-zero exit: the kubelet retries the init container with a backoff.
"""

from __future__ import annotations

import sys
import tempfile
import urllib.error
import urllib.request
from typing import IO, Final

from kfaas.code_archives import (
    MAX_ZIPPED_BYTES,
    CodeArchiveError,
    empty_folder,
    extract_archive,
)
from kfaas.code_digests import CHUNK_BYTES, DigestMismatch, check_stream

from .settings import FetchSettings

BLOB_PATH: Final = "/v1/blobs/sha256/"


class FetchFailed(Exception):
    """The code could not be fetched, checked or unpacked; ``str()`` is the one line to print."""


def blob_url(settings: FetchSettings) -> str:
    return f"{settings.url}{BLOB_PATH}{settings.digest.hex}"


def _download(settings: FetchSettings, target: IO[bytes]) -> None:
    request = urllib.request.Request(
        blob_url(settings), headers={"Authorization": f"Bearer {settings.capability}"}
    )
    # No proxy from the environment: the store is in the cluster, reached directly.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=settings.timeout) as answer:
            size = 0
            while chunk := answer.read(CHUNK_BYTES):
                size += len(chunk)
                if size > MAX_ZIPPED_BYTES:
                    raise FetchFailed(f"the store sent more than {MAX_ZIPPED_BYTES} bytes")
                _write(target, chunk, settings)
    except urllib.error.HTTPError as exc:
        what = {401: "no capability", 403: "the capability was refused", 404: "not stored"}
        reason = what.get(exc.code, exc.reason)
        raise FetchFailed(f"the code store answered {exc.code} ({reason})") from None
    except urllib.error.URLError as exc:
        raise FetchFailed(f"cannot reach the code store at {settings.url}: {exc.reason}") from None
    except OSError as exc:  # reset, timed out
        raise FetchFailed(f"cannot read from the code store at {settings.url}: {exc}") from None


def _write(target: IO[bytes], chunk: bytes, settings: FetchSettings) -> None:
    try:
        target.write(chunk)
    except OSError as exc:
        # Not the store's fault: said as such, not caught as a network error above.
        raise FetchFailed(f"cannot write to {settings.scratch}: {exc}") from None


def fetch_code(settings: FetchSettings) -> int:
    """Fetch, check and unpack; the number of bytes unpacked. ``FetchFailed`` says what failed."""
    digest = settings.digest
    try:
        scratch_file = tempfile.TemporaryFile(dir=settings.scratch)  # noqa: SIM115 (with below)
    except OSError as exc:
        raise FetchFailed(f"cannot write to {settings.scratch}: {exc}") from None
    with scratch_file as scratch:
        _download(settings, scratch)
        scratch.seek(0)
        try:
            check_stream(digest, scratch)
        except DigestMismatch as exc:
            raise FetchFailed(f"the code store sent other bytes: {exc}") from None
        scratch.seek(0)
        try:
            # A run the kubelet killed mid-unpack (then restarted) left part of a tree.
            empty_folder(settings.target)
            manifest = extract_archive(scratch, settings.target)
        except CodeArchiveError as exc:
            raise FetchFailed(f"the zip {digest.hex} cannot be unpacked: {exc}") from None
        except OSError as exc:
            raise FetchFailed(f"cannot unpack into {settings.target}: {exc}") from None
    return manifest.unzipped_size


def main(settings: FetchSettings) -> int:
    """The command: 0 when the code is in place, 1 with one line on stderr otherwise."""
    try:
        size = fetch_code(settings)
    except FetchFailed as exc:
        print(f"kfaas fetch-code: {exc}", file=sys.stderr)
        return 1
    print(f"kfaas fetch-code: {settings.digest.hex} unpacked into {settings.target} ({size} bytes)")
    return 0
