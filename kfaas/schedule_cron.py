"""The `cron(...)` fields of EventBridge Scheduler, parsed, and the next wall-clock minute named.

AWS's cron is Quartz's without seconds: six fields (minutes, hours, day-of-month, month,
day-of-week, year), day-of-week 1-7 with 1 = SUN, one of the two day fields `?`, and the day
wildcards `L`, `W` and `#`. This module knows only wall times (naive datetimes); reading them in a
time zone, with its DST changes, is ``kfaas.schedule_expressions``' job, which also prefixes the
errors raised here (``CronError``) with the expression. The search walks the fields from the year
down, so the next tick a decade away costs a few hundred steps, not five million minutes.
"""

from __future__ import annotations

import calendar
import datetime
import re
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

FIELD_NAMES: Final = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS: Final = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NUMBER = re.compile(r"[0-9]{1,4}")


class CronError(ValueError):
    """A cron field that is not valid; the text names the field, the term and the rule."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    wildcards: str
    names: tuple[str, ...] = ()
    # Whether `22-2` wraps around (22, 23, 0, 1, 2), as AWS's `0/30 20-2 ? * MON-FRI *` does.
    cyclic: bool = True

    def describe(self) -> str:
        values = f"{self.low}-{self.high}"
        if self.names:
            values += f" or {self.names[0]}-{self.names[-1]}"
        return f"{self.name} takes {values} with the wildcards {' '.join(self.wildcards)}"

    def value(self, term: str, whole: str) -> int:
        upper = term.upper()
        if upper in self.names:
            return self.low + self.names.index(upper)
        if not _NUMBER.fullmatch(term):
            raise CronError(f'{self.name} "{whole}" is not valid: {self.describe()}')
        number = int(term)
        if not self.low <= number <= self.high:
            raise CronError(f'{self.name} "{whole}" is out of range {self.low}-{self.high}')
        return number

    def values(self, term: str) -> set[int]:
        """The values of one comma-separated term without a day wildcard: `*`, `5`, `1-5`,
        `1/10`, `*/10`, `1-30/10`, `MON-FRI`."""
        base, slash, step_text = term.partition("/")
        if slash and "/" not in self.wildcards:
            raise CronError(f'{self.name} "{term}" is not valid: {self.describe()}')
        step = 1
        if slash:
            if not _NUMBER.fullmatch(step_text) or not 1 <= int(step_text) <= self.span:
                raise CronError(
                    f'{self.name} "{term}": the increment after / must be 1-{self.span}'
                )
            step = int(step_text)
        if base == "*":
            first, last = self.low, self.high
        elif "-" in base:
            start_text, _, end_text = base.partition("-")
            first, last = self.value(start_text, term), self.value(end_text, term)
            if last < first and not self.cyclic:
                raise CronError(f'{self.name} "{term}": the range ends before it starts')
        else:
            first = self.value(base, term)
            # `5/15` runs from 5 to the end of the field, as Quartz reads it.
            last = self.high if slash else first
        count = (last - first) % self.span + 1
        return {
            self.low + (first - self.low + offset) % self.span for offset in range(0, count, step)
        }

    @property
    def span(self) -> int:
        return self.high - self.low + 1


_MINUTES = _Field("minutes", 0, 59, ",-*/")
_HOURS = _Field("hours", 0, 23, ",-*/")
_DAY_OF_MONTH = _Field("day-of-month", 1, 31, ",-*?/LW")
_MONTH = _Field("month", 1, 12, ",-*/", MONTHS)
_DAY_OF_WEEK = _Field("day-of-week", 1, 7, ",-*?L#", WEEKDAYS)
_YEAR = _Field("year", 1970, 2199, ",-*/", cyclic=False)
_FIELDS: Final = {
    field.name: field for field in (_MINUTES, _HOURS, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK, _YEAR)
}


def aws_weekday(day: datetime.date) -> int:
    """The day-of-week number AWS's cron uses: 1 = SUN … 7 = SAT."""
    return (day.weekday() + 1) % 7 + 1


@dataclass(frozen=True)
class MonthDays:
    """A day-of-month field: fixed days, `L` (last day), `LW` (last weekday), `<n>W`."""

    days: frozenset[int] = frozenset()
    last: bool = False
    last_weekday: bool = False
    nearest_weekday: frozenset[int] = frozenset()

    def in_month(self, year: int, month: int) -> list[int]:
        length = calendar.monthrange(year, month)[1]
        found = {day for day in self.days if day <= length}
        if self.last:
            found.add(length)
        if self.last_weekday:
            found.add(_weekday_near(year, month, length, length))
        # A `31W` in a 30-day month names no day, as a plain `31` does not.
        found |= {
            _weekday_near(year, month, day, length) for day in self.nearest_weekday if day <= length
        }
        return sorted(found)


def _weekday_near(year: int, month: int, day: int, length: int) -> int:
    """The Monday-to-Friday day nearest ``day`` without leaving the month (Quartz's `W`)."""
    weekday = aws_weekday(datetime.date(year, month, day))
    if weekday == 7:  # Saturday: the Friday before, or the Monday after the 1st.
        return day + 2 if day == 1 else day - 1
    if weekday == 1:  # Sunday: the Monday after, or the Friday before the month's last day.
        return day - 2 if day == length else day + 1
    return day


