"""Cron's next fire time against a brute-force reference: random expressions, every minute of a
short window near month ends, leap days and DST changes, in zones with 1-hour and 30-minute shifts.

The reference knows nothing of the parser or the field-wise search: each random field is drawn
with the set of values it means, the day rules (L, LW, nW, dL, d#n) are restated from their
definitions, and time is walked one UTC minute at a time, so a wall time a DST change skips never
comes up and one it repeats is taken at its first pass only (`fold == 0`), as EventBridge does.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from kfaas.schedule_expressions import parse_expression, time_zone

UTC = datetime.UTC
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"]
# Moments worth starting near (UTC): DST changes of those zones, month ends, a leap day.
NEAR = [
    "2027-03-14T06:00",  # New York: spring forward
    "2027-11-07T05:00",  # New York: fall back
    "2027-03-28T00:30",  # Berlin: spring forward
    "2027-10-31T00:30",  # Berlin: fall back
    "2027-04-03T14:30",  # Lord Howe: 30 minutes back
    "2027-10-02T15:30",  # Lord Howe: 30 minutes forward
    "2028-02-28T12:00",  # leap day
    "2027-12-31T12:00",  # a year's end
    "2027-04-30T12:00",  # a 30-day month's end
]
WINDOW = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]


def _cycle(first: int, last: int, low: int, high: int) -> list[int]:
    """first..last, wrapping past high back to low (`22-2` is 22, 23, 0, 1, 2)."""
    if first <= last:
        return list(range(first, last + 1))
    return list(range(first, high + 1)) + list(range(low, last + 1))


@st.composite
def term(draw: st.DrawFn, low: int, high: int, names: list[str] | None, steps: bool) -> Field:
    def spell(value: int) -> str:
        use_name = names is not None and draw(st.booleans())
        return names[value - low] if names is not None and use_name else str(value)

    shapes = ["*", "n", "a-b", "a/s", "*/s", "a-b/s"] if steps else ["*", "n", "a-b"]
    shape = draw(st.sampled_from(shapes))
    first, last = draw(st.integers(low, high)), draw(st.integers(low, high))
    step = draw(st.integers(1, high - low + 1))
    if shape == "*":
        return Field("*", frozenset(range(low, high + 1)))
    if shape == "n":
        return Field(spell(first), frozenset({first}))
    if shape == "a-b":
        return Field(f"{spell(first)}-{spell(last)}", frozenset(_cycle(first, last, low, high)))
    if shape == "a/s":
        return Field(f"{first}/{step}", frozenset(range(first, high + 1, step)))
    if shape == "*/s":
        return Field(f"*/{step}", frozenset(range(low, high + 1, step)))
    values = _cycle(first, last, low, high)[::step]
    return Field(f"{first}-{last}/{step}", frozenset(values))


@st.composite
def field(
    draw: st.DrawFn, low: int, high: int, names: list[str] | None = None, steps: bool = True
) -> Field:
    # AWS takes `/` in every field but day-of-week.
    terms = draw(st.lists(term(low, high, names, steps), min_size=1, max_size=3))
    return Field(",".join(t.text for t in terms), frozenset().union(*(t.values for t in terms)))


DayRule = Callable[[datetime.date], bool]


def _length(day: datetime.date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _is_weekday(day: datetime.date) -> bool:
    return day.isoweekday() <= 5


def _nearest_weekday(day: datetime.date, n: int) -> bool:
    # The Monday-to-Friday day of the month closest to day n (none when n is past the month).
    if n > _length(day):
        return False
    weekdays = [d for d in range(1, _length(day) + 1) if _is_weekday(day.replace(day=d))]
    return day.day == min(weekdays, key=lambda d: abs(d - n))


def _aws_weekday(day: datetime.date) -> int:
    return day.isoweekday() % 7 + 1  # SUN = 1 … SAT = 7


@st.composite
def day_of_month(draw: st.DrawFn) -> tuple[str, DayRule]:
    shape = draw(st.sampled_from(["field", "L", "LW", "nW"]))
    if shape == "L":
        return "L", lambda day: day.day == _length(day)
    if shape == "LW":
        return "LW", lambda day: _nearest_weekday(day, _length(day))
    if shape == "nW":
        n = draw(st.integers(1, 31))
        return f"{n}W", lambda day: _nearest_weekday(day, n)
    days = draw(field(1, 31))
    return days.text, lambda day: day.day in days.values


@st.composite
def day_of_week(draw: st.DrawFn) -> tuple[str, DayRule]:
    shape = draw(st.sampled_from(["field", "L", "dL", "d#n"]))
    weekday = draw(st.integers(1, 7))
    if shape == "L":
        return "L", lambda day: _aws_weekday(day) == 7
    if shape == "dL":
        return (
            f"{weekday}L",
            lambda day: _aws_weekday(day) == weekday and day.day + 7 > _length(day),
        )
    if shape == "d#n":
        nth = draw(st.integers(1, 5))

        def is_nth(day: datetime.date) -> bool:
            same = [d for d in range(1, day.day + 1) if _aws_weekday(day.replace(day=d)) == weekday]
            return _aws_weekday(day) == weekday and len(same) == nth

        return f"{WEEKDAYS[weekday - 1]}#{nth}", is_nth
    days = draw(field(1, 7, WEEKDAYS, steps=False))
    return days.text, lambda day: _aws_weekday(day) in days.values


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    day: DayRule
    months: frozenset[int]

    def matches(self, wall: datetime.datetime) -> bool:
        return (
            wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.month in self.months
            and self.day(wall.date())
        )


@st.composite
def crons(draw: st.DrawFn) -> Cron:
    # Minutes and hours often "*", so that most windows hold ticks.
    minutes = draw(st.one_of(st.just(Field("*", frozenset(range(60)))), field(0, 59)))
    hours = draw(st.one_of(st.just(Field("*", frozenset(range(24)))), field(0, 23)))
    months = draw(st.one_of(st.just(Field("*", frozenset(range(1, 13)))), field(1, 12, MONTHS)))
    if draw(st.booleans()):
        dom, day = draw(day_of_month())
        dow = "?"
    else:
        dow, day = draw(day_of_week())
        dom = "?"
    text = f"cron({minutes.text} {hours.text} {dom} {months.text} {dow} *)"
    return Cron(text, minutes.values, hours.values, day, months.values)


def reference(cron: Cron, after: datetime.datetime, zone: str) -> list[datetime.datetime]:
    """Every tick in (after, after + WINDOW], one UTC minute at a time."""
    tz = time_zone(zone)
    minute = after.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    found = []
    while minute <= after + WINDOW:
        wall = minute.astimezone(tz)
        if wall.fold == 0 and cron.matches(wall.replace(tzinfo=None)):
            found.append(minute)
        minute += datetime.timedelta(minutes=1)
    return found


# Near a moment above, or anywhere in a few years.
starts = st.one_of(
    st.sampled_from(NEAR).map(datetime.datetime.fromisoformat),
    st.datetimes(datetime.datetime(2026, 1, 1), datetime.datetime(2032, 12, 31)),
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    cron=crons(),
    zone=st.sampled_from(ZONES),
    start=starts,
    shift=st.integers(-36 * 3600, 12 * 3600),
)
def test_next_after_agrees_with_the_minute_by_minute_reference(
    cron: Cron, zone: str, start: datetime.datetime, shift: int
) -> None:
    after = start.replace(tzinfo=UTC) + datetime.timedelta(seconds=shift)
    expression, tz = parse_expression(cron.text), time_zone(zone)
    chained: list[datetime.datetime] = []
    tick = expression.next_after(after, tz=tz, anchor=after)
    while tick is not None and tick <= after + WINDOW:
        chained.append(tick)
        tick = expression.next_after(tick, tz=tz, anchor=after)
    assert chained == reference(cron, after, zone), cron.text
