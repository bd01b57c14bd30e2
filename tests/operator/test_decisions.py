"""Pure decisions behind the operator: conditions, who is active, and the gateways' demand."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from kfaas.demand import demand_lease, lease_name, total_demand
from kfaas.operator.conditions import (
    Outcome,
    instances_outcome,
    merge_conditions,
    ready,
    rolled_out,
)
from kfaas.operator.config import OperatorOptions
from kfaas.operator.peering import is_active, missing_peering, peering_resource
from kfaas.operator.status import function_status

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def deployment(
    replicas: int, ready_count: int, *, updated: int | None = None, **extra: Any
) -> dict[str, Any]:
    status = {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas if updated is None else updated,
        "readyReplicas": ready_count,
        **extra,
    }
    return {"metadata": {"generation": 1}, "spec": {"replicas": replicas}, "status": status}


def test_ready_repeats_the_first_failing_step() -> None:
    outcomes = [
        Outcome("CodeReady", "True", "InlineCode"),
        Outcome("ResourcesReady", "False", "Forbidden", "cannot create deployments"),
        Outcome("InstancesReady", "Unknown", "Starting"),
    ]
    assert ready(outcomes, "ok") == Outcome(
        "Ready", "False", "Forbidden", "cannot create deployments"
    )
    assert ready(outcomes[2:], "ok").status == "Unknown"
    assert ready(outcomes[:1], "invocable") == Outcome("Ready", "True", "Ready", "invocable")


def test_a_refresh_is_not_ready_before_the_pass_for_this_generation() -> None:
    """A Deployment event may refresh the status before the reconcile pass of a new spec wrote
    its own: Ready waits for `observedGeneration` to reach `metadata.generation`."""
    owner: dict[str, Any] = {"kind": "Function", "metadata": {"name": "f", "generation": 2}}
    running = deployment(1, 1)
    running["spec"]["template"] = {"metadata": {"annotations": {}}}
    for observed in (None, 1):
        owner["status"] = {} if observed is None else {"observedGeneration": observed}
        status = function_status(owner, None, running, now="t")
        found = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (found["status"], found["reason"]) == ("Unknown", "Reconciling")
    owner["status"] = {"observedGeneration": 2}
    status = function_status(owner, None, running, now="t")
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["status"] == "True"


def test_transition_time_changes_only_with_the_status() -> None:
    first = merge_conditions([], [Outcome("Ready", "True", "Ready")], generation=1, now="t1")
    same = merge_conditions(first, [Outcome("Ready", "True", "Ready", "x")], generation=2, now="t2")
    assert same[0]["lastTransitionTime"] == "t1" and same[0]["observedGeneration"] == 2
    flipped = merge_conditions(same, [Outcome("Ready", "False", "Broken")], generation=2, now="t3")
    assert flipped[0]["lastTransitionTime"] == "t3"


def test_instances_outcomes() -> None:
    assert instances_outcome(None, "f").status == "Unknown"
    assert instances_outcome(deployment(0, 0), "f").reason == "ScaledToZero"
    assert instances_outcome(deployment(2, 0), "f").reason == "Starting"
    assert instances_outcome(deployment(2, 1, updated=1), "f").reason == "RollingOut"
    assert instances_outcome(deployment(2, 2), "f") == Outcome(
        "InstancesReady", "True", "InstancesReady", "2 instances ready"
    )
    stuck = deployment(
        1,
        0,
        conditions=[
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": "ReplicaSet f-1 has timed out progressing."}
        ],
    )  # fmt: skip
    failed = instances_outcome(stuck, "kfaas.dev/function=f")
    assert failed.status == "False" and "kubectl describe pods -l kfaas.dev/function=f" in (
        failed.message
    )
    assert rolled_out(deployment(2, 2)) and not rolled_out(deployment(2, 1))


def _peer(priority: int, seconds_ago: float, lifetime: int = 60) -> dict[str, Any]:
    seen = NOW - datetime.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def test_active_when_no_live_peer_outranks_us() -> None:
    me = _peer(10, 1)
    assert is_active({"me": me}, "me", 10, NOW)
    assert is_active({"me": me, "low": _peer(5, 1)}, "me", 10, NOW)
    assert not is_active({"me": me, "high": _peer(20, 1)}, "me", 10, NOW)
    assert not is_active({"me": me, "twin": _peer(10, 1)}, "me", 10, NOW)  # Kopf pauses both
    assert is_active({"me": me, "dead": _peer(20, 120)}, "me", 10, NOW)
    assert not is_active({"other": _peer(1, 1)}, "me", 10, NOW)  # not yet seen: Kopf starts paused


def test_demand_is_summed_over_live_replicas() -> None:
    leases = [
        demand_lease("kfaas", "gw-a", {"media/thumb": 3, "media/idle": 0}, NOW),
        demand_lease("kfaas", "gw-b", {"media/thumb": 2, "other/fn": 1}, NOW),
        demand_lease("kfaas", "gw-gone", {"media/thumb": 50}, NOW - datetime.timedelta(minutes=1)),
    ]
    assert total_demand(leases, NOW + datetime.timedelta(seconds=1)) == {
        "media/thumb": 5,
        "other/fn": 1,
    }
    assert leases[0]["metadata"]["name"] == lease_name("gw-a") == "kfaas-demand-gw-a"
    assert leases[0]["metadata"]["annotations"]["kfaas.dev/concurrency"] == '{"media/thumb":3}'


def test_malformed_leases_count_for_nothing() -> None:
    broken = demand_lease("kfaas", "gw", {"a/b": 1}, NOW)
    broken["metadata"]["annotations"]["kfaas.dev/concurrency"] = "not json"
    assert total_demand([broken, {"spec": {}}], NOW) == {}


def test_a_missing_peering_object_is_named_with_what_to_do() -> None:
    cluster = missing_peering("kfaas", None)
    assert cluster.startswith("no ClusterKopfPeering 'kfaas': ")
    assert "templates/peering.yaml" in cluster and "KFAAS_PEERING_NAME" in cluster
    assert "--standalone" in cluster
    assert missing_peering("p", "team").startswith("no KopfPeering 'p' in namespace 'team': ")
    assert peering_resource(None) == ("kopf.dev/v1", "clusterkopfpeerings")
    assert peering_resource("team") == ("kopf.dev/v1", "kopfpeerings")


def test_operator_options_come_from_the_given_environment() -> None:
    environ = {
        "POD_NAME": "op-0",
        "KFAAS_OPERATOR_PRIORITY": "7",
        "KFAAS_PEERING_NAME": "prod",
        "KFAAS_OPERATOR_METRICS_PORT": "9090",
    }
    options = OperatorOptions.from_env("team", standalone=True, environ=environ)
    assert (options.identity, options.priority, options.peering_name) == ("op-0", 7, "prod")
    assert options.metrics_port == 9090 and options.standalone and options.namespace == "team"
    assert OperatorOptions.from_env(None, environ={}).priority > 0  # random, never 0
    with pytest.raises(ValueError, match="KFAAS_OPERATOR_PRIORITY='high' must be an integer"):
        OperatorOptions.from_env(None, environ={"KFAAS_OPERATOR_PRIORITY": "high"})
    with pytest.raises(ValueError, match="KFAAS_OPERATOR_METRICS_PORT='x' must be a port"):
        OperatorOptions.from_env(None, environ={"KFAAS_OPERATOR_METRICS_PORT": "x"})
