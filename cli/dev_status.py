"""The status ``kfaas dev`` writes where a cluster's operator would, as plain functions.

The management API reads `State` from an object's status (``lambda_shapes.function_state`` for
functions and versions, ``lambda_mapping_shapes.mapping_state`` for event source mappings), so
``kfaas dev`` writes the same fields once it has acted on a generation: ``observedGeneration``, a
``Ready`` condition (its transition time kept while its status holds), and ``codeSha256`` for
code that runs, or ``state`` for a mapping, with the pollers' ``Polling`` folded in by the
operator's own pure rules (``kfaas.operator.status``, ADR 032). Pure: ``cli/dev_state.py`` reads
and writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from kfaas.operator.conditions import Outcome, ready
from kfaas.operator.status import mapping_state, polling_outcomes

READY_REASON: Final = "Ready"
READY_MESSAGE: Final = "kfaas dev runs it: instances start on demand"
# The operator's reasons (lambda_shapes maps them to Lambda's reason codes).
RUNTIME_NOT_AVAILABLE: Final = "RuntimeNotAvailable"
CODE_NOT_AVAILABLE: Final = "CodeStoreNotAvailable"
# A FunctionVersion whose spec.codeSha256 is not its template's code's (ADR 031).
CODE_MISMATCH: Final = "CodeMismatch"
MAPPING_NOT_STARTED: Final = "MappingNotStarted"
POLLERS_READY: Final = "PollersReady"

Problem = tuple[str, str]  # reason, message
Status = dict[str, Any]


def ready_condition(
    status: str,
    reason: str,
    message: str,
    generation: int,
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """A ``Ready`` condition; its lastTransitionTime moves only when its status does."""
    before = next(
        (c for c in (previous or {}).get("conditions") or [] if c.get("type") == "Ready"), None
    )
    same = before is not None and before.get("status") == status
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": before.get("lastTransitionTime", now) if same and before else now,
        "observedGeneration": generation,
    }


def function_status(
    generation: int,
    code_sha256: str,
    problem: Problem | None,
    previous: Mapping[str, Any] | None,
    now: str,
) -> Status:
    """What the operator would write once ``generation`` is handed to instances.

    ``codeSha256`` says the code ran; a failure leaves the previous one, so a function that
    served before stays Active through a failed update (``function_state``).
    """
    status, reason, message = ("True", READY_REASON, READY_MESSAGE)
    if problem is not None:
        status, (reason, message) = "False", problem
    condition = ready_condition(status, reason, message, generation, previous, now)
    written: Status = {"observedGeneration": generation, "conditions": [condition]}
    if problem is None:
        written["codeSha256"] = code_sha256
    return written


def mapping_status(
    generation: int,
    enabled: bool,
    refused: str | None,
    previous: Mapping[str, Any] | None,
    now: str,
) -> Status:
    """What the operator would write once the pollers run ``generation`` (or could not).

    The pollers' ``Polling`` condition (kfaas.pollers.status) is theirs to write: kept as they
    wrote it, and folded into ``Ready`` and ``state`` by the operator's own rules (ADR 032), so a
    refused credential or an unreachable source is ``Failed`` here as in a cluster.
    """
    if refused is not None:
        own = Outcome(POLLERS_READY, "False", MAPPING_NOT_STARTED, refused)
    elif not enabled:
        own = Outcome(POLLERS_READY, "True", "Disabled", "spec.enabled is false; no poller runs")
    else:
        own = Outcome(POLLERS_READY, "True", POLLERS_READY, "kfaas dev polls it")
    # polling_outcomes reads the object: a disabled mapping's last report is stale, not counted.
    polling = polling_outcomes({"spec": {"enabled": enabled}, "status": previous or {}})
    outcomes = [own, *polling]
    summary = ready(outcomes, own.message)
    # While all is well, Ready keeps saying what kfaas dev does (polls, or not when disabled).
    chosen = own if summary.status == "True" else summary
    condition = ready_condition(
        chosen.status, chosen.reason, chosen.message, generation, previous, now
    )
    others = [c for c in (previous or {}).get("conditions") or [] if c.get("type") != "Ready"]
    return {
        "observedGeneration": generation,
        "state": mapping_state(outcomes, enabled),
        "conditions": [*others, condition],
    }
