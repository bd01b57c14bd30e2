"""The `Schedule` kind (ADR 026): EventBridge Scheduler's schedule, invoking a Function.

A schedule fires its target function at the times its expression names (`rate(...)`, `cron(...)`,
`at(...)`, in its time zone, within its start and end dates, somewhere in its flexible window), with
the configured input or EventBridge's "Scheduled Event", and retries a delivery that fails as its
retry policy says before the record goes to its dead-letter destination. The fields are Scheduler's
CreateSchedule members in camelCase, so a user of EventBridge Scheduler reads them without a
guide. `crdgen` renders these models into the CRD; every model validator here is stated once more
as CEL there.

The scheduler (``kfaas.scheduler``) writes the status: the tick it is delivering (a claim that
makes one replica deliver each tick), the last tick done and the next fire time.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from .manifests import (
    API_VERSION,
    DnsLabel,
    ManifestError,
    Metadata,
    Qualifier,
    SourcedObject,
    StreamDestination,
    validation_problems,
)
from .schedule_expressions import (
    ScheduleExpression,
    ScheduleExpressionError,
    parse_expression,
    time_zone,
)

# EventBridge's limits on a schedule's input and description.
MAX_INPUT_BYTES: Final = 8192
# RFC 3339 with a zone (`Z` or an offset): what the API server stores for a date-time.
DATE_TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
DateTime = Annotated[str, StringConstraints(pattern=DATE_TIME_PATTERN)]


class _Model(BaseModel):
    """As kfaas.manifests' models: camelCase in YAML, strict, unknown fields are errors."""

    model_config = ConfigDict(
        extra="forbid", strict=True, populate_by_name=True, alias_generator=to_camel
    )


