"""A function's code through the management API: uploads checked and stored, downloads signed.

CreateFunction and UpdateFunctionCode carry a zip as base64 in JSON (up to Lambda's 70,167,211
byte request). It is checked by ``code_archives.verify_archive`` in a thread (unzipping 250 MB
must not stall the event loop) and stored in the code store *before* any Function names its
digest (ADR 025), with the archive's refusals mapped to Lambda's errors here, once.

GetFunction's ``Code.Location`` is a URL on the gateway, ``/2015-03-31/code/<hex>?Expires=&
Signature=``, valid ten minutes like Lambda's presigned URLs, signed with ``Services.location_key``
(the code store's key in a cluster, so any replica opens any replica's URL). It serves the stored
zip, or the canonical zip of inline and ``code.path`` code. Those are not in the code store: the
URL also names the function (``Function=<namespace>/<name>:<version>``, unsigned — the rebuilt
zip must still have the signed digest), so the replica that gets the download rebuilds the zip
when its small in-process cache does not hold it.
"""

from __future__ import annotations

import asyncio
import collections
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from kfaas import code_capabilities
from kfaas.code import tree_files
from kfaas.code_archives import (
    ArchiveManifest,
    ArchiveTooLarge,
    CodeArchiveError,
    verify_archive,
)
from kfaas.code_capabilities import LocationRefused
from kfaas.code_digests import CodeDigest, DigestMismatch
from kfaas.code_store import BlobMissing, CodeStorageExceeded, CodeStoreError
from kfaas.lambda_code import CodeFacts, canonical_zip, stored_code
from kfaas.manifests import Function

from .auth import CODE_LOCATION_PATH
from .errors import CodeStorageExceeded as CodeStorageExceededError
from .errors import (
    Forbidden,
    InvalidParameterValue,
    RequestEntityTooLarge,
    ResourceNotFound,
    ServiceError,
)
from .registry import code_facts as files_facts
from .services import Services

CODE_PATH: Final = CODE_LOCATION_PATH.rstrip("/")
# Canonical zips of inline/path code handed out in a Location: few, small (a ConfigMap's 1 MiB),
# kept at most this many, the oldest dropped first.
_RECENT_ZIPS: Final = 32
_recent: collections.OrderedDict[str, bytes] = collections.OrderedDict()


async def check_zip(data: bytes) -> ArchiveManifest:
    """``verify_archive`` in a thread, its refusals as Lambda's errors (ADR 025)."""
    try:
        return await asyncio.to_thread(verify_archive, data)
    except ArchiveTooLarge as exc:
        raise RequestEntityTooLarge(f"Request must be smaller than 70167211 bytes: {exc}") from exc
    except CodeArchiveError as exc:
        raise InvalidParameterValue(f"ZipFile: could not use the uploaded zip: {exc}") from exc


async def store_zip(services: Services, data: bytes) -> tuple[CodeDigest, int]:
    """Check an uploaded zip and keep it in the code store; its digest and size.

    Refusals as ADR 025 maps them: over 50 MiB zipped → 413 RequestEntityTooLargeException;
    unzipped too large, not a zip, an unsafe entry → 400 InvalidParameterValueException naming
    ZipFile; the store full → CodeStorageExceededException; a store handing back other bytes → 500.
    """
    if services.code_store is None:
        raise InvalidParameterValue(
            "ZipFile: this platform has no code store yet, so it cannot keep uploaded zips; "
            "build an image FROM the kfaas image and use ImageUri (PackageType Image)"
        )
    manifest = await check_zip(data)
    try:
        digest = await services.code_store.put(data)
    except ArchiveTooLarge as exc:
        raise RequestEntityTooLarge(str(exc)) from exc
    except CodeStorageExceeded as exc:
        raise CodeStorageExceededError(f"Code storage limit exceeded: {exc}") from exc
    except DigestMismatch as exc:
        raise ServiceError(f"The code store kept other bytes than sent: {exc}") from exc
    except CodeStoreError as exc:
        raise ServiceError(f"The code store is unavailable: {exc}") from exc
    if digest != manifest.digest:
        raise ServiceError("The code store named the zip by another digest than its own")
    return digest, manifest.zipped_size


