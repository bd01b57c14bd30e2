"""Trace headers and the sampling rule of the traces the platform starts (ADR 030)."""

from __future__ import annotations

import pytest

from kfaas.config import Settings
from kfaas.trace_context import RootSampler, XrayContext, parse_xray, xray_header

TRACE_ID = "5759e988bd862e3fe1be46a994272793"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            XrayContext(TRACE_ID, "53995c3f42cd8ad8", True),
        ),
        (
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
            XrayContext(TRACE_ID, "53995c3f42cd8ad8", False),
        ),
        # `?` and no Sampled leave the decision to the receiver.
        ("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?", XrayContext(TRACE_ID, None, None)),
        (
            "Root=1-5759e988-bd862e3fe1be46a994272793; Lineage=a:1",
            XrayContext(TRACE_ID, None, None),
        ),
        ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz", XrayContext(TRACE_ID, None, None)),
        ("Root=1-5759e988;Sampled=1", None),
        ("Root=1-00000000-000000000000000000000000;Sampled=1", None),
        (
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000;Sampled=1",
            XrayContext(TRACE_ID, None, True),
        ),
        ("Root=2-5759e988-bd862e3fe1be46a994272793", None),
        ("Sampled=1", None),
        ("", None),
        (None, None),
    ],
)
def test_xray_headers(header: str | None, expected: XrayContext | None) -> None:
    assert parse_xray(header) == expected


def test_xray_header_round_trips() -> None:
    header = xray_header(TRACE_ID, "53995c3f42cd8ad8", True)
    assert header == "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    assert parse_xray(header) == XrayContext(TRACE_ID, "53995c3f42cd8ad8", True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sampler_takes_the_reservoir_each_second_then_the_rate() -> None:
    clock = Clock()
    draws = iter([0.01, 0.5, 0.04, 0.06])
    sampler = RootSampler(0.05, 2, clock=clock, draw=lambda: next(draws))
    # The first two of the second are the reservoir's; then a 5 % draw each.
    assert [sampler.sample() for _ in range(6)] == [True, True, True, False, True, False]
    clock.now += 1
    assert sampler.sample() is True  # a new second, a new reservoir


def test_sampler_bounds() -> None:
    never = RootSampler(0.0, 0, draw=lambda: 0.0)
    assert not any(never.sample() for _ in range(100))
    always = RootSampler(1.0, 0, draw=lambda: 0.999)
    assert all(always.sample() for _ in range(100))
    with pytest.raises(ValueError, match="fraction"):
        RootSampler(1.5)
    with pytest.raises(ValueError, match="reservoir"):
        RootSampler(0.1, -1)


def test_settings() -> None:
    settings = Settings.from_env({})
    assert (settings.tracing_sample_rate, settings.tracing_reservoir_per_second) == (0.05, 1)
    settings = Settings.from_env(
        {"KFAAS_TRACING_SAMPLE_RATE": "0.5", "KFAAS_TRACING_RESERVOIR_PER_SECOND": "0"}
    )
    assert (settings.tracing_sample_rate, settings.tracing_reservoir_per_second) == (0.5, 0)
    for variable, value in (
        ("KFAAS_TRACING_SAMPLE_RATE", "5%"),
        ("KFAAS_TRACING_SAMPLE_RATE", "1.1"),
        ("KFAAS_TRACING_SAMPLE_RATE", "nan"),
        ("KFAAS_TRACING_RESERVOIR_PER_SECOND", "-1"),
        ("KFAAS_TRACING_RESERVOIR_PER_SECOND", "1.5"),
    ):
        with pytest.raises(ValueError, match=variable):
            Settings.from_env({variable: value})
