"""Hostile constants the fuzz mixer draws from, and the rules that say a request is malformed.

What hypothesis would rarely hit by chance is written down here: header values that inject a
header or a whole request, names a parser must refuse, request lines of garbage, conflicting
framing. ``valid_field`` and ``valid_request_line`` follow RFC 9110/9112: a request that breaks
them may be refused before its body is read, so the fuzz suite accepts a close as its answer.
"""

from __future__ import annotations

HOSTILE_VALUES = [
    b"",
    b" ",
    b"a\r\nX-Injected: 1",
    b"a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x",
    b"a\nb",
    b"a\rb",
    b"\x00",
    b"a\x00b",
    b"\xff\xfe\xfd",
    "日本語".encode(),
    b"\x7f",
    b"x" * 8190,
    b"y" * 9000,
    b"z" * 70000,
]
HOSTILE_NAMES = [b"", b"Bad Name", b"X:Y", b"\xffname", "名前".encode(), b"X\x00Y", b" Leading"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "FOO"]
BAD_TRACE_IDS = ["Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", "日本", "\x01", "x" * 5000]
REQUEST_LINES = [
    b"",
    b"GET",
    b"GET / HTTP/1.1 extra",
    b"GET / HTTP/9.9",
    b"GET / HTTP/1.1\x00",
    b"GET http://example.com/ HTTP/1.1",
    b"PRI * HTTP/2.0\r\n\r\nSM",
    b"GET /" + b"a" * 100_000 + b" HTTP/1.1",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"GET\t/\tHTTP/1.1",
    b"G\xc3\xa9T / HTTP/1.1",
]
BAD_FRAMING = [
    [b"Content-Length: 5", b"Content-Length: 50"],
    [b"Content-Length: -1"],
    [b"Content-Length: +5"],
    [b"Content-Length: 99999999999999999999999"],
    [b"Content-Length: 5", b"Transfer-Encoding: chunked"],
    [b"Transfer-Encoding: chunked, identity"],
    [b"Transfer-Encoding: xchunked"],
    [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
    [b"Transfer-Encoding : chunked"],
    [b"X-Folded: a", b" folded continuation"],
    [b"NoColonHere"],
]


TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def valid_field(name: bytes, value: bytes) -> bool:
    """RFC 9110: a token name, a value of visible ASCII, obs-text, space and tab (no CTLs)."""
    return (
        bool(name)
        and all(c in TCHAR for c in name)
        and all((c >= 0x20 and c != 0x7F) or c == 0x09 for c in value)
    )


def valid_request_line(line: bytes) -> bool:
    """A method token, one target of visible ASCII, HTTP/1.1, single spaces between them.

    A server may refuse anything else before reading the body and close (the client then sees a
    reset instead of the 400), so such requests are judged as malformed."""
    parts = line.split(b" ")
    return (
        len(parts) == 3
        and bool(parts[0])
        and all(c in TCHAR for c in parts[0])
        and all(0x21 <= c < 0x7F for c in parts[1])
        and parts[2] == b"HTTP/1.1"
    )
