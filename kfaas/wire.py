"""HTTP/1.1 message heads, encoded and parsed in one place so no value can change the framing.

Every hop kfaas speaks itself (gateway → runtime ``/invoke``, poller → gateway, the runtime's
answers) writes its head through :func:`encode_header` and reads heads back through
:func:`parse_head`. Both refuse what HTTP/1.1 treats as structure rather than data: CR, LF and NUL
(and any other control character) in a value, a name that is not a token, bare CR or LF as a line
end, obs-fold continuation lines and whitespace before the colon. A value from outside that got
string-joined into a head could end it early and smuggle a second request (issue 8); here it is
refused instead. Encoded values are printable ASCII without surrounding whitespace, so what is
written is exactly what is parsed back; the parser also admits obs-text (bytes over 0x7F), which
libcurl clients such as awslambdaric send in error-cause headers.
"""

from __future__ import annotations

import re

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_NAME = re.compile(_TOKEN)
_NAME_BYTES = re.compile(_TOKEN.encode())
# Control characters other than HTAB; CR and LF are among them once CRLF pairs are taken out.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_REQUEST_LINE = re.compile(rb"(" + _TOKEN.encode() + rb") (/[\x21-\x7e]*) HTTP/1\.([01])")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9]) [\t \x21-\x7e\x80-\xff]*")
_TARGET = re.compile(r"/[\x21-\x7e]*")
_DIGITS = re.compile(r"[0-9]{1,18}")
# Names seen valid, so the hot path (the same few names on every message) skips the regex: a name
# as written (its `Name: ` prefix) and as read (lower-cased). Bounded, as names come from outside.
_NAME_CACHE_SIZE = 4096
_WRITTEN_NAMES: dict[str, bytes] = {}
_READ_NAMES: dict[bytes, str] = {}


class HeaderError(ValueError):
    """A header name or value that cannot be written into an HTTP/1.1 head as it is."""


class FramingError(ValueError):
    """A message head that is not exactly one well-formed HTTP/1.1 head."""


Fields = list[tuple[str, str]]
"""Header fields in order; names lower-cased, values with the surrounding whitespace removed."""


def encode_header(name: str, value: str) -> bytes:
    """``Name: value\r\n`` as bytes; ``HeaderError`` unless both can be written as they are.

    A value is printable ASCII (space included, tab not) without leading or trailing spaces.
    """
    prefix = _WRITTEN_NAMES.get(name)
    if prefix is None:
        if not _NAME.fullmatch(name):
            raise HeaderError(f"invalid header name {name[:40]!r}")
        prefix = name.encode("ascii") + b": "
        if len(_WRITTEN_NAMES) < _NAME_CACHE_SIZE:
            _WRITTEN_NAMES[name] = prefix
    if not is_header_value(value):
        raise HeaderError(
            f"header {name} must be printable ASCII without CR, LF, NUL or surrounding "
            f"whitespace: {value[:40]!r}"
        )
    return prefix + value.encode("ascii") + b"\r\n"


def is_header_value(value: str) -> bool:
    """Whether ``encode_header`` would accept ``value``."""
    # isprintable() is False for every control character (CR, LF, NUL, tab, DEL) and for many
    # non-ASCII ones; isascii() rules out the rest.
    return value.isascii() and value.isprintable() and value[:1] != " " and value[-1:] != " "


def encode_request_head(method: str, target: str, headers: dict[str, str]) -> bytes:
    """A request head, from the request line to the blank line that ends it."""
    if not _NAME.fullmatch(method) or not _TARGET.fullmatch(target):
        raise HeaderError(f"invalid request line {method[:20]!r} {target[:60]!r}")
    lines = [f"{method} {target} HTTP/1.1\r\n".encode("ascii")]
    lines.extend(encode_header(name, value) for name, value in headers.items())
    lines.append(b"\r\n")
    return b"".join(lines)


def parse_head(head: bytes) -> tuple[bytes, Fields]:
    """Split a head (without its final blank line) into its start line and its fields.

    ``FramingError`` for a bare CR or LF, NUL or another control character, an obs-fold line, a
    field line without a colon, a name that is not a token or whitespace before a colon. Values
    are decoded as UTF-8, keeping undecodable bytes (obs-text) as surrogate escapes.
    """
    bad = _CONTROL.search(head.replace(b"\r\n", b"\t"))
    if bad is not None:
        raise FramingError(f"control character {bad.group()!r} in the head")
    lines = head.split(b"\r\n")
    fields: Fields = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        read = _READ_NAMES.get(name)
        if read is None:
            if not colon or not _NAME_BYTES.fullmatch(name):
                raise FramingError(f"malformed header line {line[:60]!r}")
            read = name.decode("ascii").lower()
            if len(_READ_NAMES) < _NAME_CACHE_SIZE:
                _READ_NAMES[name] = read
        elif not colon:
            raise FramingError(f"malformed header line {line[:60]!r}")
        fields.append((read, value.strip(b" \t").decode("utf-8", "surrogateescape")))
    return lines[0], fields


def parse_request_line(line: bytes) -> tuple[str, str, str]:
    """Method, target and version (``HTTP/1.1`` or ``HTTP/1.0``) of an origin-form request line."""
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        raise FramingError(f"malformed request line {line[:80]!r}")
    method, target, minor = match.groups()
    return method.decode("ascii"), target.decode("ascii"), f"HTTP/1.{minor.decode()}"


def parse_status_line(line: bytes) -> tuple[int, bool]:
    """The status code of a status line and whether it is HTTP/1.1 (else 1.0)."""
    match = _STATUS_LINE.fullmatch(line)
    if match is None:
        raise FramingError(f"not an HTTP/1.1 status line: {line[:80]!r}")
    return int(match.group(2)), match.group(1) == b"1"


def content_length(fields: Fields) -> int | None:
    """The message's ``Content-Length``, None when absent.

    ``FramingError`` when it is repeated (even with equal values), is not plain digits, or comes
    with ``Transfer-Encoding``: those are the ambiguities request smuggling lives on.
    """
    found: str | None = None
    chunked = False
    for name, value in fields:
        if name == "content-length":
            if found is not None:
                raise FramingError("Content-Length given more than once")
            found = value
        elif name == "transfer-encoding":
            chunked = True
    if found is None:
        return None
    if chunked:
        raise FramingError("both Content-Length and Transfer-Encoding")
    if not _DIGITS.fullmatch(found):
        raise FramingError(f"invalid Content-Length {found[:20]!r}")
    return int(found)
