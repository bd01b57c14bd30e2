"""What the operator (and the pollers) write under ``status``: its models, and how it is computed.

The spec models live in ``kfaas.manifests`` because `kfaas dev` reads them too; the status is a
cluster-only matter, so its shape is defined here, next to the code that computes it. ``crdgen``
renders both into the CRDs' openAPIV3Schema, so the status the API server stores is checked the
same way the spec is. ``function_status`` and ``mapping_status`` compute the body the operator
writes from a reconcile pass's ``Result`` and the live Deployment: pure functions (the clock
comes in as ``now``), kept out of the reconciler by the import-linter purity contract.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from . import names
from .conditions import (
    Outcome,
    instances_outcome,
    merge_conditions,
    poller_outcome,
    ready,
    rolled_out,
)

Body = dict[str, Any]


class _Status(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class Condition(_Status):
    """One step behind readiness, as Kubernetes conditions are everywhere (`kubectl wait`)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class FunctionStatus(_Status):
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    # sha256 of the code the current pods run (inline or ConfigMap files, or the image name).
    code_sha256: str | None = None
    # Instances asked for by the autoscaler (Deployment replicas) and the ones serving.
    instances: int | None = None
    ready_instances: int | None = None
    # Where the function is invoked through the gateway (its HTTP trigger when enabled).
    url: str | None = None


class MappingStatus(_Status):
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    # "kafka:<topic>" or "redis:<stream>", for the printer column.
    source: str | None = None
    # Enabled, Disabled, Creating, Failed — what `kubectl get` shows.
    state: str | None = None
    # Written by the pollers: records behind the head of the source, summed over partitions.
    lag: int | None = None
    last_processing_result: str | None = None
    last_batch_at: str | None = None


# -- The status body: what a reconcile pass and the Deployment say, merged (pure) --------------


@dataclass
class Result:
    """What a reconcile pass found: step outcomes, status fields, failures to report as Events."""

    outcomes: list[Outcome]
    generation: int | None
    extra: Body = field(default_factory=dict)
    # The objects this pass wrote ("Deployment/x-fn"): none when everything was already right.
    written: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "False"]


def rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _running_code(deployment: Body | None) -> str | None:
    """The code digest the pods run: the template's, once the rollout is complete."""
    if deployment is None or not rolled_out(deployment):
        return None
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    value = annotations.get(names.CODE_SHA256_ANNOTATION)
    return str(value) if value else None


def _counts(deployment: Body | None, provisioned: Body | None = None) -> Body:
    """Instances and ready ones, on-demand and provisioned together (ADR 030)."""
    if deployment is None:
        return {}
    both = [d for d in (deployment, provisioned) if d is not None]
    return {
        "instances": sum(int(d.get("spec", {}).get("replicas", 0)) for d in both),
        "readyInstances": sum(int(d.get("status", {}).get("readyReplicas", 0)) for d in both),
    }


_WORST_FIRST = {"False": 0, "Unknown": 1, "True": 2}

# The condition the pollers write (kfaas.pollers.status): folded into a mapping's Ready and
# state, never rewritten here, so the operator's writes and the pollers' never undo each other.
POLLING = "Polling"
_POLLERS_READY = "PollersReady"


def combined_instances(on_demand: Outcome, provisioned: Outcome | None) -> Outcome:
    """One InstancesReady of both Deployments: the worse one, and of two good ones the one with
    instances (an on-demand Deployment at zero beside provisioned ones is not "no instance")."""
    if provisioned is None:
        return on_demand
    ranked = sorted(
        (provisioned, on_demand),
        key=lambda o: (_WORST_FIRST.get(o.status, 1), o.reason == "ScaledToZero"),
    )
    return ranked[0]


def _steps(owner: Body, result: Result | None, own: str) -> list[Outcome]:
    """The step outcomes: the stored ones, overridden by a fresh reconcile pass."""
    conditions = (owner.get("status") or {}).get("conditions") or []
    steps = {
        c["type"]: Outcome(c["type"], c["status"], c.get("reason", ""), c.get("message", ""))
        for c in conditions
        if c.get("type") not in ("Ready", own, POLLING)
    }
    for outcome in result.outcomes if result else []:
        steps[outcome.type] = outcome
    return list(steps.values())


def _unreconciled(owner: Body, observed: int | None) -> list[Outcome]:
    """Pending while no reconcile pass has acted on the spec as it now is: a refresh from a
    Deployment event must not say Ready before the pass for this generation wrote its status
    (`kubectl wait --for=condition=Ready` would return with `observedGeneration` still unset)."""
    current = (owner.get("metadata") or {}).get("generation")
    if current is None or (observed is not None and observed >= current):
        return []
    return [Outcome("Ready", "Unknown", "Reconciling", f"generation {current} not yet reconciled")]


