"""EventBridge Scheduler's schedule expressions: `rate(...)`, `cron(...)` and `at(...)`, and when
each fires (ADR 026).

Pure: parsing and the next fire time after a moment, in the schedule's time zone. The scheduler
(``kfaas.scheduler``), the Schedule model's validation and the CRD's printer column of the next
fire time all use this one definition, so an expression means the same everywhere.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo


class ScheduleExpressionError(ValueError):
    """An expression that is not valid; ``str()`` names the part that is wrong and the rule."""


@dataclass(frozen=True)
class ScheduleExpression:
    """A parsed expression; ``text`` is what the user wrote."""

    text: str
    kind: Literal["rate", "cron", "at"]

    def next_after(
        self, after: datetime.datetime, *, tz: ZoneInfo, anchor: datetime.datetime
    ) -> datetime.datetime | None:
        """The first fire time strictly after ``after`` (an aware datetime), as an aware UTC
        datetime; None when the expression fires no more (an `at` in the past, a cron's last year).

        ``anchor`` is when a rate schedule's period starts (its start date, else its creation):
        `rate(5 minutes)` fires at anchor, anchor + 5 min, …. Cron and `at` read their fields in
        ``tz``; a wall time that a DST change skips or repeats fires once.
        """
        raise NotImplementedError  # filled in by the expressions slice


def parse_expression(text: str) -> ScheduleExpression:
    """``text`` parsed, or ``ScheduleExpressionError`` saying what is wrong."""
    raise NotImplementedError  # filled in by the expressions slice


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (`ScheduleExpressionTimezone`), or ScheduleExpressionError."""
    raise NotImplementedError  # filled in by the expressions slice


def flexible_offset(
    identity: str, tick: datetime.datetime, window_minutes: int
) -> datetime.timedelta:
    """Where in a flexible window of ``window_minutes`` the ``tick`` of schedule ``identity`` (its
    uid) fires: spread like EventBridge's, but the same on every scheduler replica (a hash, not a
    random draw), so replicas agree on when a tick is due."""
    raise NotImplementedError  # filled in by the expressions slice
