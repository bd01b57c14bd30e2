"""The pollers' `Polling` condition folded into a mapping's Ready and state, without a fight.

The operator's status (kfaas.operator.status) and a poller's report (kfaas.pollers.status) are
both merges over the same `status.conditions`: these tests run one over the other's output, as
the API server would see them take turns, and check each leaves the other's words alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kfaas.api_objects import status_differs
from kfaas.operator.status import mapping_status, polling_not_folded
from kfaas.pollers.status import PollerReport
from kfaas.pollers.status import mapping_status as poller_status

NOW = "2024-05-01T12:00:00Z"
LATER = datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
REFUSED = "SASL SCRAM-SHA-512 authentication failed for user 'kfaas'"


def deployment(replicas: int = 1) -> dict[str, Any]:
    """A poller Deployment whose rollout is complete."""
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
        },
    }


def mapping(status: dict[str, Any] | None = None, *, enabled: bool = True) -> dict[str, Any]:
    """A mapping whose generation a reconcile pass has acted on (Ready waits for that)."""
    return {
        "kind": "EventSourceMapping",
        "metadata": {"name": "orders", "namespace": "team", "generation": 1},
        "spec": {"functionName": "f", "enabled": enabled},
        "status": {"observedGeneration": 1, **(status or {})},
    }


def report(problem: str | None = None) -> PollerReport:
    return PollerReport(
        lag=0,
        last_batch_at=None,
        last_outcome=None,
        source_problem=problem,
        source_reason="AuthenticationFailed",
    )


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def operator_pass(owner: dict[str, Any]) -> dict[str, Any]:
    """The operator's write over ``owner``, merged as the API server merges a status patch."""
    status = mapping_status(owner, None, deployment(), now=NOW)
    return mapping({**owner["status"], **status}, enabled=owner["spec"]["enabled"])


def poller_pass(owner: dict[str, Any], problem: str | None) -> dict[str, Any]:
    status = poller_status(report(problem), owner["status"], now=LATER)
    return mapping({**owner["status"], **status}, enabled=owner["spec"]["enabled"])


def test_polling_false_makes_ready_false_with_its_reason_and_message() -> None:
    ready = operator_pass(mapping())
    refused = poller_pass(ready, REFUSED)
    assert polling_not_folded(refused)
    folded = operator_pass(refused)
    found = conditions(folded["status"])
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("False", "AuthenticationFailed")
    assert found["Ready"]["message"] == REFUSED
    assert folded["status"]["state"] == "Failed"
    # PollersReady still says what the Deployment says: the pods run, they cannot read.
    assert found["PollersReady"]["status"] == "True"
    assert not polling_not_folded(folded)


def test_ready_again_when_polling_turns_true() -> None:
    failed = operator_pass(poller_pass(operator_pass(mapping()), REFUSED))
    fixed = poller_pass(failed, None)
    assert polling_not_folded(fixed)
    ready = operator_pass(fixed)
    found = conditions(ready["status"])
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("True", "Ready")
    assert ready["status"]["state"] == "Enabled"
    assert not polling_not_folded(ready)


def test_the_operator_never_rewrites_the_pollers_condition() -> None:
    refused = poller_pass(operator_pass(mapping()), REFUSED)
    written = mapping_status(refused, None, deployment(), now="2030-01-01T00:00:00Z")
    polling = conditions(written)["Polling"]
    assert polling == conditions(refused["status"])["Polling"]
    assert "observedGeneration" not in polling


def test_neither_writer_undoes_the_other_once_they_agree() -> None:
    """After one turn each, neither has anything to write: no ping-pong of watch events."""
    owner = operator_pass(poller_pass(operator_pass(mapping()), REFUSED))
    again = poller_status(report(REFUSED), owner["status"], now=LATER)
    assert not status_differs(owner["status"], again)
    assert not status_differs(owner["status"], mapping_status(owner, None, deployment(), now=NOW))
    assert not polling_not_folded(owner)


def test_a_poller_report_keeps_the_condition_in_its_place() -> None:
    owner = operator_pass(poller_pass(operator_pass(mapping()), None))
    before = [c["type"] for c in owner["status"]["conditions"]]
    written = poller_status(report(REFUSED), owner["status"], now=LATER)
    assert [c["type"] for c in written["conditions"]] == before


def test_a_disabled_mapping_ignores_the_last_report() -> None:
    """No poller runs while disabled: a stale Polling=False does not hold Ready down."""
    refused = poller_pass(operator_pass(mapping()), REFUSED)
    disabled = mapping(refused["status"], enabled=False)
    status = mapping_status(disabled, None, deployment(0), now=NOW)
    found = conditions(status)
    assert found["Ready"]["status"] == "True"
    assert status["state"] == "Disabled"
    assert found["Polling"]["status"] == "False"  # kept as the pollers left it


def test_an_operator_step_that_failed_names_ready_before_polling() -> None:
    refused = poller_pass(operator_pass(mapping()), REFUSED)
    refused["status"]["conditions"].append(
        {"type": "FunctionFound", "status": "False", "reason": "FunctionNotFound", "message": "x"}
    )
    found = conditions(mapping_status(refused, None, deployment(), now=NOW))
    assert found["Ready"]["reason"] == "FunctionNotFound"


def test_nothing_is_folded_before_the_operators_first_write() -> None:
    assert not polling_not_folded(poller_pass(mapping(), REFUSED))
    assert not polling_not_folded(mapping())
