"""The scheduler engine's settings: read from ``KFAAS_SCHEDULER_*`` once, at the entry point.

``kfaas scheduler`` and ``kfaas dev`` both run a ``ScheduleEngine`` and build these from their
environment before anything starts (ADR 020), so a bad value is one line naming the variable and
exit 2, never a traceback from inside the engine's loop. Tests shrink every time here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kfaas.config import seconds

DEFAULT_POLL_SECONDS = 2.0
DEFAULT_CLAIM_SECONDS = 30.0
DEFAULT_RETRY_BASE_SECONDS = 1.0
# Deliveries one replica has in flight at once. Schedules created together come due together
# (a flood of 2,000 had 2,000 invocations in flight, each a connection to the gateway); the rest
# wait their turn.
DEFAULT_MAX_DELIVERIES = 64


@dataclass(frozen=True)
class SchedulerSettings:
    # How often the engine lists the Schedules (it also wakes at the earliest due time).
    poll_seconds: float = DEFAULT_POLL_SECONDS
    # How long a claimed tick stays with the replica that claimed it unless renewed: the time
    # another replica waits before it takes a silent replica's tick over.
    claim_seconds: float = DEFAULT_CLAIM_SECONDS
    # The first retry's pause; later ones double, up to 60 times this (EventBridge: 1 s to 60 s).
    retry_base_seconds: float = DEFAULT_RETRY_BASE_SECONDS
    # Not read from the environment: a bound on one replica's fan-out, not a tuning knob.
    max_deliveries: int = DEFAULT_MAX_DELIVERIES

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SchedulerSettings:
        """Read the settings; a bad value raises ValueError naming the variable."""
        settings = cls(
            poll_seconds=seconds(environ, "KFAAS_SCHEDULER_POLL_SECONDS", DEFAULT_POLL_SECONDS),
            claim_seconds=seconds(environ, "KFAAS_SCHEDULER_CLAIM_SECONDS", DEFAULT_CLAIM_SECONDS),
            retry_base_seconds=seconds(
                environ, "KFAAS_SCHEDULER_RETRY_BASE_SECONDS", DEFAULT_RETRY_BASE_SECONDS
            ),
        )
        # Zero would make a loop spin: polling, a lease that lapses at once, retries in a burst.
        for variable, value in (
            ("KFAAS_SCHEDULER_POLL_SECONDS", settings.poll_seconds),
            ("KFAAS_SCHEDULER_CLAIM_SECONDS", settings.claim_seconds),
            ("KFAAS_SCHEDULER_RETRY_BASE_SECONDS", settings.retry_base_seconds),
        ):
            if value <= 0:
                raise ValueError(f"{variable}={value:g} must be more than 0 seconds")
        return settings
