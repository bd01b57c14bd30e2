"""Lambda's `Marker`/`MaxItems` pagination over a sorted listing, with opaque, checked markers.

ListFunctions, ListVersionsByFunction and ListAliases page with `MaxItems` (1..10000) and an
opaque `Marker` that the previous page's `NextMarker` gave. kfaas lists across namespaces and
filters by the caller's permissions, so a Kubernetes `continue` token (one list call, expiring
after compaction) cannot be that marker (ADR 024): the marker says "after this sort key", which
stays valid across gateway replicas and restarts and while objects come and go. It is signed
with the gateway's key so a client cannot make one up, and bound to the listing it came from, so
a forged, garbled or borrowed marker is refused as Lambda refuses it: InvalidParameterValueException
naming `Marker`. Pure: the key is passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from .lambda_shapes import InvalidParameter

Item = TypeVar("Item")
# A sort key made of names and numbers (namespace, name; or a version number).
SortKey = tuple[str | int, ...]

MAX_ITEMS = 10000
# Lambda's listings serve at most this many items per page, whatever MaxItems asks.
PAGE_CAP = 50
_MARKER_VERSION = 1
_TAG_BYTES = 16
# A marker longer than this is not one of ours (keys are names of at most 253 characters).
_MARKER_LIMIT = 2048


@dataclass(frozen=True)
class Page(Generic[Item]):
    items: list[Item]
    # None on the last page: Lambda then omits NextMarker.
    next_marker: str | None


def parse_max_items(raw: str | None, cap: int = PAGE_CAP) -> int:
    """The page size for a `MaxItems` query value: 1..10000 accepted, at most `cap` served.

    Lambda's listings return at most 50 items whatever MaxItems says (botocore's documentation
    of ListFunctions and ListVersionsByFunction); clients follow NextMarker for the rest.
    """
    if raw is None:
        return cap
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_ITEMS:
        raise InvalidParameter(
            "MaxItems", f"MaxItems must be an integer from 1 to {MAX_ITEMS}, got {raw!r}"
        )
    return min(int(raw), cap)


def _tag(key: bytes, scope: str, payload: bytes) -> bytes:
    mac = hmac.new(key, scope.encode() + b"\0" + payload, hashlib.sha256)
    return mac.digest()[:_TAG_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_marker(after: SortKey, *, scope: str, key: bytes) -> str:
    """A marker for "the items after `after`" in the listing `scope`, signed with `key`."""
    payload = json.dumps([_MARKER_VERSION, list(after)], separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_tag(key, scope, payload))}"


def decode_marker(marker: str, *, scope: str, key: bytes) -> SortKey:
    """The sort key a marker of this listing holds; anything else is InvalidParameter(Marker)."""
    refused = InvalidParameter("Marker", "Marker is not a valid pagination token for this listing")
    if len(marker) > _MARKER_LIMIT or marker.count(".") != 1:
        raise refused
    encoded, _, tag = marker.partition(".")
    try:
        payload, signature = _unb64(encoded), _unb64(tag)
    except (binascii.Error, ValueError):
        raise refused from None
    if not hmac.compare_digest(signature, _tag(key, scope, payload)):
        raise refused
    try:
        version, after = json.loads(payload)
    except (ValueError, TypeError):
        raise refused from None
    if version != _MARKER_VERSION or not isinstance(after, list):
        raise refused
    if not all(isinstance(part, (str, int)) and not isinstance(part, bool) for part in after):
        raise refused
    return tuple(after)


def paginate(
    items: Sequence[Item],
    sort_key: Callable[[Item], SortKey],
    *,
    marker: str | None,
    max_items: int,
    scope: str,
    key: bytes,
) -> Page[Item]:
    """One page of `items` in sort-key order, starting after the marker's key.

    Items may have been created or deleted since the marker was made: the page starts at the
    first item after its key, so nothing is listed twice and nothing that stayed is skipped.
    """
    ordered = sorted(items, key=sort_key)
    if marker:
        after = decode_marker(marker, scope=scope, key=key)
        try:
            ordered = [item for item in ordered if sort_key(item) > after]
        except TypeError:  # a key of the wrong shape for this listing (signed, so ours: stale)
            raise InvalidParameter("Marker", "Marker does not fit this listing") from None
    page = ordered[:max_items]
    more = len(ordered) > max_items
    next_marker = encode_marker(sort_key(page[-1]), scope=scope, key=key) if more else None
    return Page(items=page, next_marker=next_marker)
