"""The scaling rule: steady load, bursts (panic), bounds, scale to zero and from zero."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kfaas.manifests import Function, parse_manifest
from kfaas.scaling import ScalingPolicy, ScalingState, desired_instances, record

BASE = ScalingPolicy(
    min_instances=0,
    max_instances=100,
    provisioned=0,
    per_instance=1,
    target_utilization=0.7,
    scale_to_zero_after_seconds=300,
    reserved=None,
)


def policy(**changes: Any) -> ScalingPolicy:
    return dataclasses.replace(BASE, **changes)


def steady(concurrency: float, *, until: float = 120, every: float = 1) -> ScalingState:
    """A state that has seen `concurrency` at every tick up to `until`."""
    state = ScalingState.for_policy(BASE, now=0)
    at = 0.0
    while at <= until:
        record(state, at, concurrency)
        at += every
    return state


class TestSteadyLoad:
    @pytest.mark.parametrize(
        ("concurrency", "per_instance", "target", "expected"),
        [
            (0.7, 1, 0.7, 1),
            (1.4, 1, 0.7, 2),
            (2.1, 1, 0.7, 3),  # 2.1 / 0.7 is 3.0000000000000004 in floats
            (2.2, 1, 0.7, 4),
            (10, 1, 1.0, 10),
            (10, 4, 1.0, 3),
            (10, 4, 0.5, 5),
            (7, 10, 0.7, 1),
        ],
    )
    def test_desired_is_concurrency_over_target_per_instance(
        self, concurrency: float, per_instance: int, target: float, expected: int
    ) -> None:
        rule = policy(per_instance=per_instance, target_utilization=target)
        assert desired_instances(rule, steady(concurrency), now=120, current=expected) == expected

    def test_stable_window_averages_out_a_dip(self) -> None:
        state = steady(7, until=110)
        for at in range(111, 121):
            record(state, at, 0)
        # 50 samples at 7 and 10 at 0 within the last 60 s: average 5.83 → 9 instances, not 0.
        assert desired_instances(policy(), state, now=120, current=10) == 9

    def test_old_samples_leave_the_window(self) -> None:
        state = steady(7, until=60)
        for at in range(61, 200):
            record(state, at, 1.4)
        assert desired_instances(policy(), state, now=199, current=10) == 2
        assert all(at > 199 - 60 for at, _ in state.samples)


class TestPanic:
    def burst(self, state: ScalingState, start: float, seconds: int, concurrency: float) -> None:
        for at in range(int(start) + 1, int(start) + 1 + seconds):
            record(state, at, concurrency)

    def test_a_burst_scales_up_on_the_panic_window(self) -> None:
        state = steady(0.7, until=100)
        self.burst(state, 100, 6, 14)
        # Stable average is still low (about 2 instances); the panic window asks for 20.
        assert desired_instances(policy(), state, now=106, current=1) == 20
        assert state.panic_until == 106 + 60

    def test_a_small_rise_does_not_panic(self) -> None:
        state = steady(0.7, until=100)
        self.burst(state, 100, 6, 2.1)
        # The burst asks for 3 instances, less than twice the 2 running.
        assert desired_instances(policy(), state, now=106, current=2) == 2
        assert state.panic_until is None

    def test_panic_never_scales_down_until_it_ends(self) -> None:
        state = steady(0.7, until=100)
        self.burst(state, 100, 6, 14)
        assert desired_instances(policy(), state, now=106, current=1) == 20
        self.burst(state, 106, 10, 0.7)
        assert desired_instances(policy(), state, now=116, current=20) == 20
        # A whole stable window after the last burst, panic ends and the stable figure rules.
        self.burst(state, 116, 60, 0.7)
        assert desired_instances(policy(), state, now=176, current=20) == 1
        assert state.panic_until is None

    def test_panic_threshold_is_relative_to_current_instances(self) -> None:
        state = steady(0.7, until=100)
        self.burst(state, 100, 6, 14)
        # 20 asked against 10 running is exactly 2x: panic.
        assert desired_instances(policy(), state, now=106, current=10) == 20
        state = steady(0.7, until=100)
        self.burst(state, 100, 6, 14)
        # Against 11 running it is not: the stable window decides.
        assert desired_instances(policy(), state, now=106, current=11) < 20


class TestBounds:
    @pytest.mark.parametrize(
        ("changes", "concurrency", "expected"),
        [
            ({"min_instances": 3}, 0, 3),
            ({"provisioned": 2}, 0, 2),
            ({"min_instances": 1, "provisioned": 4}, 0.7, 4),
            ({"max_instances": 5}, 70, 5),
            ({"reserved": 10}, 70, 10),
            ({"reserved": 10, "per_instance": 4}, 70, 3),
            ({"reserved": 0}, 7, 0),
            ({"reserved": 0, "provisioned": 2}, 0, 0),
            ({"reserved": 50, "max_instances": 5}, 70, 5),
        ],
    )
    def test_bounds(self, changes: dict[str, Any], concurrency: float, expected: int) -> None:
        assert desired_instances(policy(**changes), steady(concurrency), 120, 10) == expected


class TestScaleToZero:
    def test_idle_function_keeps_one_instance_during_the_grace_period(self) -> None:
        state = steady(0.7, until=100)
        for at in range(101, 300):
            record(state, at, 0)
        assert desired_instances(policy(), state, now=299, current=1) == 1

    def test_idle_function_goes_to_zero_after_the_grace_period(self) -> None:
        state = steady(0.7, until=100)
        for at in range(101, 401):
            record(state, at, 0)
        assert desired_instances(policy(), state, now=400, current=1) == 0

    def test_min_or_provisioned_instances_never_go_to_zero(self) -> None:
        state = ScalingState()
        assert desired_instances(policy(min_instances=1), state, now=1000, current=1) == 1
        assert desired_instances(policy(provisioned=1), state, now=1000, current=1) == 1

    def test_never_active_state_starts_at_zero(self) -> None:
        assert desired_instances(policy(), ScalingState(), now=5, current=0) == 0

    def test_a_state_started_now_gives_running_instances_a_grace_period(self) -> None:
        state = ScalingState.for_policy(BASE, now=1000)
        assert desired_instances(policy(), state, now=1010, current=3) == 1


class TestScaleFromZero:
    def test_first_request_asks_for_an_instance(self) -> None:
        state = ScalingState.for_policy(BASE)
        record(state, 500, 1)
        assert desired_instances(policy(), state, now=500, current=0) == 2

    def test_tiny_demand_still_asks_for_one(self) -> None:
        state = steady(0, until=500)
        record(state, 501, 0.01)
        assert desired_instances(policy(), state, now=501, current=0) == 1

    def test_a_burst_from_zero_uses_the_panic_window(self) -> None:
        state = steady(0, until=500)
        record(state, 501, 14)
        # Diluted over 60 s the stable window would ask for 1; the burst asks for 20 / 6 s.
        assert desired_instances(policy(), state, now=501, current=0) == 4


class TestPolicyFromSpec:
    def test_reads_the_manifest(self) -> None:
        fn = parse_manifest(
            {
                "apiVersion": "kfaas.dev/v1alpha1",
                "kind": "Function",
                "metadata": {"name": "f"},
                "spec": {
                    "runtime": "python3.12",
                    "handler": "app.handler",
                    "code": {"image": "x"},
                    "concurrency": {"perInstance": 4, "reserved": 8, "provisioned": 1},
                    "scaling": {
                        "minInstances": 1,
                        "maxInstances": 9,
                        "targetUtilization": 0.5,
                        "scaleToZeroAfterSeconds": 30,
                    },
                },
            }
        )
        assert isinstance(fn, Function)
        assert ScalingPolicy.from_spec(fn.spec) == policy(
            min_instances=1,
            max_instances=9,
            provisioned=1,
            per_instance=4,
            target_utilization=0.5,
            scale_to_zero_after_seconds=30,
            reserved=8,
        )
