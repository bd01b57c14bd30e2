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
# Printable ASCII, inner spaces and tabs allowed, none at the ends (they would not round-trip).
_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\t ]*[\x21-\x7e])*)?")
_FIELD_LINE = re.compile(
    rb"(" + _TOKEN.encode() + rb"):[\t ]*((?:[\x21-\x7e\x80-\xff](?:[\t ]*[\x21-\x7e\x80-\xff])*)?)"
    rb"[\t ]*"
)
_REQUEST_LINE = re.compile(rb"(" + _TOKEN.encode() + rb") (/[\x21-\x7e]*) HTTP/1\.([01])")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9]) [\t \x21-\x7e\x80-\xff]*")
_TARGET = re.compile(r"/[\x21-\x7e]*")
_DIGITS = re.compile(r"[0-9]{1,18}")


class HeaderError(ValueError):
    """A header name or value that cannot be written into an HTTP/1.1 head as it is."""


class FramingError(ValueError):
    """A message head that is not exactly one well-formed HTTP/1.1 head."""


Fields = list[tuple[str, str]]
"""Header fields in order; names lower-cased, values with the surrounding whitespace removed."""


def encode_header(name: str, value: str) -> bytes:
    """``Name: value\\r\\n`` as bytes; ``HeaderError`` unless both can be written as they are."""
    if not _NAME.fullmatch(name):
        raise HeaderError(f"invalid header name {name[:40]!r}")
    if not _VALUE.fullmatch(value):
        raise HeaderError(
            f"header {name} must be printable ASCII without CR, LF, NUL or surrounding "
            f"whitespace: {value[:40]!r}"
        )
    return b"%s: %s\r\n" % (name.encode("ascii"), value.encode("ascii"))


def is_header_value(value: str) -> bool:
    """Whether ``encode_header`` would accept ``value``."""
    return _VALUE.fullmatch(value) is not None


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
    malformed field line or whitespace before a colon. Values are decoded as UTF-8, keeping
    undecodable bytes as surrogate escapes.
    """
    lines = head.split(b"\r\n")
    fields: Fields = []
    for line in lines[1:]:
        match = _FIELD_LINE.fullmatch(line)
        if match is None:
            raise FramingError(f"malformed header line {line[:60]!r}")
        name, value = match.groups()
        fields.append((name.decode("ascii").lower(), value.decode("utf-8", "surrogateescape")))
    start = lines[0]
    if b"\r" in start or b"\n" in start or b"\0" in start:
        raise FramingError("control character in the start line")
    return start, fields


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
    values = [value for name, value in fields if name == "content-length"]
    if not values:
        return None
    if len(values) > 1:
        raise FramingError("Content-Length given more than once")
    if any(name == "transfer-encoding" for name, _ in fields):
        raise FramingError("both Content-Length and Transfer-Encoding")
    if not _DIGITS.fullmatch(values[0]):
        raise FramingError(f"invalid Content-Length {values[0][:20]!r}")
    return int(values[0])
