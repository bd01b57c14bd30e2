"""A function's code as Lambda's API describes it: `CodeSha256` and `CodeSize` of a zip.

Lambda's clients compare `CodeSha256` with the base64 sha256 of the zip they uploaded (the AWS
CLI's users, Terraform's `source_code_hash`), so an uploaded zip is described by its own bytes,
through the code store's one digest (``kfaas.code_digests``, ADR 025). Code that was never a zip
(`code.inline`, `code.configMap`) is described as its canonical zip — the bytes `GetFunction`'s
`Code.Location` serves — so the same files always give the same CodeSha256 on any machine
(ADR 024). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .code_digests import CodeDigest

# Fixed entry time (the earliest a zip can hold) so the same files always zip to the same bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_IMAGE_DIGEST = "@sha256:"


@dataclass(frozen=True)
class CodeFacts:
    """The deployment package as Lambda describes it: its CodeSha256, size and package type."""

    sha256: str
    size: int
    package_type: Literal["Zip", "Image"] = "Zip"


def canonical_zip(files: Mapping[str, bytes]) -> bytes:
    """The zip Lambda would hold for these files: same files, same bytes, on any machine.

    Entries are sorted, stored (deflate output depends on the zlib build), dated 1980-01-01 and
    given Unix modes (`bootstrap` executable, as the runtime needs it).
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.create_system = 3
            mode = 0o755 if name.rsplit("/", 1)[-1] == "bootstrap" else 0o644
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


def stored_code(digest: CodeDigest, size: int) -> CodeFacts:
    """A zip held by the code store, known by its address and size without reading it."""
    return CodeFacts(sha256=digest.lambda_form, size=size)


def zip_code(package: bytes) -> CodeFacts:
    """An uploaded or canonical zip, described by its own bytes."""
    return stored_code(CodeDigest.of(package), len(package))


def files_code(files: Mapping[str, bytes]) -> CodeFacts:
    """Inline or ConfigMap code, described as its canonical zip."""
    return zip_code(canonical_zip(files))


def image_code(reference: str) -> CodeFacts:
    """Container-image code: Lambda gives the image digest (hex) and a size of 0.

    A reference pinned by digest (`…@sha256:<hex>`) gives that digest; a tag has none until it
    is resolved, so the reference itself is hashed (ADR 024 lists it as a difference).
    """
    _, _, pinned = reference.partition(_IMAGE_DIGEST)
    digest = pinned if pinned else hashlib.sha256(reference.encode()).hexdigest()
    return CodeFacts(sha256=digest, size=0, package_type="Image")
