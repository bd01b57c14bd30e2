"""`kfaas dev` runs Schedules: a `rate(2 seconds)` schedule's ticks reach a function as
EventBridge's Scheduled Event, judged by aws-lambda-powertools' own parser (ADR 026)."""

from __future__ import annotations

import datetime
import itertools
import json
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from devserver import dev_server, make_lambda_client
from waiting import eventually

MANIFESTS = """\
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: ticks}
spec:
  runtime: python3.11
  handler: recorder.handler
  scaling: {maxInstances: 1, scaleToZeroAfterSeconds: 900}
  code:
    inline:
      recorder.py: |
        # Keeps what it receives; {"list": true} returns it. One worker, one instance.
        RECORDS = []
        def handler(event, context):
            if event == {"list": True}:
                return RECORDS
            RECORDS.append(event)
            return {"recorded": len(RECORDS)}
---
apiVersion: kfaas.dev/v1alpha1
kind: Schedule
metadata: {name: every-2s}
spec:
  scheduleExpression: rate(2 seconds)
  target: {functionName: ticks}
"""


def test_kfaas_dev_fires_a_schedule_as_scheduled_events(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(MANIFESTS)
    state = tmp_path / "state"
    with dev_server([tmp_path / "app.yaml"], args=["--state", str(state)]) as server:
        client = make_lambda_client(server.url)

        def received() -> list[dict[str, Any]] | None:
            reply = client.invoke(FunctionName="ticks", Payload=json.dumps({"list": True}))
            events: list[dict[str, Any]] = json.loads(reply["Payload"].read())
            return events if len(events) >= 3 else None

        events = eventually(received, within=30, what="three scheduled events")
        summary = server.output()
        metrics = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()
        stored = yaml.safe_load(
            (state / "objects" / "schedules" / "default" / "every-2s.yaml").read_text()
        )
    parsed = [EventBridgeEvent(event) for event in events]
    for event in parsed:
        assert event.source == "aws.events"
        assert event.detail_type == "Scheduled Event"
        assert event.account == "default" and event.region == "us-east-1"
        assert event.resources == ["arn:aws:scheduler:us-east-1:default:schedule/default/every-2s"]
        assert event.detail == {}
    times = [datetime.datetime.fromisoformat(e.time.replace("Z", "+00:00")) for e in parsed]
    # Every tick once, two seconds apart, none skipped.
    assert [later - earlier for earlier, later in itertools.pairwise(times)] == [
        datetime.timedelta(seconds=2)
    ] * (len(times) - 1)
    assert len({event.get_id for event in parsed}) == len(parsed)
    fired = [
        line for line in metrics.splitlines() if line.startswith("kfaas_schedule_fires_total{")
    ]
    assert fired and 'schedule="every-2s"' in fired[0] and float(fired[0].split()[-1]) >= 3
    assert "schedule default/every-2s: firing rate(2 seconds) -> ticks" in summary
    status = stored["status"]
    assert status["state"] == "ENABLED" and status["lastTick"] and status["nextFireTime"]


# Hostile: a Schedule of team-a naming a function that exists only in team-b. `functionName` is a
# plain DNS label (a `team-b/ticks` or `team-b%2Fticks` is refused by the model and the CRD), and
# the engine always invokes within the Schedule's own namespace. A Schedule of team-b naming the
# same function is the control: it fires, so the function was there to be reached.
NAMESPACED = MANIFESTS.replace(
    "metadata: {name: ticks}", "metadata: {name: ticks, namespace: team-b}"
)
CROSS_NAMESPACE = (
    NAMESPACED.replace(
        "metadata: {name: every-2s}", "metadata: {name: own, namespace: team-b}"
    ).replace("rate(2 seconds)", "rate(1 second)")
    + """---
apiVersion: kfaas.dev/v1alpha1
kind: Schedule
metadata: {name: intruder, namespace: team-a}
spec:
  scheduleExpression: rate(1 second)
  target: {functionName: ticks}
"""
)


def test_a_schedule_reaches_only_its_own_namespace(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(CROSS_NAMESPACE)
    with dev_server([tmp_path / "app.yaml"]) as server:
        client = make_lambda_client(server.url)

        def metric(name: str, schedule: str, namespace: str, extra: str = "") -> float:
            text = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()
            labels = (f'namespace="{namespace}"', f'schedule="{schedule}"', extra)
            return sum(
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith(name + "{") and all(label in line for label in labels)
            )

        eventually(
            lambda: metric(
                "kfaas_schedule_failures_total", "intruder", "team-a", 'reason="not_found"'
            ) >= 3,
            within=30, what="three of team-a's ticks refused as not found",
        )  # fmt: skip
        reply = client.invoke(FunctionName="team-b/ticks", Payload=json.dumps({"list": True}))
        events: list[dict[str, Any]] = json.loads(reply["Payload"].read())
        intruder_fires = metric("kfaas_schedule_fires_total", "intruder", "team-a")
        intruder_missed = metric("kfaas_schedule_missed_total", "intruder", "team-a")
    # The control fired into team-b; team-a's Schedule reached nothing there.
    assert events, "team-b's own schedule never fired: the test proves nothing"
    arns = {arn for event in events for arn in event["resources"]}
    assert arns == {"arn:aws:scheduler:us-east-1:team-b:schedule/default/own"}
    assert intruder_fires == 0 and intruder_missed >= 3
