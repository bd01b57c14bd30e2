"""EventBridge Scheduler's schedule expressions: `rate(...)`, `cron(...)` and `at(...)`, and when
each fires (ADR 026).

Pure: parsing and the next fire time after a moment, in the schedule's time zone. The scheduler
(``kfaas.scheduler``), the Schedule model's validation and the CRD's printer column of the next
fire time all use this one definition, so an expression means the same everywhere. The cron fields
themselves live in ``kfaas.schedule_cron``; this module reads its wall times in a time zone.

Time zones and DST, as EventBridge Scheduler documents them: a `cron` wall time that a change to
summer time skips (02:30 on the night clocks jump from 02:00 to 03:00) does not fire that day; a
wall time that the change back repeats (01:30 on the night 02:00 goes back to 01:00) fires once, at
its first occurrence. A `rate` is a duration, not a wall-clock step: `rate(1 day)` is 24 hours
whatever DST does. An `at` fires once even when its wall time falls in a skipped hour: it is read
with the offset in force before the change (RFC 5545's rule, and Python's `fold=0`), so
`at(2027-03-14T02:30:00)` in America/New_York fires at 03:30 EDT.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Final, Literal
from zoneinfo import ZoneInfo, available_timezones

from .schedule_cron import CronError, CronFields, parse_cron

Kind = Literal["rate", "cron", "at"]

# EventBridge's units, and kfaas's `second(s)` (ADR 026: tests and demos fire every few seconds).
_UNITS: Final = {
    "second": datetime.timedelta(seconds=1),
    "minute": datetime.timedelta(minutes=1),
    "hour": datetime.timedelta(hours=1),
    "day": datetime.timedelta(days=1),
}
_WRAPPED = re.compile(r"(rate|cron|at)\((.*)\)", re.DOTALL)
_RATE = re.compile(r"([^ ]+) ([^ ]+)")
_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
_FORMS: Final = "rate(value unit), cron(fields) or at(yyyy-mm-ddThh:mm:ss)"


class ScheduleExpressionError(ValueError):
    """An expression that is not valid; ``str()`` names the part that is wrong and the rule."""


@dataclass(frozen=True)
class ScheduleExpression:
    """A parsed expression; ``text`` is what the user wrote."""

    text: str
    kind: Kind

    def __post_init__(self) -> None:
        plan = _plan(self.text)
        if _kind(plan) != self.kind:
            raise ScheduleExpressionError(
                f"{self.text}: is a {_kind(plan)} expression, not {self.kind}"
            )

    def next_after(
        self, after: datetime.datetime, *, tz: ZoneInfo, anchor: datetime.datetime
    ) -> datetime.datetime | None:
        """The first fire time strictly after ``after`` (an aware datetime), as an aware UTC
        datetime; None when the expression fires no more (an `at` in the past, a cron's last year).

        ``anchor`` is when a rate schedule's period starts (its start date, else its creation):
        `rate(5 minutes)` fires at anchor, anchor + 5 min, …. Cron and `at` read their fields in
        ``tz``; a wall time that a DST change skips or repeats fires as the module docstring says
        (skipped: not that day; repeated: once, the first time).
        """
        if after.tzinfo is None or anchor.tzinfo is None:
            # A naive moment would be read in the host's zone: a tick off by hours, silently.
            raise ValueError("next_after takes aware datetimes (after, anchor)")
        plan = _plan(self.text)
        if isinstance(plan, datetime.timedelta):
            return _next_rate(plan, after, anchor)
        if isinstance(plan, datetime.datetime):
            try:
                tick = plan.replace(tzinfo=tz, fold=0).astimezone(datetime.UTC)
            except OverflowError:  # past year 9999 in UTC: never reached
                return None
            return tick if tick > after else None
        return _next_cron(plan, after, tz)


def parse_expression(text: str) -> ScheduleExpression:
    """``text`` parsed, or ``ScheduleExpressionError`` saying what is wrong."""
    return ScheduleExpression(text, _kind(_plan(text)))


_Plan = datetime.timedelta | datetime.datetime | CronFields


def _kind(plan: _Plan) -> Kind:
    if isinstance(plan, datetime.timedelta):
        return "rate"
    return "at" if isinstance(plan, datetime.datetime) else "cron"


@functools.lru_cache(maxsize=1024)
def _plan(text: str) -> _Plan:
    """What ``text`` means: a rate's period, an `at`'s wall time, or a cron's fields."""
    wrapped = _WRAPPED.fullmatch(text)
    if wrapped is None:
        raise ScheduleExpressionError(f"{text}: an expression is {_FORMS}")
    kind, inside = wrapped.groups()
    if kind == "rate":
        return _rate(text, inside)
    if kind == "at":
        return _at(text, inside)
    try:
        return parse_cron(inside)
    except CronError as exc:
        raise ScheduleExpressionError(f"{text}: {exc}") from None


def _rate(text: str, inside: str) -> datetime.timedelta:
    parts = _RATE.fullmatch(inside)
    if parts is None:
        raise ScheduleExpressionError(f"{text}: a rate is rate(value unit), e.g. rate(5 minutes)")
    value_text, unit = parts.groups()
    if not value_text.isascii() or not value_text.isdigit() or int(value_text[:20]) < 1:
        raise ScheduleExpressionError(f"{text}: the value must be a positive whole number")
    if len(value_text) > 12:
        raise ScheduleExpressionError(f"{text}: the period is too long")
    value = int(value_text)
    singular = unit.removesuffix("s")
    if singular not in _UNITS:
        raise ScheduleExpressionError(
            f'{text}: unit "{unit}" is not one of minute(s), hour(s), day(s), second(s)'
        )
    if value == 1 and unit != singular:
        raise ScheduleExpressionError(f'{text}: unit must be "{singular}" when the value is 1')
    if value != 1 and unit == singular:
        raise ScheduleExpressionError(f'{text}: unit must be "{unit}s" when the value is not 1')
    try:
        return value * _UNITS[singular]
    except OverflowError:
        raise ScheduleExpressionError(f"{text}: the period is too long") from None


def _at(text: str, inside: str) -> datetime.datetime:
    if _AT.fullmatch(inside) is None:
        raise ScheduleExpressionError(f"{text}: the time must be yyyy-mm-ddThh:mm:ss")
    try:
        return datetime.datetime.fromisoformat(inside)
    except ValueError as exc:
        raise ScheduleExpressionError(f"{text}: {inside} is not a date and time ({exc})") from None


def _next_rate(
    period: datetime.timedelta, after: datetime.datetime, anchor: datetime.datetime
) -> datetime.datetime | None:
    # Ticks are anchor + k * period for k >= 0: exact, since timedeltas divide as integers.
    k = 0 if after < anchor else (after - anchor) // period + 1
    try:
        return (anchor + k * period).astimezone(datetime.UTC)
    except OverflowError:
        return None


def _next_cron(
    fields: CronFields, after: datetime.datetime, tz: ZoneInfo
) -> datetime.datetime | None:
    # The next whole minute on the wall clock is after `after`, except when `after` lies in the
    # second pass of a repeated hour: then the first few candidates map to instants before it.
    local = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    start = local + datetime.timedelta(minutes=1)
    while (wall := fields.next_wall(start)) is not None:
        tick = _instant(wall, tz)
        if tick is not None and tick > after:
            return tick
        start = wall + datetime.timedelta(minutes=1)
    return None


def _instant(wall: datetime.datetime, tz: ZoneInfo) -> datetime.datetime | None:
    """When the clocks of ``tz`` first read ``wall``, in UTC; None if they never do (DST gap)."""
    tick = wall.replace(tzinfo=tz, fold=0).astimezone(datetime.UTC)
    if tick.astimezone(tz).replace(tzinfo=None) != wall:
        return None
    return tick


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (`ScheduleExpressionTimezone`), or ScheduleExpressionError."""
    # The list, not ZoneInfo alone: ZoneInfo also opens other files under the zoneinfo folders
    # (`right/UTC` with leap seconds, `posixrules`, `zone.tab`), which EventBridge refuses.
    names = _zone_names()
    if name not in names:
        near = [known for known in names if known.lower() == name.strip().lower()]
        hint = f'; did you mean "{near[0]}"?' if near else ' (e.g. "Europe/Berlin", "UTC")'
        raise ScheduleExpressionError(f'time zone "{name}" is not an IANA time zone name{hint}')
    return ZoneInfo(name)


@functools.cache
def _zone_names() -> frozenset[str]:
    # The system's zoneinfo folder, else the tzdata package (a dependency, for slim images).
    return frozenset(available_timezones())


def flexible_offset(
    identity: str, tick: datetime.datetime, window_minutes: int
) -> datetime.timedelta:
    """Where in a flexible window of ``window_minutes`` the ``tick`` of schedule ``identity`` (its
    uid) fires: spread like EventBridge's, but the same on every scheduler replica (a hash, not a
    random draw), so replicas agree on when a tick is due.

    Whole seconds in [0, window): the first 8 bytes of sha256(identity, tick in UTC) modulo the
    window's seconds, so schedules sharing a tick spread over the window instead of firing at once.
    """
    if window_minutes < 1:
        raise ValueError(f"a flexible window is at least 1 minute, got {window_minutes}")
    moment = tick.astimezone(datetime.UTC).isoformat()
    digest = hashlib.sha256(f"{identity}\n{moment}".encode()).digest()
    return datetime.timedelta(seconds=int.from_bytes(digest[:8], "big") % (window_minutes * 60))
