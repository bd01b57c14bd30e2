"""Requests aiohttp refuses before any handler runs, logged as one warning line, rate-limited.

aiohttp answers a malformed request (bad request line, invalid header, broken framing) with 400
itself and logs it on ``aiohttp.server`` at error level with a full traceback: a flood of junk
becomes a flood of tracebacks (issue 8 counted 9,595 in 20 s), which costs disk, CPU and the
operator's attention. The same goes for a client that goes away before its answer is written
(aiohttp logs the failed write as an error). What the client did is not the gateway's error, so
:class:`Refusals` rewrites such a record into one warning line naming the peer and the reason, and
lets at most one through per interval, counting the ones it held back. Records about anything else
pass unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"
_REASON_CHARACTERS = 200


class Refusals(logging.Filter):
    """A filter for ``aiohttp.server``: refused requests as rate-limited one-line warnings."""

    def __init__(
        self, interval_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._next_report = float("-inf")
        self._held_back = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError | ConnectionError):
            return True
        if record.levelno < logging.WARNING:
            return True
        now = self._clock()
        if now < self._next_report:
            self._held_back += 1
            return False
        self._next_report = now + self.interval_seconds
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        held_back, self._held_back = self._held_back, 0
        if isinstance(error, HttpProcessingError):
            record.msg = "refused a malformed request from %s with %s: %s%s"
            record.args = (peer, error.code, one_line(error.message), _held_back_note(held_back))
        else:
            record.msg = "a client (%s) went away before its answer was written: %s%s"
            record.args = (
                peer,
                one_line(f"{type(error).__name__}: {error}"),
                _held_back_note(held_back),
            )
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def one_line(text: object) -> str:
    """``text`` on one line: whitespace runs (CR, LF included) become one space, then cut short."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _REASON_CHARACTERS else flat[:_REASON_CHARACTERS] + "..."


def _held_back_note(count: int) -> str:
    return f" ({count} more since the last report)" if count else ""


def install(interval_seconds: float = 10.0) -> Refusals:
    """Add the filter to ``aiohttp.server`` once per process; returns the one in place."""
    logger = logging.getLogger(SERVER_LOGGER)
    for existing in logger.filters:
        if isinstance(existing, Refusals):
            return existing
    refusals = Refusals(interval_seconds)
    logger.addFilter(refusals)
    return refusals
