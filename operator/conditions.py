"""Step outcomes as status conditions, and what a Deployment's status says about readiness.

Pure functions: the reconciler records one ``Outcome`` per step and these turn them into the
``status.conditions`` users read with ``kubectl get``/``kubectl wait``. ``Ready`` sums the steps
up and repeats the reason and message of the first one that is not True, so the top-level
condition already says what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from . import names

Status = Literal["True", "False", "Unknown"]
Body = dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    type: str
    status: Status
    reason: str
    message: str = ""


def ready(outcomes: Sequence[Outcome], ready_message: str) -> Outcome:
    """False if any step failed, Unknown while any is pending, else True."""
    for wanted in ("False", "Unknown"):
        for outcome in outcomes:
            if outcome.status == wanted:
                return Outcome("Ready", outcome.status, outcome.reason, outcome.message)
    return Outcome("Ready", "True", "Ready", ready_message)


def merge_conditions(
    existing: Iterable[Body], outcomes: Iterable[Outcome], *, generation: int | None, now: str
) -> list[Body]:
    """Conditions after applying ``outcomes``; a transition time changes only with the status."""
    merged = {condition.get("type"): dict(condition) for condition in existing}
    for outcome in outcomes:
        before = merged.get(outcome.type)
        changed = before is None or before.get("status") != outcome.status
        merged[outcome.type] = {
            "type": outcome.type,
            "status": outcome.status,
            "reason": outcome.reason,
            "message": outcome.message,
            "lastTransitionTime": (
                now if changed or before is None else before.get("lastTransitionTime", now)
            ),
            "observedGeneration": generation,
        }
    # Ready first, then the steps in a stable order.
    return sorted(merged.values(), key=lambda c: (c["type"] != "Ready", str(c["type"])))


def _deployment_condition(deployment: Body, kind: str) -> Body | None:
    for condition in deployment.get("status", {}).get("conditions", []):
        if condition.get("type") == kind:
            return dict(condition)
    return None


def rolled_out(deployment: Body) -> bool:
    """Every desired pod runs the current template and the controller has seen the change."""
    spec = deployment.get("spec", {})
    status = deployment.get("status", {})
    generation = deployment.get("metadata", {}).get("generation", 0)
    replicas = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= generation
        and status.get("updatedReplicas", 0) >= replicas
        and status.get("replicas", 0) == replicas
        and status.get("readyReplicas", 0) >= replicas
    )


def instances_outcome(deployment: Body | None, selector: str) -> Outcome:
    """What the runtime Deployment says about a function's instances; ``selector`` (a label
    selector) finds its pods, for the messages."""
    if deployment is None:
        return Outcome("InstancesReady", "Unknown", "DeploymentPending", "not created yet")
    spec = deployment.get("spec", {})
    status = deployment.get("status", {})
    replicas = int(spec.get("replicas", 1))
    ready_count = int(status.get("readyReplicas", 0))
    progressing = _deployment_condition(deployment, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Outcome(
            "InstancesReady",
            "False",
            "ProgressDeadlineExceeded",
            f"new instances did not become ready in time ({progressing.get('message', '')}); "
            f"see `kubectl describe pods -l {selector}` for image pull, crash or probe errors",
        )
    failure = _deployment_condition(deployment, "ReplicaFailure")
    if failure and failure.get("status") == "True":
        return Outcome(
            "InstancesReady",
            "False",
            str(failure.get("reason") or "ReplicaFailure"),
            f"pods cannot be created: {failure.get('message', '')} (check quotas and the "
            "podTemplate)",
        )
    if replicas == 0:
        return Outcome(
            "InstancesReady", "True", "ScaledToZero", "no instance runs; an invocation starts one"
        )
    if not rolled_out(deployment):
        updated = int(status.get("updatedReplicas", 0))
        if ready_count == 0:
            return Outcome(
                "InstancesReady",
                "Unknown",
                "Starting",
                f"0 of {replicas} instances ready; waiting for pods (`kubectl get pods -l "
                f"{selector}`)",
            )
        return Outcome(
            "InstancesReady",
            "Unknown",
            "RollingOut",
            f"rolling out: {updated} of {replicas} instances updated, {ready_count} ready",
        )
    return Outcome("InstancesReady", "True", "InstancesReady", f"{ready_count} instances ready")


def poller_outcome(deployment: Body | None, mapping: str, enabled: bool) -> Outcome:
    """What the poller Deployment says about a mapping's pollers."""
    if deployment is None:
        return Outcome("PollersReady", "Unknown", "DeploymentPending", "not created yet")
    if not enabled:
        return Outcome("PollersReady", "True", "Disabled", "spec.enabled is false; no poller runs")
    outcome = instances_outcome(deployment, f"{names.FUNCTION_LABEL}={mapping}")
    message = outcome.message.replace(names.FUNCTION_LABEL, names.MAPPING_LABEL)
    reason = "PollersReady" if outcome.reason == "InstancesReady" else outcome.reason
    return Outcome("PollersReady", outcome.status, reason, message.replace("instances", "pollers"))
