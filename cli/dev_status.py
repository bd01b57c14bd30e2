"""The status ``kfaas dev`` writes where a cluster's operator would, as plain functions.

The management API reads `State` from an object's status (``lambda_shapes.function_state`` for
functions and versions, ``lambda_mapping_shapes.mapping_state`` for event source mappings), so
``kfaas dev`` writes the same fields once it has acted on a generation: ``observedGeneration``, a
``Ready`` condition (its transition time kept while its status holds), and ``codeSha256`` for
code that runs, or ``state`` for a mapping. Pure: ``cli/dev_state.py`` reads and writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

READY_REASON: Final = "Ready"
READY_MESSAGE: Final = "kfaas dev runs it: instances start on demand"
# The operator's reasons (lambda_shapes maps them to Lambda's reason codes).
RUNTIME_NOT_AVAILABLE: Final = "RuntimeNotAvailable"
CODE_NOT_AVAILABLE: Final = "CodeStoreNotAvailable"
# A FunctionVersion whose spec.codeSha256 is not its template's code's (ADR 031).
CODE_MISMATCH: Final = "CodeMismatch"
MAPPING_NOT_STARTED: Final = "MappingNotStarted"

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
    ready = ready_condition(status, reason, message, generation, previous, now)
    written: Status = {"observedGeneration": generation, "conditions": [ready]}
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
    """What the operator would write once the pollers run ``generation`` (or could not)."""
    if refused is not None:
        state, condition = "Failed", ("False", MAPPING_NOT_STARTED, refused)
    elif not enabled:
        state, condition = "Disabled", ("True", "Disabled", "spec.enabled is false; no poller runs")
    else:
        state, condition = "Enabled", ("True", "PollersReady", "kfaas dev polls it")
    ready = ready_condition(*condition, generation, previous, now)
    # The pollers' own condition (`Polling`, kfaas.pollers.status) is theirs to write: kept.
    others = [c for c in (previous or {}).get("conditions") or [] if c.get("type") != "Ready"]
    return {"observedGeneration": generation, "state": state, "conditions": [*others, ready]}
