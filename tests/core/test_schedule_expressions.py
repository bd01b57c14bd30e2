"""Schedule expressions: AWS's documented cron examples, L/W/#, DST, leap years, year bounds, rate
anchors, `at`, the flexible offset, and every refusal's exact message.

The next fire times here are worked out by hand from a calendar; the brute-force comparison over
random expressions is in test_schedule_reference.py.
"""

from __future__ import annotations

import datetime

import pytest

from kfaas.schedule_expressions import (
    ScheduleExpression,
    ScheduleExpressionError,
    flexible_offset,
    parse_expression,
    time_zone,
)

UTC = datetime.UTC


def at(text: str) -> datetime.datetime:
    """An instant written in UTC: `2026-11-27T17:53`."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def ticks(
    expression: str, after: datetime.datetime, count: int, zone: str = "UTC"
) -> list[datetime.datetime]:
    """The first ``count`` fire times after ``after`` (fewer when the expression ends)."""
    parsed, tz = parse_expression(expression), time_zone(zone)
    found: list[datetime.datetime] = []
    while len(found) < count:
        tick = parsed.next_after(found[-1] if found else after, tz=tz, anchor=after)
        if tick is None:
            break
        assert tick.tzinfo is UTC
        found.append(tick)
    return found


# Friday 2026-11-27, 17:53 UTC; Monday is the 30th.
FRIDAY = at("2026-11-27T17:53")

# The examples table of AWS's "Cron expressions reference" (EventBridge), each with the next fire
# times after a fixed moment.
AWS_EXAMPLES = [
    # Run at 10:00 am (UTC+0) every day.
    ("cron(0 10 * * ? *)", FRIDAY, ["2026-11-28T10:00", "2026-11-29T10:00", "2026-11-30T10:00"]),
    # Run at 12:15 pm (UTC+0) every day.
    ("cron(15 12 * * ? *)", FRIDAY, ["2026-11-28T12:15", "2026-11-29T12:15", "2026-11-30T12:15"]),
    # Run at 6:00 pm (UTC+0) every Monday through Friday.
    (
        "cron(0 18 ? * MON-FRI *)",
        FRIDAY,
        ["2026-11-27T18:00", "2026-11-30T18:00", "2026-12-01T18:00"],
    ),
    # Run at 8:00 am (UTC+0) every 1st day of the month.
    ("cron(0 8 1 * ? *)", FRIDAY, ["2026-12-01T08:00", "2027-01-01T08:00", "2027-02-01T08:00"]),
    # Run every 15 minutes.
    ("cron(0/15 * * * ? *)", FRIDAY, ["2026-11-27T18:00", "2026-11-27T18:15", "2026-11-27T18:30"]),
    # Run every 10 minutes Monday through Friday.
    (
        "cron(0/10 * ? * MON-FRI *)",
        at("2026-11-27T23:45"),
        ["2026-11-27T23:50", "2026-11-30T00:00", "2026-11-30T00:10"],
    ),
    # Run every 5 minutes Monday through Friday between 8:00 am and 5:55 pm (UTC+0).
    (
        "cron(0/5 8-17 ? * MON-FRI *)",
        FRIDAY,
        ["2026-11-27T17:55", "2026-11-30T08:00", "2026-11-30T08:05"],
    ),
    # Run every 30 minutes Monday through Friday between 10:00 pm on the starting day to 2:00 am on
    # the following day (UTC); from 12:00 am to 2:00 am on Monday morning. The hours wrap around.
    (
        "cron(0/30 20-2 ? * MON-FRI *)",
        at("2026-11-27T23:15"),
        [
            "2026-11-27T23:30",
            "2026-11-30T00:00",
            "2026-11-30T00:30",
            "2026-11-30T01:00",
            "2026-11-30T01:30",
            "2026-11-30T02:00",
            "2026-11-30T02:30",
            "2026-11-30T20:00",
        ],
    ),
]


@pytest.mark.parametrize(("expression", "after", "expected"), AWS_EXAMPLES)
def test_aws_documented_examples(
    expression: str, after: datetime.datetime, expected: list[str]
) -> None:
    assert ticks(expression, after, len(expected)) == [at(text) for text in expected]


DAY_WILDCARDS = [
    # L: the month's last day, 29 February in a leap year.
    ("cron(0 12 L * ? *)", "2027-01-15", ["2027-01-31", "2027-02-28", "2027-03-31"]),
    ("cron(0 12 L * ? *)", "2028-02-01", ["2028-02-29", "2028-03-31"]),
    # LW: the last weekday; 31 Oct 2026 is a Saturday, 31 Jan 2027 a Sunday.
    ("cron(0 12 LW * ? *)", "2026-10-01", ["2026-10-30", "2026-11-30", "2026-12-31", "2027-01-29"]),
    # nW: the weekday nearest day n, never leaving the month. 1 Aug 2026 is a Saturday (so
    # Monday the 3rd, not Friday 31 July), 1 Nov 2026 a Sunday.
    ("cron(0 12 1W * ? *)", "2026-07-15", ["2026-08-03", "2026-09-01", "2026-10-01", "2026-11-02"]),
    # 15 Aug 2026 is a Saturday (Friday 14th), 15 Nov 2026 a Sunday (Monday 16th).
    ("cron(0 12 15W 8,11 ? *)", "2026-01-01", ["2026-08-14", "2026-11-16"]),
    # 31 Jan 2027 is a Sunday and the last day (Friday 29th); February has no 31st.
    ("cron(0 12 31W * ? *)", "2027-01-01", ["2027-01-29", "2027-03-31"]),
    # <d>L: the month's last Friday.
    ("cron(0 12 ? * 6L *)", "2026-11-01", ["2026-11-27", "2026-12-25", "2027-01-29"]),
    # L alone in day-of-week: the week's last day, Saturday.
    ("cron(0 12 ? * L *)", "2026-11-27", ["2026-11-28", "2026-12-05"]),
    # <d>#<n>: the third Friday, by number and by name.
    ("cron(0 12 ? * 6#3 *)", "2026-11-01", ["2026-11-20", "2026-12-18", "2027-01-15"]),
    ("cron(0 12 ? * FRI#3 *)", "2026-11-01", ["2026-11-20", "2026-12-18", "2027-01-15"]),
    # The fifth Monday: only in months that have one.
    ("cron(0 12 ? * 2#5 *)", "2026-11-01", ["2026-11-30", "2027-03-29"]),
    # The first Sunday (1 = SUN).
    ("cron(0 12 ? * 1#1 *)", "2026-10-31", ["2026-11-01", "2026-12-06"]),
    # A day-of-week range that wraps: Saturday to Monday.
    (
        "cron(0 12 ? * SAT-MON *)",
        "2026-11-27",
        ["2026-11-28", "2026-11-29", "2026-11-30", "2026-12-05"],
    ),
    # A day-of-month list with L, and a step: 1, 11, 21, 31.
    ("cron(0 12 10,L * ? *)", "2027-02-01", ["2027-02-10", "2027-02-28", "2027-03-10"]),
    (
        "cron(0 12 1/10 1 ? 2027)",
        "2027-01-01",
        ["2027-01-01", "2027-01-11", "2027-01-21", "2027-01-31"],
    ),
]


@pytest.mark.parametrize(("expression", "after", "days"), DAY_WILDCARDS)
def test_day_wildcards(expression: str, after: str, days: list[str]) -> None:
    expected = [at(f"{day}T12:00") for day in days]
    assert ticks(expression, at(f"{after}T00:00"), len(days) + 1)[: len(days)] == expected


def test_leap_years_and_the_year_field() -> None:
    assert ticks("cron(0 0 29 2 ? *)", at("2026-01-01T00:00"), 2) == [
        at("2028-02-29T00:00"),
        at("2032-02-29T00:00"),
    ]
    # 2100 is not a leap year (divisible by 100, not by 400).
    assert ticks("cron(0 0 29 2 ? 2097-2104)", at("2097-01-01T00:00"), 2) == [
        at("2104-02-29T00:00")
    ]
    assert ticks("cron(0 0 L 2 ? 2100)", at("2100-01-01T00:00"), 2) == [at("2100-02-28T00:00")]
    # The fifth Friday of February needs a leap year starting on a Friday.
    assert ticks("cron(0 0 ? 2 6#5 *)", at("2026-01-01T00:00"), 2) == [
        at("2036-02-29T00:00"),
        at("2064-02-29T00:00"),
    ]
    assert ticks("cron(0 0 1 JAN,JUL ? 2027/2)", at("2026-01-01T00:00"), 3) == [
        at("2027-01-01T00:00"),
        at("2027-07-01T00:00"),
        at("2029-01-01T00:00"),
    ]


def test_no_tick_after_the_last_year() -> None:
    assert ticks("cron(0 0 1 1 ? 2199)", at("2198-06-01T00:00"), 2) == [at("2199-01-01T00:00")]
    assert ticks("cron(* * * * ? *)", at("2199-12-31T23:58"), 3) == [at("2199-12-31T23:59")]
    assert ticks("cron(0 0 * * ? 1970)", at("2026-01-01T00:00"), 1) == []
    # A day that never comes: searched to 2199 by months, not minutes, and quickly.
    assert ticks("cron(0 0 30 2 ? *)", at("2026-01-01T00:00"), 1) == []


class TestDaylightSavingTime:
    """EventBridge Scheduler: a wall time a DST change skips does not fire that day; one it
    repeats fires once, the first time."""

    def test_new_york_spring_forward_skips_the_missing_time(self) -> None:
        # 14 March 2027: 02:00 EST becomes 03:00 EDT, so 02:30 does not exist that day.
        got = ticks("cron(30 2 * * ? *)", at("2027-03-13T00:00"), 2, "America/New_York")
        assert got == [at("2027-03-13T07:30"), at("2027-03-15T06:30")]

    def test_new_york_fall_back_fires_the_repeated_time_once(self) -> None:
        # 7 November 2027: 02:00 EDT becomes 01:00 EST, so 01:30 happens twice.
        got = ticks("cron(30 1 * * ? *)", at("2027-11-06T12:00"), 2, "America/New_York")
        assert got == [at("2027-11-07T05:30"), at("2027-11-08T06:30")]

    def test_every_twenty_minutes_through_the_repeated_hour(self) -> None:
        got = ticks("cron(0/20 * * * ? *)", at("2027-11-07T05:00"), 4, "America/New_York")
        # 01:20 and 01:40 EDT, then 02:00 EST: the second 01:00-01:40 (EST) does not fire again.
        assert got == [
            at(t)
            for t in (
                "2027-11-07T05:20",
                "2027-11-07T05:40",
                "2027-11-07T07:00",
                "2027-11-07T07:20",
            )
        ]

    def test_after_in_the_second_pass_of_the_repeated_hour(self) -> None:
        # 06:30 UTC is the second 01:30 (EST); the first 01:40 (EDT) is already in the past.
        got = ticks("cron(0/20 * * * ? *)", at("2027-11-07T06:30"), 1, "America/New_York")
        assert got == [at("2027-11-07T07:00")]

    def test_berlin_both_changes(self) -> None:
        # 28 March 2027: 02:00 CET becomes 03:00 CEST; 31 October: 03:00 CEST becomes 02:00 CET.
        spring = ticks("cron(30 2 * * ? *)", at("2027-03-27T00:00"), 2, "Europe/Berlin")
        assert spring == [at("2027-03-27T01:30"), at("2027-03-29T00:30")]
        autumn = ticks("cron(30 2 * * ? *)", at("2027-10-30T12:00"), 2, "Europe/Berlin")
        assert autumn == [at("2027-10-31T00:30"), at("2027-11-01T01:30")]
        hourly = ticks("cron(0 * * * ? *)", at("2027-03-28T00:30"), 2, "Europe/Berlin")
        assert hourly == [at("2027-03-28T01:00"), at("2027-03-28T02:00")]

    def test_rate_days_are_24_hours(self) -> None:
        # EventBridge: a day in a rate is 24 hours, so the local time moves with DST.
        anchor = at("2027-03-13T17:00")  # 12:00 EST
        tick = parse_expression("rate(1 day)").next_after(
            anchor, tz=time_zone("America/New_York"), anchor=anchor
        )
        assert tick == at("2027-03-14T17:00")  # 13:00 EDT

    def test_at_in_a_skipped_hour_fires_once_with_the_earlier_offset(self) -> None:
        expression = parse_expression("at(2027-03-14T02:30:00)")
        tz, after = time_zone("America/New_York"), at("2027-03-01T00:00")
        assert expression.next_after(after, tz=tz, anchor=after) == at("2027-03-14T07:30")
        repeated = parse_expression("at(2027-11-07T01:30:00)")
        assert repeated.next_after(after, tz=tz, anchor=after) == at("2027-11-07T05:30")


class TestRate:
    ANCHOR = at("2026-11-30T10:00")

    @pytest.mark.parametrize(
        ("after", "expected"),
        [
            ("2026-11-30T09:00", "2026-11-30T10:00"),  # before the anchor: the anchor itself
            ("2026-11-30T10:00", "2026-11-30T10:05"),  # strictly after
            ("2026-11-30T10:07:30", "2026-11-30T10:10"),
            ("2126-11-30T10:00", "2126-11-30T10:05"),  # a century on, still exact
        ],
    )
    def test_ticks_are_anchor_plus_whole_periods(self, after: str, expected: str) -> None:
        tick = parse_expression("rate(5 minutes)").next_after(
            at(after), tz=time_zone("Asia/Tokyo"), anchor=self.ANCHOR
        )
        assert tick == at(expected)

    def test_seconds_are_a_kfaas_extension(self) -> None:
        anchor = at("2026-11-30T10:00:00.500000")
        tick = parse_expression("rate(10 seconds)").next_after(
            at("2026-11-30T10:00:25"), tz=time_zone("UTC"), anchor=anchor
        )
        assert tick == at("2026-11-30T10:00:30.500000")
        assert parse_expression("rate(1 second)").kind == "rate"

    def test_every_unit(self) -> None:
        for text, period in [
            ("rate(1 minute)", datetime.timedelta(minutes=1)),
            ("rate(2 hours)", datetime.timedelta(hours=2)),
            ("rate(1 hour)", datetime.timedelta(hours=1)),
            ("rate(7 days)", datetime.timedelta(days=7)),
            ("rate(1 day)", datetime.timedelta(days=1)),
        ]:
            tick = parse_expression(text).next_after(
                self.ANCHOR, tz=time_zone("UTC"), anchor=self.ANCHOR
            )
            assert tick == self.ANCHOR + period


def test_no_tick_past_the_last_representable_moment() -> None:
    end = datetime.datetime(9999, 12, 31, 12, tzinfo=UTC)
    rate = parse_expression("rate(1 day)")
    assert rate.next_after(end, tz=time_zone("UTC"), anchor=end) is None
    late = parse_expression("at(9999-12-31T23:59:00)")  # 04:59 UTC in year 10000
    assert late.next_after(end, tz=time_zone("America/New_York"), anchor=end) is None


def test_naive_moments_are_refused() -> None:
    naive = datetime.datetime(2026, 11, 30, 10)
    with pytest.raises(ValueError, match="aware datetimes"):
        parse_expression("cron(0 10 * * ? *)").next_after(naive, tz=time_zone("UTC"), anchor=naive)


class TestAt:
    def test_one_tick_in_its_time_zone_then_none(self) -> None:
        expression = parse_expression("at(2026-12-01T08:00:00)")
        tz, anchor = time_zone("Europe/Berlin"), at("2026-11-01T00:00")
        assert expression.kind == "at"
        assert expression.next_after(at("2026-11-30T00:00"), tz=tz, anchor=anchor) == at(
            "2026-12-01T07:00"
        )
        assert expression.next_after(at("2026-12-01T07:00"), tz=tz, anchor=anchor) is None
        assert expression.next_after(at("2027-01-01T00:00"), tz=tz, anchor=anchor) is None


def test_the_model_type_agrees_with_its_text() -> None:
    assert parse_expression("cron(0 10 * * ? *)") == ScheduleExpression(
        "cron(0 10 * * ? *)", "cron"
    )
    with pytest.raises(ScheduleExpressionError, match="is a rate expression, not cron"):
        ScheduleExpression("rate(5 minutes)", "cron")


EXAMPLES = ' (e.g. "Europe/Berlin", "UTC")'


class TestTimeZones:
    def test_iana_names(self) -> None:
        assert str(time_zone("Europe/Berlin")) == "Europe/Berlin"
        assert str(time_zone("UTC")) == "UTC"

    @pytest.mark.parametrize(
        ("name", "hint"),
        [
            ("Mars/Olympus", EXAMPLES),
            ("europe/berlin", '; did you mean "Europe/Berlin"?'),
            ("", EXAMPLES),
            # Files under the zoneinfo folder that are not zones EventBridge knows.
            ("right/UTC", EXAMPLES),
            ("../../etc/passwd", EXAMPLES),
        ],
    )
    def test_unknown_names_are_refused(self, name: str, hint: str) -> None:
        with pytest.raises(ScheduleExpressionError) as caught:
            time_zone(name)
        assert str(caught.value) == f'time zone "{name}" is not an IANA time zone name{hint}'


class TestFlexibleOffset:
    TICK = at("2026-11-30T10:00")

    def test_the_same_on_every_replica_and_inside_the_window(self) -> None:
        first = flexible_offset("uid-1", self.TICK, 15)
        assert first == flexible_offset("uid-1", self.TICK, 15)
        assert datetime.timedelta(0) <= first < datetime.timedelta(minutes=15)
        assert first.microseconds == 0
        # The same instant written in another zone is the same tick.
        berlin = self.TICK.astimezone(time_zone("Europe/Berlin"))
        assert flexible_offset("uid-1", berlin, 15) == first

    def test_spread_over_the_window(self) -> None:
        offsets = {flexible_offset(f"uid-{n}", self.TICK, 60) for n in range(200)}
        assert len(offsets) > 150
        assert max(offsets) > datetime.timedelta(minutes=50)
        assert min(offsets) < datetime.timedelta(minutes=10)
        ticks_of_one = {
            flexible_offset("uid-1", self.TICK + datetime.timedelta(hours=n), 60) for n in range(50)
        }
        assert len(ticks_of_one) > 40

    def test_a_window_is_at_least_a_minute(self) -> None:
        with pytest.raises(ValueError, match="at least 1 minute"):
            flexible_offset("uid-1", self.TICK, 0)


TAKES_MINUTES = "minutes takes 0-59 with the wildcards , - * /"
TAKES_DAY_OF_MONTH = "day-of-month takes 1-31 with the wildcards , - * ? / L W"
TAKES_DAY_OF_WEEK = "day-of-week takes 1-7 or SUN-SAT with the wildcards , - * ? L #"
SIX_FIELDS = "a cron expression has 6: minutes hours day-of-month month day-of-week year"
UNITS = "is not one of minute(s), hour(s), day(s), second(s)"

# Each refusal: the expression, then what follows "<expression>: " in the message.
INVALID = [
    (
        "every 5 minutes",
        "an expression is rate(value unit), cron(fields) or at(yyyy-mm-ddThh:mm:ss)",
    ),
    ("rate(1 minutes)", 'unit must be "minute" when the value is 1'),
    ("rate(5 minute)", 'unit must be "minutes" when the value is not 1'),
    ("rate(1 hours)", 'unit must be "hour" when the value is 1'),
    ("rate(0 minutes)", "the value must be a positive whole number"),
    ("rate(-5 minutes)", "the value must be a positive whole number"),
    ("rate(1.5 hours)", "the value must be a positive whole number"),
    ("rate(5 weeks)", f'unit "weeks" {UNITS}'),
    ("rate(5 Minutes)", f'unit "Minutes" {UNITS}'),
    ("rate(5minutes)", "a rate is rate(value unit), e.g. rate(5 minutes)"),
    ("rate(99999999999999 days)", "the period is too long"),
    ("rate(9999999999 days)", "the period is too long"),
    ("at(2026-12-01 08:00:00)", "the time must be yyyy-mm-ddThh:mm:ss"),
    ("at(2026-12-01T08:00)", "the time must be yyyy-mm-ddThh:mm:ss"),
    ("at(2026-12-01T08:00:00Z)", "the time must be yyyy-mm-ddThh:mm:ss"),
    (
        "at(2027-02-29T08:00:00)",
        "2027-02-29T08:00:00 is not a date and time (day is out of range for month)",
    ),
    ("cron(0 10 * * ?)", f"has 5 fields; {SIX_FIELDS}"),
    ("cron(0 10 * * ? * *)", f"has 7 fields; {SIX_FIELDS}"),
    ("cron(0 10 * * * *)", 'day-of-month and day-of-week: one of them must be "?"'),
    ("cron(0 10 1 * MON *)", 'day-of-month and day-of-week: one of them must be "?"'),
    ("cron(0 10 ? * ? *)", 'day-of-month and day-of-week: cannot both be "?"'),
    ("cron(60 10 * * ? *)", 'minutes "60" is out of range 0-59'),
    ("cron(0 24 * * ? *)", 'hours "24" is out of range 0-23'),
    ("cron(0 10 32 * ? *)", 'day-of-month "32" is out of range 1-31'),
    ("cron(0 10 0 * ? *)", 'day-of-month "0" is out of range 1-31'),
    ("cron(0 10 * 13 ? *)", 'month "13" is out of range 1-12'),
    (
        "cron(0 10 * JANUARY ? *)",
        'month "JANUARY" is not valid: month takes 1-12 or JAN-DEC with the wildcards , - * /',
    ),
    ("cron(0 0 ? * 8 *)", 'day-of-week "8" is out of range 1-7'),
    ("cron(0 0 ? * 0 *)", 'day-of-week "0" is out of range 1-7'),
    ("cron(0 0 ? * MON-8 *)", 'day-of-week "MON-8" is out of range 1-7'),
    ("cron(0 0 1 * ? 1969)", 'year "1969" is out of range 1970-2199'),
    ("cron(0 0 1 * ? 2200)", 'year "2200" is out of range 1970-2199'),
    ("cron(0 0 1 * ? 2030-2020)", 'year "2030-2020": the range ends before it starts'),
    ("cron(0/0 * * * ? *)", 'minutes "0/0": the increment after / must be 1-60'),
    ("cron(0/x * * * ? *)", 'minutes "0/x": the increment after / must be 1-60'),
    ("cron(? 10 * * ? *)", f'minutes "?" is not valid: {TAKES_MINUTES}'),
    ("cron(0 10 1,? * ? *)", 'day-of-month "1,?" is not valid: "?" must be the whole field'),
    ("cron(L 10 * * ? *)", f'minutes "L" is not valid: {TAKES_MINUTES}'),
    ("cron(0 10 ? * 1/2 *)", f'day-of-week "1/2" is not valid: {TAKES_DAY_OF_WEEK}'),
    ("cron(0 10 L-2 * ? *)", f'day-of-month "L-2" is not valid: {TAKES_DAY_OF_MONTH}'),
    (
        "cron(0 10 1-5W * ? *)",
        'day-of-month "1-5W" is not valid: W follows one day (15W) or L (LW)',
    ),
    ("cron(0 10 32W * ? *)", 'day-of-month "32W" is out of range 1-31'),
    ("cron(0 10 ? * 6#6 *)", 'day-of-week "6#6": the number after # must be 1-5'),
    (
        "cron(0 10 ? * 3#1,6#3 *)",
        'day-of-week "3#1,6#3": an expression with # must be the only one',
    ),
    ("cron(0 10 ? * 8L *)", 'day-of-week "8L" is out of range 1-7'),
    ("cron(0 10 1,,2 * ? *)", f'day-of-month "" is not valid: {TAKES_DAY_OF_MONTH}'),
]


@pytest.mark.parametrize(("expression", "reason"), INVALID)
def test_invalid_expressions_say_what_is_wrong(expression: str, reason: str) -> None:
    with pytest.raises(ScheduleExpressionError) as caught:
        parse_expression(expression)
    assert str(caught.value) == f"{expression}: {reason}"