async def code_facts(function: Function) -> CodeFacts | None:
    """CodeSha256/CodeSize as Lambda reports them; None for code the gateway does not see."""
    stored = function.spec.code.zip
    if stored is not None:
        return stored_code(CodeDigest(stored.sha256), stored.size)
    if function.spec.code.path is not None:  # kfaas dev: files on disk, read off the loop
        return await asyncio.to_thread(files_facts, function)
    return files_facts(function, local_files=False)


async def _package(function: Function) -> bytes | None:
    """The canonical zip a Location serves for inline or ``code.path`` code."""
    code = function.spec.code
    if code.inline is not None:
        return canonical_zip({name: text.encode() for name, text in code.inline.items()})
    root = function.code_root()
    if root is None:
        return None
    files = await asyncio.to_thread(lambda: tree_files(root) if root.is_dir() else {})
    return await asyncio.to_thread(canonical_zip, files)


def _url(
    services: Services, request: web.Request, digest: CodeDigest, source: str | None = None
) -> str:
    signed = code_capabilities.sign_location(services.location_key, digest, now=time.time())
    query = signed.query() | ({"Function": source} if source else {})
    encoded = urllib.parse.urlencode(query)
    return f"{request.scheme}://{request.host}{CODE_PATH}/{digest.hex}?{encoded}"


async def code_location(
    services: Services, request: web.Request, function: Function, source: str
) -> dict[str, str]:
    """GetFunction's ``Code``: a signed download URL, or the image for image functions.

    ``source`` (``namespace/name:version``) is what a replica reads to rebuild the zip.
    """
    code = function.spec.code
    if code.image is not None:
        location = {"RepositoryType": "ECR", "ImageUri": code.image}
        if "@sha256:" in code.image:
            location["ResolvedImageUri"] = code.image
        return location
    if code.zip is not None:
        stored = _url(services, request, CodeDigest(code.zip.sha256))
        return {"RepositoryType": "S3", "Location": stored}
    package = await _package(function)
    if package is None:  # a code.configMap in a cluster: not the gateway's to read
        return {"RepositoryType": "S3", "Location": ""}
    digest = _remember(package)
    return {"RepositoryType": "S3", "Location": _url(services, request, digest, source)}


def _remember(package: bytes) -> CodeDigest:
    digest = CodeDigest.of(package)
    _recent[digest.hex] = package
    _recent.move_to_end(digest.hex)
    while len(_recent) > _RECENT_ZIPS:
        _recent.popitem(last=False)
    return digest


async def download(
    services: Services,
    request: web.Request,
    hex_digest: str,
    rebuild: Callable[[str], Awaitable[Function | None]],
) -> web.Response:
    """``GET /2015-03-31/code/<hex>``: the zip, if the URL's signature holds and is unexpired.

    ``rebuild`` reads the function a URL's ``Function`` names, for code only a Function holds.
    """
    try:
        digest = CodeDigest(hex_digest)
    except ValueError as exc:
        raise ResourceNotFound(f"No code at {request.path}") from exc
    try:
        check = code_capabilities.check_location
        check(services.location_key, digest, request.query, now=time.time())
    except LocationRefused as exc:
        raise Forbidden(f"The code location is not valid: {exc}") from exc
    package = _recent.get(digest.hex)
    source = request.query.get("Function")
    if package is None and source:
        function = await rebuild(source)
        built = None if function is None else await _package(function)
        # Only the signed digest is served: a Function naming other code yields nothing.
        if built is not None and _remember(built) == digest:
            package = built
    if package is None and services.code_store is not None:
        try:
            package = await services.code_store.read(digest)
        except BlobMissing:
            package = None
        except DigestMismatch as exc:
            raise ServiceError(f"The code store kept other bytes: {exc}") from exc
        except CodeStoreError as exc:
            raise ServiceError(f"The code store is unavailable: {exc}") from exc
    if package is None:
        raise ResourceNotFound(f"The code {digest.hex} is no longer kept")
    return web.Response(
        body=package,
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{digest.hex}.zip"'},
    )
