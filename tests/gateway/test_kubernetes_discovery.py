"""Which EndpointSlice entries the gateway's Kubernetes backend routes to (pure part)."""

from __future__ import annotations

from typing import Any

from kfaas.backends import Endpoint
from kfaas.gateway.kube_clients import endpoints_of


def _slice(*entries: dict[str, Any], port: int = 8080) -> dict[str, Any]:
    return {"ports": [{"name": "http", "port": port}], "endpoints": list(entries)}


def _entry(pod: str, address: str, **conditions: bool) -> dict[str, Any]:
    return {
        "addresses": [address],
        "conditions": conditions,
        "targetRef": {"kind": "Pod", "name": pod},
    }


def test_ready_pods_of_every_slice_become_endpoints_with_the_function_capacity() -> None:
    slices = [
        _slice(_entry("fn-b", "10.0.0.2", ready=True), _entry("fn-a", "10.0.0.1", ready=True)),
        _slice(_entry("fn-c", "10.0.0.3", ready=True)),
    ]
    assert endpoints_of(slices, capacity=4) == [
        Endpoint("fn-a", "http://10.0.0.1:8080", 4),
        Endpoint("fn-b", "http://10.0.0.2:8080", 4),
        Endpoint("fn-c", "http://10.0.0.3:8080", 4),
    ]


def test_not_ready_and_terminating_pods_get_no_work() -> None:
    slices = [
        _slice(
            _entry("starting", "10.0.0.1", ready=False),
            _entry("leaving", "10.0.0.2", ready=True, terminating=True),
            _entry("serving", "10.0.0.3", ready=True),
        )
    ]
    assert [e.instance_id for e in endpoints_of(slices, capacity=1)] == ["serving"]


def test_slices_without_a_port_yet_are_skipped() -> None:
    assert endpoints_of([{"ports": None, "endpoints": [_entry("a", "10.0.0.1")]}], 1) == []
