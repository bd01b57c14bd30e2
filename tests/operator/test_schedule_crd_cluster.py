"""The Schedule CRD on a real API server (kwok's kube-apiserver): valid Schedules are accepted with
their defaults filled in, and the CEL rules refuse what the models refuse, naming the field. The
model (what `kfaas dev` and the scheduler check) agrees on every case."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from services.cluster import Cluster

from kfaas.manifests import ManifestError
from kfaas.schedule_manifests import parse_schedule

CRD = Path(__file__).resolve().parents[2] / "crds" / "schedules.kfaas.dev.yaml"


@pytest.fixture(scope="module")
def cluster(kwok_service: Cluster) -> Cluster:
    kwok_service.install_crds(CRD)
    return kwok_service


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"schedules-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def schedule(namespace: str, name: str = "tick", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scheduleExpression": "rate(5 minutes)", "target": {"functionName": "report"}}
        | spec,
    }


def apply(cluster: Cluster, doc: dict[str, Any]) -> str:
    """Create (or replace) the object; kubectl's error text, empty when accepted."""
    done = cluster.kubectl("apply", "-f", "-", input=json.dumps(doc), check=False)
    return "" if done.returncode == 0 else done.stderr


VALID: list[dict[str, Any]] = [
    {},
    {"scheduleExpression": "rate(1 minute)"},
    {"scheduleExpression": "rate(30 seconds)"},
    {"scheduleExpression": "cron(0 10 * * ? *)", "scheduleExpressionTimezone": "Europe/Paris"},
    {"scheduleExpression": "cron(15 12 ? * SUN-THU *)"},
    {"scheduleExpression": "cron(0/5 8-17 ? * MON-FRI *)"},
    {"scheduleExpression": "cron(0 8 1W * ? *)"},
    {"scheduleExpression": "cron(0 9 ? * 6#3 *)"},
    {"scheduleExpression": "at(2030-11-20T13:00:00)", "scheduleExpressionTimezone": "Etc/GMT+5"},
    {"startDate": "2030-01-01T00:00:00Z", "endDate": "2030-01-01T00:00:01+00:00"},
    {"flexibleTimeWindow": {"mode": "FLEXIBLE", "maximumWindowInMinutes": 15}},
    {
        "target": {"functionName": "report", "qualifier": "live", "input": '{"a": 1}'},
        "retryPolicy": {"maximumRetryAttempts": 0, "maximumEventAgeInSeconds": 60},
        "deadLetterConfig": {"redis": {"stream": "failed-ticks"}},
        "state": "DISABLED",
        "description": "nightly report",
    },
]


def test_valid_schedules_are_accepted_with_their_defaults(cluster: Cluster, namespace: str) -> None:
    for index, spec in enumerate(VALID):
        doc = schedule(namespace, f"ok-{index}", **spec)
        parse_schedule(doc)
        assert apply(cluster, doc) == "", spec
    stored = json.loads(
        cluster.kubectl("-n", namespace, "get", "schedule/ok-0", "-o", "json").stdout
    )
    assert stored["spec"] == {
        "scheduleExpression": "rate(5 minutes)",
        "scheduleExpressionTimezone": "UTC",
        "state": "ENABLED",
        "description": "",
        "flexibleTimeWindow": {"mode": "OFF"},
        "target": {"functionName": "report"},
        "retryPolicy": {"maximumEventAgeInSeconds": 86400, "maximumRetryAttempts": 185},
    }
    table = cluster.kubectl("-n", namespace, "get", "sched", "-o", "wide").stdout.splitlines()
    assert table[0].split() == [
        "NAME", "EXPRESSION", "FUNCTION", "STATE", "NEXT", "LAST", "DESCRIPTION", "AGE",
    ]  # fmt: skip
    assert table[1].split()[:4] == ["ok-0", "rate(5", "minutes)", "report"]


# Each refused spec, and the field and words the API server's refusal names.
REFUSED: list[tuple[dict[str, Any], str, str]] = [
    ({"scheduleExpression": "every 5 minutes"}, "spec.scheduleExpression", "must be rate("),
    ({"scheduleExpression": "rate(five minutes)"}, "spec.scheduleExpression", "rate(value unit)"),
    ({"scheduleExpression": "rate(5 weeks)"}, "spec.scheduleExpression", "rate(value unit)"),
    ({"scheduleExpression": "cron(0 10 * * ?)"}, "spec.scheduleExpression", "day-of-week year"),
    ({"scheduleExpression": "at(2030-11-20 13:00)"}, "spec.scheduleExpression", "yyyy-mm-dd"),
    ({"scheduleExpression": "rate(" + "1" * 260 + " minutes)"}, "spec.scheduleExpression", "256"),
    ({"scheduleExpressionTimezone": "Paris time"}, "spec.scheduleExpressionTimezone", "IANA"),
    (
        {"startDate": "2030-01-02T00:00:00Z", "endDate": "2030-01-01T00:00:00Z"},
        "spec.endDate",
        "endDate must be after startDate",
    ),
    ({"startDate": "tomorrow"}, "spec.startDate", "should match"),
    (
        {"flexibleTimeWindow": {"mode": "FLEXIBLE"}},
        "spec.flexibleTimeWindow.maximumWindowInMinutes",
        "mode FLEXIBLE requires maximumWindowInMinutes",
    ),
    (
        {"flexibleTimeWindow": {"maximumWindowInMinutes": 5}},
        "spec.flexibleTimeWindow.maximumWindowInMinutes",
        "only used with mode FLEXIBLE",
    ),
    ({"retryPolicy": {"maximumRetryAttempts": 186}}, "spec.retryPolicy.maximumRetryAttempts", ""),
    ({"target": {"functionName": "Report"}}, "spec.target.functionName", ""),
    ({"state": "PAUSED"}, "spec.state", "ENABLED"),
    (
        {"deadLetterConfig": {"kafka": {"topic": "t"}, "redis": {"stream": "s"}}},
        "spec.deadLetterConfig",
        "exactly one of kafka, redis",
    ),
]


@pytest.mark.parametrize(("spec", "field", "words"), REFUSED)
def test_the_cel_rules_refuse_naming_the_field(
    cluster: Cluster, namespace: str, spec: dict[str, Any], field: str, words: str
) -> None:
    doc = schedule(namespace, "bad", **spec)
    error = apply(cluster, doc)
    assert f"{field}:" in error and words in error, error
    with pytest.raises(ManifestError):
        parse_schedule(doc)
