"""The Schedule kind's model: defaults, and each refusal reported at its field path, as
kfaas.manifests reports a Function's (the expression's and the time zone's messages included)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import yaml

from kfaas.manifests import ManifestError
from kfaas.schedule_manifests import parse_date_time, parse_schedule


def schedule_doc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": "nightly", "namespace": "reports"},
        "spec": {"scheduleExpression": "rate(5 minutes)", "target": {"functionName": "report"}}
        | spec,
    }


def problems_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_schedule(doc)
    return [problem.removeprefix("Schedule nightly: ") for problem in caught.value.problems]


def test_defaults_are_eventbridge_schedulers() -> None:
    schedule = parse_schedule(schedule_doc())
    spec = schedule.spec
    assert schedule.key == "reports/nightly"
    assert (spec.schedule_expression_timezone, spec.state) == ("UTC", "ENABLED")
    assert (spec.start_date, spec.end_date, spec.dead_letter_config) == (None, None, None)
    assert spec.flexible_time_window.mode == "OFF"
    assert spec.retry_policy.maximum_event_age_in_seconds == 86400
    assert spec.retry_policy.maximum_retry_attempts == 185
    assert (spec.target.qualifier, spec.target.input) == (None, None)
    assert spec.expression.kind == "rate"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (
            {"scheduleExpression": "cron(0 0 ? * 8 *)"},
            'spec.scheduleExpression: cron(0 0 ? * 8 *): day-of-week "8" is out of range 1-7',
        ),
        (
            {"scheduleExpression": "rate(1 minutes)"},
            'spec.scheduleExpression: rate(1 minutes): unit must be "minute" when the value is 1',
        ),
        (
            {"scheduleExpressionTimezone": "Europe/Atlantis"},
            'spec.scheduleExpressionTimezone: time zone "Europe/Atlantis" is not an IANA time zone'
            ' name (e.g. "Europe/Berlin", "UTC")',
        ),
        (
            {"startDate": "2026-12-01T08:00:00"},
            'spec.startDate: "2026-12-01T08:00:00" must be a date and time with a zone (RFC 3339),'
            " e.g. 2026-12-01T08:00:00Z",
        ),
        (
            {"endDate": "2026-13-01T08:00:00Z"},
            'spec.endDate: "2026-13-01T08:00:00Z" is not a date and time: month must be in 1..12',
        ),
        ({"startDate": 20261201}, "spec.startDate: 20261201 must be a string"),
        (
            {"startDate": "2026-12-02T00:00:00Z", "endDate": "2026-12-01T00:00:00Z"},
            "spec: endDate must be after startDate",
        ),
        (
            {"flexibleTimeWindow": {"mode": "FLEXIBLE"}},
            "spec.flexibleTimeWindow: mode FLEXIBLE requires maximumWindowInMinutes",
        ),
        (
            {"flexibleTimeWindow": {"mode": "OFF", "maximumWindowInMinutes": 5}},
            "spec.flexibleTimeWindow: maximumWindowInMinutes is only used with mode FLEXIBLE",
        ),
        (
            {"target": {"functionName": "report", "input": "{not json"}},
            "spec.target.input: must be a JSON text",
        ),
    ],
)
def test_refusals_name_the_field(spec: dict[str, Any], problem: str) -> None:
    assert problems_of(schedule_doc(**spec)) == [problem]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"flexibleTimeWindow": {"mode": "FLEXIBLE", "maximumWindowInMinutes": 1441}}, "flexible"),
        ({"retryPolicy": {"maximumEventAgeInSeconds": 59}}, "retryPolicy"),
        ({"retryPolicy": {"maximumRetryAttempts": 186}}, "retryPolicy"),
        ({"state": "PAUSED"}, "state"),
        ({"scheduleExpression": ""}, "scheduleExpression"),
    ],
)
def test_ranges(spec: dict[str, Any], field: str) -> None:
    (problem,) = problems_of(schedule_doc(**spec))
    assert problem.startswith("spec.") and field in problem


def test_unquoted_yaml_timestamps_read_as_the_api_server_stores_them() -> None:
    # PyYAML (kfaas dev) reads these as datetimes; a timestamp without a zone is UTC in YAML.
    doc = yaml.safe_load(
        """
        apiVersion: kfaas.dev/v1alpha1
        kind: Schedule
        metadata: {name: nightly}
        spec:
          scheduleExpression: cron(0 2 * * ? *)
          scheduleExpressionTimezone: Europe/Berlin
          startDate: 2026-12-01T08:00:00+01:00
          endDate: 2027-01-01 00:00:00
          target: {functionName: report}
        """
    )
    spec = parse_schedule(doc).spec
    assert (spec.start_date, spec.end_date) == ("2026-12-01T08:00:00+01:00", "2027-01-01T00:00:00Z")
    assert spec.start_date is not None
    assert parse_date_time(spec.start_date).utcoffset() == datetime.timedelta(hours=1)
    dated = yaml.safe_load("startDate: 2026-12-01")
    assert problems_of(schedule_doc(**dated)) == [
        'spec.startDate: "2026-12-01" must be a date and time with a zone (RFC 3339),'
        " e.g. 2026-12-01T08:00:00Z"
    ]


@pytest.mark.parametrize(
    "name",
    [
        "other/report",
        "other%2Freport",
        "arn:aws:lambda:us-east-1:other:function:report",
        "report:prod",
        "../report",
    ],
)
def test_a_target_names_a_function_of_its_own_namespace_only(name: str) -> None:
    # Lambda accepts ARNs and `name:qualifier` as a FunctionName; here the target is a DNS label,
    # so no spelling can point a Schedule outside its namespace (the engine invokes
    # `<schedule's namespace>/<functionName>`: tests/e2e/test_schedules.py shows it end to end).
    [problem] = problems_of(schedule_doc(target={"functionName": name}))
    assert problem.startswith("spec.target.functionName: ")
