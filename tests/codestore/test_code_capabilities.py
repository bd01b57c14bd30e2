"""Store credentials: each purpose derived apart, one digest per capability, URLs that expire."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from kfaas import runtimetoken
from kfaas.code_capabilities import (
    LOCATION_SECONDS,
    LocationRefused,
    allows_read,
    allows_write,
    check_location,
    new_key,
    read_capability,
    sign_location,
    write_token,
)
from kfaas.code_digests import CodeDigest

KEY = "0" * 64
ONE, OTHER = CodeDigest.of(b"one.zip"), CodeDigest.of(b"other.zip")
NOW = 1_800_000_000.0


def test_a_read_capability_opens_its_digest_only() -> None:
    capability = read_capability(KEY, ONE)
    assert allows_read(KEY, ONE, capability)
    assert not allows_read(KEY, OTHER, capability)
    assert not allows_read(new_key(), ONE, capability)
    assert not allows_read(KEY, ONE, None)
    assert not allows_read(KEY, ONE, capability.upper())


def test_purposes_never_pass_for_one_another() -> None:
    capability = read_capability(KEY, ONE)
    signature = sign_location(KEY, ONE, now=NOW).signature
    assert len({write_token(KEY), capability, signature}) == 3
    assert not allows_write(KEY, capability)
    assert allows_write(KEY, write_token(KEY))
    assert not allows_read(KEY, ONE, write_token(KEY))
    assert not allows_read(KEY, ONE, signature)
    # Nor for ADR 011's runtime tokens, even under the same key.
    assert runtimetoken.derive(KEY, "read", ONE.hex) != capability


def test_derivations_are_hmac_sha256_of_labelled_messages() -> None:
    expected = hmac.new(KEY.encode(), f"kfaas-code-store\0read\0{ONE.hex}".encode(), hashlib.sha256)
    assert read_capability(KEY, ONE) == expected.hexdigest()


def test_a_location_is_good_for_ten_minutes() -> None:
    location = sign_location(KEY, ONE, now=NOW)
    assert location.expires == int(NOW) + LOCATION_SECONDS == int(NOW) + 600
    check_location(KEY, ONE, location.query(), now=NOW + 600)
    with pytest.raises(LocationRefused, match="expired"):
        check_location(KEY, ONE, location.query(), now=NOW + 601)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"Expires": str(int(NOW) + 3600)}, "does not match"),  # a later expiry, same signature
        ({"Signature": "0" * 64}, "does not match"),
        ({"Signature": "A" * 64}, "64 lowercase hex"),
        ({"Signature": ""}, "64 lowercase hex"),
        ({"Expires": "-1"}, "Unix seconds"),
        ({"Expires": "1e9"}, "Unix seconds"),
        ({"Expires": "١٢٣"}, "Unix seconds"),  # digits, but not ASCII ones
        ({"Expires": "9" * 13}, "Unix seconds"),
    ],
)
def test_a_tampered_location_is_refused(change: dict[str, str], why: str) -> None:
    query = sign_location(KEY, ONE, now=NOW).query() | change
    with pytest.raises(LocationRefused, match=why):
        check_location(KEY, ONE, query, now=NOW)


def test_a_location_is_for_its_digest_and_key() -> None:
    query = sign_location(KEY, ONE, now=NOW).query()
    with pytest.raises(LocationRefused, match="does not match"):
        check_location(KEY, OTHER, query, now=NOW)
    with pytest.raises(LocationRefused, match="does not match"):
        check_location(new_key(), ONE, query, now=NOW)
    with pytest.raises(LocationRefused):
        check_location(KEY, ONE, {}, now=NOW)
