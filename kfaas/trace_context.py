"""Trace headers (W3C ``traceparent``, X-Ray ``X-Amzn-Trace-Id``) and the sampling of the traces
the platform starts itself, as pure functions.

``spec.tracing.mode: Active`` makes the gateway start a trace for an invocation that arrives
without one, sampled as X-Ray's default rule does: a reservoir of the first invocations each second
and a fixed fraction of the rest (ADR 030). The gateway (the trace's start), the runtime (the
handler's ``_X_AMZN_TRACE_ID``) and the tests read the headers through these functions only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
# X-Ray's trace id: `1-<8 hex: epoch seconds>-<24 hex>`, the W3C trace id split after 8 digits.
_XRAY_ROOT = re.compile(r"^1-([0-9a-f]{8})-([0-9a-f]{24})$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")

DEFAULT_SAMPLE_RATE = 0.05
DEFAULT_RESERVOIR_PER_SECOND = 1


def parse_traceparent(value: str) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) of a W3C traceparent, or None if it is malformed."""
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or match.group(2) == "0" * 32 or match.group(3) == "0" * 16:
        return None
    return match.group(2), match.group(3), bool(int(match.group(4), 16) & 1)


def xray_header(trace_id: str, span_id: str, sampled: bool) -> str:
    """The ``X-Amzn-Trace-Id`` form of a W3C trace: the same trace id, split as X-Ray splits it."""
    return f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={span_id};Sampled={int(sampled)}"


@dataclass(frozen=True)
class XrayContext:
    """What an ``X-Amzn-Trace-Id`` says of the trace to continue."""

    trace_id: str
    """32 hex digits, the W3C trace id of the same trace."""
    parent_id: str | None
    sampled: bool | None
    """None: the caller left the decision to the receiver (``Sampled=?`` or no ``Sampled``)."""


def parse_xray(value: str | None) -> XrayContext | None:
    """The trace an X-Ray header names, or None when it names none (no or a malformed Root)."""
    if not value:
        return None
    fields: dict[str, str] = {}
    for part in value.split(";"):
        key, equals, field_value = part.strip().partition("=")
        if equals and key not in fields:
            fields[key] = field_value
    root = _XRAY_ROOT.match(fields.get("Root", "").lower())
    if root is None or root.group(1) + root.group(2) == "0" * 32:
        return None  # all zeros: W3C's invalid trace id
    parent = fields.get("Parent", "").lower()
    sampled = {"1": True, "0": False}.get(fields.get("Sampled", ""))
    return XrayContext(
        trace_id=root.group(1) + root.group(2),
        parent_id=parent if _HEX16.match(parent) and parent != "0" * 16 else None,
        sampled=sampled,
    )


class RootSampler:
    """Whether a trace the platform starts is sampled: X-Ray's default rule.

    The first ``reservoir_per_second`` decisions of each wall-clock second are sampled, then a
    ``rate`` fraction of the others. Per process: with N gateway replicas the reservoir is N per
    second (X-Ray shares it through its service; kfaas has none to share it through).
    """

    def __init__(
        self,
        rate: float = DEFAULT_SAMPLE_RATE,
        reservoir_per_second: int = DEFAULT_RESERVOIR_PER_SECOND,
        *,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] | None = None,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"a sample rate is a fraction from 0 to 1, not {rate}")
        if reservoir_per_second < 0:
            raise ValueError(
                f"a reservoir is 0 or more traces a second, not {reservoir_per_second}"
            )
        self.rate = rate
        self.reservoir_per_second = reservoir_per_second
        self._clock = clock
        if draw is None:
            import random  # here: the runtime imports this module at start and never samples

            draw = random.random
        self._draw = draw
        self._second = -1
        self._taken = 0

    def sample(self) -> bool:
        second = int(self._clock())
        if second != self._second:
            self._second, self._taken = second, 0
        if self._taken < self.reservoir_per_second:
            self._taken += 1
            return True
        return self._draw() < self.rate
