"""A function zip's content address (ADR 025): the sha256 of its bytes, in the forms it travels in.

One digest, three spellings: Lambda's ``CodeSha256`` (base64 of the raw 32 bytes, what the API
returns and boto3 users compare), lowercase hex (store paths, annotations, ``status.codeSha256``,
Kubernetes-safe), and a relative storage key with a fan-out folder. Parsing any of them goes
through :class:`CodeDigest`, so a malformed digest is refused where it enters, never joined into a
path or URL. Whoever reads stored or fetched bytes checks them with :func:`check_stream` before
using them: a store answering with the wrong bytes is a fault, never code that runs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import BinaryIO, Final

HEX_DIGITS: Final = "0123456789abcdef"
CHUNK_BYTES: Final = 256 * 1024


class DigestMismatch(Exception):
    """Bytes that are not what their address says: a fault of the store or the network."""


@dataclass(frozen=True)
class CodeDigest:
    """A zip's content address: the sha256 of its bytes, held as 64 lowercase hex digits."""

    hex: str

    def __post_init__(self) -> None:
        if len(self.hex) != 64 or self.hex.strip(HEX_DIGITS):
            raise ValueError(f"not a sha256 in lowercase hex: {self.hex!r}")

    @classmethod
    def of(cls, data: bytes) -> CodeDigest:
        return cls(hashlib.sha256(data).hexdigest())

    @classmethod
    def from_lambda(cls, text: str) -> CodeDigest:
        """From Lambda's ``CodeSha256`` (standard base64 of the 32 raw bytes, padded)."""
        try:
            raw = base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"not a base64 sha256: {text!r}") from exc
        if len(raw) != 32:
            raise ValueError(f"not a base64 sha256: {text!r}")
        return cls(raw.hex())

    @property
    def lambda_form(self) -> str:
        """Lambda's ``CodeSha256``: base64 of the raw digest, as its API returns it."""
        return base64.b64encode(bytes.fromhex(self.hex)).decode()

    @property
    def storage_key(self) -> str:
        """A relative path for stores; the fan-out folder keeps each directory small."""
        return f"sha256/{self.hex[:2]}/{self.hex}"


def digest_stream(stream: BinaryIO) -> tuple[CodeDigest, int]:
    """The digest and size of what is left to read in ``stream``, read in chunks."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
    return CodeDigest(digest.hexdigest()), size


def check_digest(expected: CodeDigest, data: bytes) -> None:
    _compare(expected, CodeDigest.of(data))


def check_stream(expected: CodeDigest, stream: BinaryIO) -> int:
    """Read ``stream`` to its end and refuse it unless it hashes to ``expected``; its size."""
    actual, size = digest_stream(stream)
    _compare(expected, actual)
    return size


def _compare(expected: CodeDigest, actual: CodeDigest) -> None:
    if actual != expected:
        raise DigestMismatch(f"expected sha256 {expected.hex}, the bytes have {actual.hex}")
