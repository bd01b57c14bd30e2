"""JSON text checked and re-encoded without recursion, for what clients send the gateway.

Lambda accepts any valid JSON payload up to the size limit whatever its depth, and refuses the rest
with ``InvalidRequestContentException``. Python's ``json`` parser recurses once per nesting level
and raises ``RecursionError`` around depth 1,000, which would turn a valid payload into a 500; so
:func:`check` tries the fast C parser first and falls back to an iterative scanner (runs of
brackets are consumed in one step) only when nesting is that deep. JSON means RFC 8259 here: no
``NaN``/``Infinity``, no byte order mark. :func:`compact_ascii` rewrites checked JSON text without
insignificant whitespace and with every non-ASCII character as a ``\\u`` escape, so it can travel
in an HTTP header (the client context) and parse back to the same value; numbers keep their
spelling.
"""

from __future__ import annotations

import json
import re

_WS = r"[ \t\n\r]*"
_STRING = r'"(?:[^"\\\x00-\x1f]+|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_SCALAR = re.compile(_WS + "(?:" + _STRING + "|" + _NUMBER + "|true|false|null)" + _WS)
_OPEN_ARRAYS = re.compile(r"(?:\[" + _WS + ")+")
_OPEN_OBJECT = re.compile(r"\{" + _WS + "(})?")
_KEY = re.compile(_WS + _STRING + _WS + ":" + _WS)
_AFTER_VALUE = re.compile(_WS + r"(?:(,)|(\]" + _WS + r")+|(}))" + _WS)
_EMPTY_ARRAY = re.compile(r"\]" + _WS)
_STRING_OR_SPACE = re.compile(r'"(?:[^"\\]+|\\.)*"|[ \t\n\r]+')
_NON_ASCII = re.compile(r"[^\x00-\x7e]")  # DEL too: a control character in a header


class InvalidJson(ValueError):
    """The text is not one RFC 8259 JSON value."""


def check(text: str) -> None:
    """``InvalidJson`` unless ``text`` is one JSON value (surrounding whitespace allowed)."""
    try:
        json.loads(text, parse_int=str, parse_float=str, parse_constant=_refuse_constant)
    except RecursionError:
        _check_deep(text)
    except ValueError as exc:
        raise InvalidJson(str(exc)) from None


def compact_ascii(text: str) -> str:
    """Checked JSON text without insignificant whitespace, non-ASCII characters escaped."""
    return _STRING_OR_SPACE.sub(_compact_token, text)


def _compact_token(match: re.Match[str]) -> str:
    token = match.group()
    if token[0] != '"':
        return ""
    return _NON_ASCII.sub(_escape, token)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_deep(text: str) -> None:
    """The same check as a loop over tokens with an explicit stack (``[`` or ``{`` per level)."""
    stack = bytearray()
    position = len(text) - len(text.lstrip(" \t\n\r"))
    end = len(text)
    while True:
        # A value starts here: open containers, then one scalar or an empty container.
        while True:
            match = _OPEN_ARRAYS.match(text, position)
            if match:
                position = match.end()
                stack += b"[" * match.group().count("[")
                empty = _EMPTY_ARRAY.match(text, position)
                if empty is None:
                    continue
                position = empty.end()
                stack.pop()
                break
            match = _OPEN_OBJECT.match(text, position)
            if match:
                position = match.end()
                if match.group(1):
                    break
                stack += b"{"
                position = _expect(_KEY, text, position, "an object key")
                continue
            position = _expect(_SCALAR, text, position, "a value")
            break
        # After a value: a comma, or closing brackets, until the outermost value is complete.
        while True:
            if not stack:
                if position != end:
                    raise InvalidJson(f"extra data at character {position}")
                return
            match = _AFTER_VALUE.match(text, position)
            if match is None:
                raise InvalidJson(f"expected ',' or a closing bracket at character {position}")
            position = match.end()
            if match.group(1):
                if stack[-1] == ord("{"):
                    position = _expect(_KEY, text, position, "an object key")
                break
            if match.group(3):
                if stack[-1] != ord("{"):
                    raise InvalidJson(f"unexpected '}}' at character {match.start(3)}")
                stack.pop()
                continue
            closing = match.group().count("]")
            if not stack.endswith(b"[" * closing):
                raise InvalidJson(f"unexpected ']' near character {position}")
            del stack[-closing:]


def _expect(pattern: re.Pattern[str], text: str, position: int, what: str) -> int:
    match = pattern.match(text, position)
    if match is None:
        raise InvalidJson(f"expected {what} at character {position}")
    return match.end()
