"""The content address: sha256 of the zip's bytes, hex for storage, base64 as CodeSha256."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from codestore.zips import make_zip

from kfaas.code_archives import inspect_archive
from kfaas.code_digests import CodeDigest, DigestMismatch, check_digest, check_stream

# What Lambda returns as CodeSha256 for a package of no bytes: base64 of sha256(b"").
EMPTY_LAMBDA_SHA256 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_the_digest_is_hashlibs_sha256_in_both_forms() -> None:
    data = make_zip([("app.py", b"def handler(event, context): ...\n")])
    digest = CodeDigest.of(data)
    assert digest.hex == hashlib.sha256(data).hexdigest()
    assert digest.lambda_form == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert CodeDigest.from_lambda(digest.lambda_form) == digest
    assert inspect_archive(data).digest == digest
    assert CodeDigest.of(b"").lambda_form == EMPTY_LAMBDA_SHA256


def test_the_storage_key_fans_out_on_the_first_two_digits() -> None:
    digest = CodeDigest.of(b"")
    assert digest.storage_key == f"sha256/e3/{digest.hex}"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "e3b0",
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "../" + "0" * 61,
        "g" * 64,
        "0" * 63 + "\n",
    ],
)
def test_anything_but_64_lowercase_hex_digits_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        CodeDigest(text)


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(bytes(31)).decode()])
def test_a_lambda_sha256_must_be_32_bytes_of_base64(text: str) -> None:
    with pytest.raises(ValueError, match="not a base64 sha256"):
        CodeDigest.from_lambda(text)


def test_bytes_that_are_not_their_address_are_refused() -> None:
    expected = CodeDigest.of(b"the zip")
    check_digest(expected, b"the zip")
    assert check_stream(expected, io.BytesIO(b"the zip")) == 7
    with pytest.raises(DigestMismatch, match=f"expected sha256 {expected.hex}"):
        check_digest(expected, b"another zip")
    with pytest.raises(DigestMismatch):
        check_stream(expected, io.BytesIO(b"the zi"))