def parse_date_time(text: str) -> datetime.datetime:
    """A `DateTime` field's value as an aware datetime."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _date_time_text(value: Any) -> Any:
    """A `DateTime` field's value as the API server stores it, or a message saying what is wrong.

    PyYAML (`kfaas dev`) reads an unquoted `2026-12-01T08:00:00Z` as a datetime, and one without a
    zone as naive (YAML says UTC) and `2026-12-01` as a date; the API server keeps the text. The
    pattern alone would accept `2026-13-01T…` (and answer a regex), so the value is parsed here.
    """
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime.date):
        value = value.isoformat()
    if not isinstance(value, str):
        return value  # the strict str type reports it
    if re.fullmatch(DATE_TIME_PATTERN, value) is None:
        raise PydanticCustomError(
            "kfaas_rule",
            '"{value}" must be a date and time with a zone (RFC 3339), e.g. 2026-12-01T08:00:00Z',
            {"value": value},
        )
    try:
        parse_date_time(value)
    except ValueError as exc:
        raise PydanticCustomError(
            "kfaas_rule",
            '"{value}" is not a date and time: {reason}',
            {"value": value, "reason": str(exc)},
        ) from None
    return value


class ScheduleTarget(_Model):
    """What each tick invokes (asynchronously, as EventBridge invokes Lambda)."""

    function_name: DnsLabel
    # A version or alias; none: `$LATEST`.
    qualifier: Qualifier | None = None
    # A JSON text sent as the event; none: EventBridge's "Scheduled Event".
    input: Annotated[str, StringConstraints(max_length=MAX_INPUT_BYTES)] | None = None

    @field_validator("input")
    @classmethod
    def _json(cls, text: str | None) -> str | None:
        if text is not None:
            try:
                json.loads(text)
            except ValueError:
                raise PydanticCustomError("kfaas_rule", "must be a JSON text") from None
        return text


class FlexibleTimeWindow(_Model):
    mode: Literal["OFF", "FLEXIBLE"] = "OFF"
    maximum_window_in_minutes: int | None = Field(default=None, ge=1, le=1440)

    @model_validator(mode="after")
    def _window_with_flexible(self) -> Self:
        if self.mode == "FLEXIBLE" and self.maximum_window_in_minutes is None:
            raise PydanticCustomError("kfaas_rule", "mode FLEXIBLE requires maximumWindowInMinutes")
        if self.mode == "OFF" and self.maximum_window_in_minutes is not None:
            raise PydanticCustomError(
                "kfaas_rule", "maximumWindowInMinutes is only used with mode FLEXIBLE"
            )
        return self


class RetryPolicy(_Model):
    """How long and how often a delivery that failed (throttled, unreachable) is tried again."""

    maximum_event_age_in_seconds: int = Field(default=86400, ge=60, le=86400)
    maximum_retry_attempts: int = Field(default=185, ge=0, le=185)


class ScheduleSpec(_Model):
    schedule_expression: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    schedule_expression_timezone: Annotated[str, StringConstraints(max_length=50)] = "UTC"
    start_date: DateTime | None = None
    end_date: DateTime | None = None
    state: Literal["ENABLED", "DISABLED"] = "ENABLED"
    description: Annotated[str, StringConstraints(max_length=512)] = ""
    flexible_time_window: FlexibleTimeWindow = Field(default_factory=FlexibleTimeWindow)
    target: ScheduleTarget
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    # Where a tick goes when its delivery is given up (Lambda's failure record); none: counted
    # and logged only, as EventBridge drops it without a DLQ.
    dead_letter_config: StreamDestination | None = None

    _dates = field_validator("start_date", "end_date", mode="before")(_date_time_text)

    @field_validator("schedule_expression")
    @classmethod
    def _expression(cls, text: str) -> str:
        try:
            parse_expression(text)
        except ScheduleExpressionError as exc:
            raise PydanticCustomError("kfaas_rule", "{reason}", {"reason": str(exc)}) from None
        return text

    @field_validator("schedule_expression_timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            time_zone(name)
        except ScheduleExpressionError as exc:
            raise PydanticCustomError("kfaas_rule", "{reason}", {"reason": str(exc)}) from None
        return name

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if (
            self.start_date
            and self.end_date
            and parse_date_time(self.end_date) <= parse_date_time(self.start_date)
        ):
            raise PydanticCustomError("kfaas_rule", "endDate must be after startDate")
        return self

    @property
    def expression(self) -> ScheduleExpression:
        return parse_expression(self.schedule_expression)


class TickClaim(_Model):
    """The tick one scheduler replica is delivering; another takes it over after ``expires``."""

    tick: DateTime
    holder: Annotated[str, StringConstraints(max_length=253)]
    expires: DateTime
    # Deliveries tried for this tick so far (RetryPolicy.maximumRetryAttempts counts these).
    attempts: int = Field(default=0, ge=0)


class ScheduleStatus(_Model):
    """Written by the scheduler only."""

    # Lenient where the scheduler's own fields are: a status written by a newer scheduler parses.
    model_config = ConfigDict(
        extra="ignore", strict=True, populate_by_name=True, alias_generator=to_camel
    )

    # When the next tick is due (its flexible offset included); none: the schedule is done.
    next_fire_time: DateTime | None = None
    # The last tick delivered or given up; ticks after it are still owed (the catch-up rule).
    last_tick: DateTime | None = None
    claim: TickClaim | None = None
    # ENABLED, DISABLED, or COMPLETED once no tick is left (an `at` fired, endDate passed).
    state: str | None = None
    message: str | None = None
    observed_generation: int | None = None


class Schedule(SourcedObject):
    api_version: Literal["kfaas.dev/v1alpha1"] = API_VERSION
    kind: Literal["Schedule"] = "Schedule"
    metadata: Metadata
    spec: ScheduleSpec
    status: dict[str, Any] | None = None


def parse_schedule(body: Mapping[str, Any], source: str | None = None) -> Schedule:
    """A Schedule API object (or manifest) as the model; ``ManifestError`` if invalid."""
    metadata = body.get("metadata") or {}
    where = source or f"Schedule {metadata.get('name')}"
    document = {
        "apiVersion": body.get("apiVersion", API_VERSION),
        "kind": "Schedule",
        "metadata": metadata,
        "spec": body.get("spec", {}),
    }
    if "status" in body:
        document["status"] = body["status"]
    try:
        schedule = Schedule.model_validate(document, by_alias=True, by_name=False)
    except ValidationError as exc:
        problems = [f"{where}: {problem}" for problem in validation_problems(exc)]
        raise ManifestError(where, problems) from None
    schedule.source = source
    return schedule