@dataclass(frozen=True)
class WeekDays:
    """A day-of-week field: weekdays, `<d>L` (the month's last <d>-day), `<d>#<n>` (its nth)."""

    weekdays: frozenset[int] = frozenset()
    last_of: frozenset[int] = frozenset()
    nth: tuple[int, int] | None = None

    def in_month(self, year: int, month: int) -> list[int]:
        length = calendar.monthrange(year, month)[1]
        first = aws_weekday(datetime.date(year, month, 1))
        found = set()
        for day in range(1, length + 1):
            weekday = (first - 1 + day - 1) % 7 + 1
            if weekday in self.weekdays:
                found.add(day)
            if weekday in self.last_of and day + 7 > length:
                found.add(day)
            if self.nth == (weekday, (day - 1) // 7 + 1):
                found.add(day)
        return sorted(found)


def _day_of_month(text: str) -> MonthDays:
    days: set[int] = set()
    last = last_weekday = False
    nearest: set[int] = set()
    for term in text.split(","):
        if term.upper() == "L":
            last = True
        elif term.upper() == "LW":
            last_weekday = True
        elif term.upper().endswith("W"):
            if not _NUMBER.fullmatch(term[:-1]):
                raise CronError(
                    f'day-of-month "{term}" is not valid: W follows one day (15W) or L (LW)'
                )
            nearest.add(_DAY_OF_MONTH.value(term[:-1], term))
        else:
            days |= _DAY_OF_MONTH.values(term)
    return MonthDays(frozenset(days), last, last_weekday, frozenset(nearest))


def _day_of_week(text: str) -> WeekDays:
    terms = text.split(",")
    if "#" in text and len(terms) > 1:
        raise CronError(f'day-of-week "{text}": an expression with # must be the only one')
    weekdays: set[int] = set()
    last_of: set[int] = set()
    nth = None
    for term in terms:
        if "#" in term:
            day_text, _, week_text = term.partition("#")
            if week_text not in {"1", "2", "3", "4", "5"}:
                raise CronError(f'day-of-week "{term}": the number after # must be 1-5')
            nth = (_DAY_OF_WEEK.value(day_text, term), int(week_text))
        elif term.upper() == "L":
            # `L` alone is the week's last day, Saturday.
            weekdays.add(7)
        elif len(term) > 1 and term.upper().endswith("L"):
            last_of.add(_DAY_OF_WEEK.value(term[:-1], term))
        else:
            weekdays |= _DAY_OF_WEEK.values(term)
    return WeekDays(frozenset(weekdays), frozenset(last_of), nth)


@dataclass(frozen=True)
class CronFields:
    """A parsed `cron(...)`: each field's values, sorted, and the day rule."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: MonthDays | WeekDays
    months: tuple[int, ...]
    years: tuple[int, ...]

    def next_wall(self, start: datetime.datetime) -> datetime.datetime | None:
        """The first wall-clock minute at or after ``start`` (naive, whole minutes) that the
        fields name; None when none is left before the end of year 2199."""
        for year in _from(self.years, start.year):
            same_year = year == start.year
            for month in _from(self.months, start.month if same_year else None):
                same_month = same_year and month == start.month
                days = self.days.in_month(year, month)
                for day in _from(days, start.day if same_month else None):
                    same_day = same_month and day == start.day
                    for hour in _from(self.hours, start.hour if same_day else None):
                        same_hour = same_day and hour == start.hour
                        for minute in _from(self.minutes, start.minute if same_hour else None):
                            return datetime.datetime(year, month, day, hour, minute)
        return None


def _from(values: Sequence[int], floor: int | None) -> Iterator[int]:
    """The sorted ``values`` from ``floor`` on (all of them when there is no floor)."""
    start = 0 if floor is None else bisect_left(values, floor)
    return iter(values[start:])


def parse_cron(fields_text: str) -> CronFields:
    """The text between `cron(` and `)`, parsed; ``CronError`` names the field that is wrong."""
    fields = fields_text.split()
    if len(fields) != len(FIELD_NAMES):
        raise CronError(
            f"has {len(fields)} fields; a cron expression has 6: {' '.join(FIELD_NAMES)}"
        )
    minutes, hours, day_of_month, month, day_of_week, year = fields
    for name, text in zip(FIELD_NAMES, fields, strict=True):
        if "?" in text and text != "?":
            raise CronError(f'{name} "{text}" is not valid: "?" must be the whole field')
        if text == "?" and name not in ("day-of-month", "day-of-week"):
            raise CronError(f'{name} "?" is not valid: {_FIELDS[name].describe()}')
    if (day_of_month == "?") == (day_of_week == "?"):
        both = "cannot both be" if day_of_month == "?" else "one of them must be"
        raise CronError(f'day-of-month and day-of-week: {both} "?"')
    days = _day_of_month(day_of_month) if day_of_week == "?" else _day_of_week(day_of_week)
    return CronFields(
        minutes=_sorted(_MINUTES, minutes),
        hours=_sorted(_HOURS, hours),
        days=days,
        months=_sorted(_MONTH, month),
        years=_sorted(_YEAR, year),
    )


def _sorted(field: _Field, text: str) -> tuple[int, ...]:
    values: set[int] = set()
    for term in text.split(","):
        values |= field.values(term)
    return tuple(sorted(values))