def _status(
    owner: Body,
    result: Result | None,
    watched: Outcome,
    ready_message: str,
    extra: Body,
    now: str,
    reported: list[Outcome] | None = None,
) -> Body:
    """The status body; ``reported`` (the pollers' Polling) counts for Ready but is kept as its
    writer wrote it: ``merge_conditions`` leaves a condition it is not given untouched."""
    steps = _steps(owner, result, watched.type)
    live = owner.get("status") or {}
    generation = result.generation if result else live.get("observedGeneration")
    summary = ready(
        [*steps, *_unreconciled(owner, generation), watched, *(reported or [])], ready_message
    )
    status: Body = {
        "conditions": merge_conditions(
            live.get("conditions") or [],
            [summary, *steps, watched],
            generation=generation,
            now=now,
        ),
    }
    if result is not None:
        status["observedGeneration"] = result.generation
        status.update(result.extra)
    status.update({key: value for key, value in extra.items() if value is not None})
    return status


def function_status(
    owner: Body,
    result: Result | None,
    deployment: Body | None,
    *,
    now: str,
    provisioned: Body | None = None,
) -> Body:
    """A Function's (or a FunctionVersion's) status from its last reconcile pass (if any), its
    runtime Deployment and the Deployment of its provisioned instances (ADR 030), if any."""
    selector = _pods_selector(owner)
    watched = combined_instances(
        instances_outcome(deployment, selector),
        instances_outcome(provisioned, selector) if provisioned is not None else None,
    )
    code = _running_code(deployment)
    if provisioned is not None and _running_code(provisioned) != code:
        code = None  # one of the two still rolls out
    extra = {"codeSha256": code, **_counts(deployment, provisioned)}
    return _status(owner, result, watched, "the function can be invoked", extra, now)


def _pods_selector(owner: Body) -> str:
    """The label selector of the owner's runtime pods, which the instance messages name."""
    if owner.get("kind") == "FunctionVersion" or "template" in (owner.get("spec") or {}):
        spec = owner.get("spec") or {}
        function, version = str(spec.get("functionName", "")), str(spec.get("version", ""))
        labels = names.function_selector(function, version)
    else:
        labels = {names.FUNCTION_LABEL: owner["metadata"]["name"]}
    return ",".join(f"{key}={value}" for key, value in labels.items())


def mapping_status(
    owner: Body, result: Result | None, deployment: Body | None, *, now: str
) -> Body:
    """A mapping's status from its last reconcile pass (if any) and its poller Deployment."""
    enabled = bool((owner.get("spec") or {}).get("enabled", True))
    watched = poller_outcome(deployment, owner["metadata"]["name"], enabled)
    steps = _steps(owner, result, watched.type)
    polling = polling_outcomes(owner)
    extra = {"state": mapping_state([*steps, watched, *polling], enabled)}
    return _status(owner, result, watched, "pollers are running", extra, now, polling)


def polling_outcomes(owner: Body) -> list[Outcome]:
    """The pollers' Polling condition as they last wrote it; none while the mapping is disabled
    (no poller runs, so the last report is stale) or before any poller reported."""
    if not (owner.get("spec") or {}).get("enabled", True):
        return []
    conditions = (owner.get("status") or {}).get("conditions") or []
    return [
        Outcome(POLLING, c["status"], c.get("reason", ""), c.get("message", ""))
        for c in conditions
        if c.get("type") == POLLING and c.get("status") in _WORST_FIRST
    ]


def polling_not_folded(owner: Body) -> bool:
    """Whether the stored Ready or state disagrees with the stored conditions, the pollers'
    Polling among them: a poller's report changed and the operator has not yet folded it in.

    Read from the object alone (no API call), so every watch event of a mapping can ask. False
    before the operator's first write (its reconcile pass writes the first Ready).
    """
    status = owner.get("status") or {}
    stored = {c.get("type"): c for c in status.get("conditions") or []}
    before = stored.get("Ready")
    if before is None:
        return False
    enabled = bool((owner.get("spec") or {}).get("enabled", True))
    # In mapping_status's order (the first step not True names Ready's reason): the operator's
    # steps, then PollersReady, then Polling.
    order = sorted(stored, key=lambda kind: (kind == _POLLERS_READY, str(kind)))
    steps = [
        Outcome(str(t), c.get("status", "Unknown"), c.get("reason", ""), c.get("message", ""))
        for t, c in ((t, stored[t]) for t in order)
        if t not in ("Ready", POLLING)
    ]
    outcomes = [*steps, *polling_outcomes(owner)]
    summary = ready(outcomes, "pollers are running")
    now = (summary.status, summary.reason, summary.message)
    was = (before.get("status"), before.get("reason", ""), before.get("message", ""))
    return now != was or status.get("state") != mapping_state(outcomes, enabled)


def mapping_state(outcomes: list[Outcome], enabled: bool) -> str:
    if any(o.status == "False" for o in outcomes):
        return "Failed"
    if not enabled:
        return "Disabled"
    if any(o.status == "Unknown" for o in outcomes):
        return "Creating"
    return "Enabled"
