"""A reconcile pass as an ordered list of named phases over one state (Knative's ``ReconcileKind``).

Each ``Phase`` is a plain async function of the ``Applier`` (the only way to write, which records
what it wrote) and the pass's state (what the earlier phases found: the parsed spec, the live
Deployment). It returns the ``Outcome`` of the condition it owns, or None when it has nothing to
report. ``run_phases`` walks the list: an API failure inside a phase becomes that phase's
condition, False, with the API server's own words (and an RBAC hint for a 403); a False outcome of
a *gate* phase ends the pass, since the later phases need what it checked. A phase that owns no
condition (housekeeping) lets API failures propagate, so Kopf retries the handler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kfaas.kube_clients import KubeError

from .applier import Applier
from .conditions import Outcome
from .config import OperatorConfig
from .status import Result

log = logging.getLogger("kfaas.operator")

Body = dict[str, Any]


@dataclass
class Pass:
    """One reconcile pass over an owner (a Function or a mapping): what the phases found so far."""

    body: Body
    config: OperatorConfig
    outcomes: list[Outcome] = field(default_factory=list)
    # Status fields besides the conditions (the Function's url, the mapping's source).
    extra: Body = field(default_factory=dict)

    @property
    def uid(self) -> str:
        return str(self.body["metadata"]["uid"])

    @property
    def generation(self) -> int | None:
        generation = self.body.get("metadata", {}).get("generation")
        return None if generation is None else int(generation)

    def failed(self, condition: str) -> bool:
        """Whether an earlier phase of this pass reported ``condition`` False."""
        return any(o.type == condition and o.status == "False" for o in self.outcomes)


State = TypeVar("State", bound=Pass)


@dataclass(frozen=True)
class Phase(Generic[State]):
    """One named step of a pass; ``condition`` None marks housekeeping that reports nothing."""

    name: str
    condition: str | None
    run: Callable[[Applier, State], Awaitable[Outcome | None]]
    gate: bool = False


def api_failure(condition: str, exc: KubeError) -> Outcome:
    """An API failure as the condition a user reads: the reason and message are the server's."""
    hint = " (the operator lacks a permission: check its RBAC)" if exc.status == 403 else ""
    return Outcome(condition, "False", exc.reason or "ApplyFailed", f"{exc.message}{hint}")


async def run_phases(phases: Sequence[Phase[State]], applier: Applier, state: State) -> Result:
    """Run ``phases`` in order over ``state``; the result holds their outcomes and the writes."""
    for phase in phases:
        try:
            outcome = await phase.run(applier, state)
        except KubeError as exc:
            if phase.condition is None:
                raise
            outcome = api_failure(phase.condition, exc)
        log.debug("phase %s: %s", phase.name, outcome or "nothing to report")
        if outcome is None:
            continue
        state.outcomes.append(outcome)
        if phase.gate and outcome.status == "False":
            break
    return Result(state.outcomes, state.generation, state.extra, applier.written)
