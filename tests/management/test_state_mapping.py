"""State and LastUpdateStatus follow the operator's conditions (ADR 024's table).

boto3's waiters (`function_active_v2`, `function_updated_v2`, `published_version_active`) read
only these two fields, so each row of the table is checked, and the waiters' own acceptors are
run over the answers to show they stop, retry or fail where Lambda's would.
"""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.waiter import WaiterModel

from kfaas.lambda_shapes import function_state

WAITERS: WaiterModel = botocore.session.get_session().get_waiter_model("lambda")


def status(
    ready: str | None, *, reason: str = "Ready", observed: int = 2, served: bool = True
) -> dict[str, Any]:
    body: dict[str, Any] = {"observedGeneration": observed}
    if served:
        body["codeSha256"] = "ab" * 32
    if ready is not None:
        body["conditions"] = [
            {"type": "InstancesReady", "status": "True", "reason": "InstancesReady"},
            {"type": "Ready", "status": ready, "reason": reason, "message": f"says {reason}"},
        ]
    return body


@pytest.mark.parametrize(
    ("live", "state", "update"),
    [
        (None, "Pending", "InProgress"),
        (status(None, served=False), "Pending", "InProgress"),
        (status("Unknown", reason="Starting", served=False), "Pending", "InProgress"),
        (status("True", reason="ScaledToZero"), "Active", "Successful"),
        (status("True"), "Active", "Successful"),
        # The operator has not yet acted on generation 2: whatever it said was about generation 1.
        (status("True", observed=1), "Active", "InProgress"),
        (status("False", reason="InvalidSpec", observed=1), "Active", "InProgress"),
        (status("Unknown", reason="RollingOut"), "Active", "InProgress"),
        (status("False", reason="ProgressDeadlineExceeded"), "Active", "Failed"),
        (status("False", reason="RuntimeNotAvailable", served=False), "Failed", "Failed"),
    ],
)
def test_state_table(live: dict[str, Any] | None, state: str, update: str) -> None:
    fields = function_state(live, generation=2)
    assert (fields["State"], fields["LastUpdateStatus"]) == (state, update)


def test_a_first_failure_fails_the_function_with_lambdas_reason_code() -> None:
    fields = function_state(status("False", reason="RuntimeNotAvailable", served=False), 2)
    assert fields["StateReasonCode"] == "InvalidRuntime"
    assert fields["StateReason"] == "says RuntimeNotAvailable"
    assert fields["LastUpdateStatusReasonCode"] == "InvalidRuntime"


def test_a_failed_update_of_a_serving_function_keeps_it_active() -> None:
    fields = function_state(status("False", reason="SomethingNew"), 2)
    assert fields["State"] == "Active"
    assert "StateReason" not in fields
    assert fields["LastUpdateStatusReasonCode"] == "InternalError"
    assert fields["LastUpdateStatusReason"] == "says SomethingNew"


def test_pending_says_creating() -> None:
    fields = function_state(None, 1)
    assert fields["StateReasonCode"] == "Creating"
    assert fields["StateReason"] == "The function is being created."


def _waiter_outcome(name: str, answer: dict[str, Any]) -> str:
    """The first acceptor of a boto3 waiter that matches the answer: success, retry or failure."""
    config = WAITERS.get_waiter(name)
    for acceptor in config.acceptors:
        if acceptor.matcher == "path" and acceptor.matcher_func(answer):
            return str(acceptor.state)
    return "retry"


@pytest.mark.parametrize(
    ("live", "active", "updated"),
    [
        (None, "retry", "retry"),
        (status("True"), "success", "success"),
        (status("Unknown", reason="RollingOut"), "success", "retry"),
        (status("False", reason="ProgressDeadlineExceeded"), "success", "failure"),
        (status("False", reason="InvalidSpec", served=False), "failure", "failure"),
    ],
)
def test_boto3_waiters_follow_the_state(
    live: dict[str, Any] | None, active: str, updated: str
) -> None:
    configuration = dict(function_state(live, 2))
    assert _waiter_outcome("FunctionActiveV2", {"Configuration": configuration}) == active
    assert _waiter_outcome("FunctionUpdatedV2", {"Configuration": configuration}) == updated
    assert _waiter_outcome("PublishedVersionActive", configuration) == active
