"""How many instances a function should have: the concurrency-based scaling rule.

The operator (pods) and the local backend (processes) both scale with this one rule, so a function
behaves the same under `kfaas dev` and in a cluster. It follows Knative's autoscaler: the desired
count is observed concurrency divided by what an instance should carry (`perInstance` workers at
`targetUtilization`), averaged over a stable window (60 s) so it does not flap, with a short panic
window (6 s) that takes over when a burst asks for at least `panic_threshold` times the current
count — and during panic the count never goes down. The result is bounded by min/provisioned,
max and `reserved`; it reaches zero only after `scaleToZeroAfterSeconds` without any work.

Concurrency samples are what the gateway holds for the function: in flight plus queued, so
requests waiting for a first instance pull the count up from zero. The caller samples at a
regular interval; windows are simple means of the samples they contain.

`record` and `desired_instances` update the `ScalingState` they are given (the sample history and
the panic memory); they do no I/O and read no clock, so they are tested with made-up times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kfaas.manifests import FunctionSpec

# Dividing 2.1 by 0.7 gives 3.0000000000000004; that must still ask for 3 instances, not 4.
_EPSILON = 1e-9


@dataclass(frozen=True)
class ScalingPolicy:
    min_instances: int
    max_instances: int
    provisioned: int
    per_instance: int
    target_utilization: float
    scale_to_zero_after_seconds: float
    reserved: int | None
    stable_window_seconds: float = 60.0
    panic_window_seconds: float = 6.0
    panic_threshold: float = 2.0

    @classmethod
    def from_spec(cls, spec: FunctionSpec) -> ScalingPolicy:
        return cls(
            min_instances=spec.scaling.min_instances,
            max_instances=spec.scaling.max_instances,
            provisioned=spec.concurrency.provisioned,
            per_instance=spec.concurrency.per_instance,
            target_utilization=spec.scaling.target_utilization,
            scale_to_zero_after_seconds=spec.scaling.scale_to_zero_after_seconds,
            reserved=spec.concurrency.reserved,
        )

    @property
    def floor(self) -> int:
        """Instances kept whatever the load: provisioned ones are always warm."""
        return max(self.min_instances, self.provisioned)

    @property
    def ceiling(self) -> int:
        """Most instances worth running: more than `reserved` allows could never be used."""
        if self.reserved is None:
            return self.max_instances
        return min(self.max_instances, math.ceil(self.reserved / self.per_instance))


@dataclass
class ScalingState:
    """What the autoscaler remembers about one function between decisions."""

    # (time, concurrency) pairs, oldest first; `record` keeps `horizon_seconds` of them.
    samples: list[tuple[float, float]] = field(default_factory=list)
    # When work was last seen. None means never, which lets a function with no recorded
    # activity go to zero at once; start with the current time to give running instances
    # a full idle period first (for instance after the operator restarts).
    last_active_at: float | None = None
    # While panicking: when panic ends unless the burst goes on, and the highest count asked.
    panic_until: float | None = None
    panic_peak: int = 0
    horizon_seconds: float = 60.0

    @classmethod
    def for_policy(cls, policy: ScalingPolicy, now: float | None = None) -> ScalingState:
        """A fresh state keeping enough history for the policy's windows."""
        horizon = max(policy.stable_window_seconds, policy.panic_window_seconds)
        return cls(last_active_at=now, horizon_seconds=horizon)


def record(state: ScalingState, now: float, concurrency: float) -> None:
    """Add a concurrency sample to `state` (in place) and drop samples beyond its horizon."""
    state.samples.append((now, concurrency))
    if concurrency > 0:
        state.last_active_at = now
    cutoff = now - state.horizon_seconds
    first_kept = 0
    while first_kept < len(state.samples) and state.samples[first_kept][0] <= cutoff:
        first_kept += 1
    del state.samples[:first_kept]


def _average(samples: list[tuple[float, float]], now: float, window: float) -> float:
    inside = [value for at, value in samples if now - window < at <= now]
    return sum(inside) / len(inside) if inside else 0.0


def _instances_for(concurrency: float, per_instance_target: float) -> int:
    return max(0, math.ceil(concurrency / per_instance_target - _EPSILON))


def desired_instances(policy: ScalingPolicy, state: ScalingState, now: float, current: int) -> int:
    """The instance count to converge to, given `current` instances; updates the panic memory."""
    per_instance_target = policy.per_instance * policy.target_utilization
    stable = _instances_for(
        _average(state.samples, now, policy.stable_window_seconds), per_instance_target
    )
    burst = _instances_for(
        _average(state.samples, now, policy.panic_window_seconds), per_instance_target
    )

    if current > 0 and burst >= policy.panic_threshold * current:
        if state.panic_until is None:
            state.panic_peak = current
        # Panic lasts a whole stable window after the last burst, as in Knative.
        state.panic_until = now + policy.stable_window_seconds
    elif state.panic_until is not None and now >= state.panic_until:
        state.panic_until = None
        state.panic_peak = 0

    if state.panic_until is not None:
        desired = max(burst, state.panic_peak)
        state.panic_peak = desired
    elif current == 0:
        # Scaling from zero: a burst that just arrived is diluted in the stable window, and
        # the requests are being held until instances are ready.
        desired = max(stable, burst)
    else:
        desired = stable

    latest = state.samples[-1][1] if state.samples and state.samples[-1][0] <= now else 0.0
    idle_long_enough = (
        state.last_active_at is None
        or now - state.last_active_at >= policy.scale_to_zero_after_seconds
    )
    if latest > 0 or not idle_long_enough:
        desired = max(desired, 1)
    return min(max(desired, policy.floor), policy.ceiling)
