"""A function's Lambda tags, kept in one annotation: the one encoding and the one parse.

Tag keys may hold spaces, `:`, `/`, `@` and any letter (botocore's TagKey pattern), which
Kubernetes label and annotation keys cannot, so the tags live as one JSON object in the annotation
`kfaas.dev/tags` (ADR 024). Whatever crosses into it goes through ``encode_tags`` and comes out
through ``decode_tags`` (STYLE 21); ``tag`` and ``untag`` apply TagResource and UntagResource
with Lambda's limits. Pure: the caller reads and writes the annotation.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Final

from .lambda_shapes import InvalidParameter

ANNOTATION: Final = "kfaas.dev/tags"
MAX_TAGS: Final = 50
MAX_KEY: Final = 128
MAX_VALUE: Final = 256
# Besides letters, separators (spaces) and digits, botocore's pattern allows these.
_PUNCTUATION: Final = frozenset("_.:/=+-@")


class MalformedTags(ValueError):
    """The annotation holds something `encode_tags` never writes (edited by hand)."""


def _allowed(text: str) -> bool:
    return all(unicodedata.category(char)[0] in "LZN" or char in _PUNCTUATION for char in text)


def _check(tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_KEY or not _allowed(key):
            raise InvalidParameter(
                "Tags",
                f"Tag key {key!r} must be 1 to {MAX_KEY} letters, digits, spaces or _.:/=+-@",
            )
        if key.lower().startswith("aws:"):
            raise InvalidParameter("Tags", f"Tag key {key!r}: the aws: prefix is reserved")
        if len(value) > MAX_VALUE or not _allowed(value):
            raise InvalidParameter(
                "Tags",
                f"Tag value of {key!r} must be at most {MAX_VALUE} letters, digits, spaces "
                "or _.:/=+-@",
            )
    if len(tags) > MAX_TAGS:
        raise InvalidParameter("Tags", f"A function has at most {MAX_TAGS} tags, not {len(tags)}")


def encode_tags(tags: Mapping[str, str]) -> str:
    """The annotation's value: a JSON object, keys sorted so equal tags write equal text."""
    _check(tags)
    return json.dumps(dict(tags), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def decode_tags(value: str | None) -> dict[str, str]:
    """The tags the annotation holds; none when it is absent."""
    if value is None or value == "":
        return {}
    try:
        tags = json.loads(value)
    except ValueError as exc:
        raise MalformedTags(f"annotation {ANNOTATION} is not JSON: {exc}") from None
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise MalformedTags(f"annotation {ANNOTATION} must be a JSON object of strings")
    return tags


def tag(current: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    """TagResource: the new tags added, replacing the values of keys already there."""
    merged = {**current, **new}
    _check(merged)
    return merged


def untag(current: Mapping[str, str], keys: Iterable[str]) -> dict[str, str]:
    """UntagResource: the named keys removed; keys that are not there are no error, as in Lambda."""
    gone = set(keys)
    return {key: value for key, value in current.items() if key not in gone}
