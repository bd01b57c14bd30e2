"""The seam between the gateway and whatever runs function instances.

The gateway routes invocations to ready instances and reports demand; an ``InstanceBackend`` turns
demand into running instances. Under ``kfaas dev`` that is local processes; in a cluster it is the
operator's Deployments, discovered through EndpointSlices. Both sides speak only these types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Endpoint:
    """One ready runtime instance: where to send ``POST /invoke`` and how many at once."""

    instance_id: str
    url: str
    capacity: int
    # What the gateway presents in X-Kfaas-Runtime-Token (ADR 011); "" when the instance checks
    # no token.
    token: str = field(default="", repr=False)


EndpointsListener = Callable[[str, list[Endpoint]], None]
"""Called with a function key (``namespace/name``) and its complete list of ready endpoints."""


class InstanceBackend(Protocol):
    """Starts and stops instances; tells the gateway which endpoints are ready."""

    def subscribe(self, listener: EndpointsListener) -> None:
        """Register for endpoint changes; called with the full list for a function each time."""

    def demand(self, function_key: str, concurrency: int) -> None:
        """Report the current in-flight plus waiting invocations of a function.

        A non-zero figure for a function with no instance must start one at once (scale from zero);
        the backend decides everything else with the shared scaling rule.
        """
