"""Pytest fixtures for the real node's add-ons: a NetworkPolicy enforcer and Prometheus.

Registered next to services.fixtures (tests/conftest.py). Both run as host processes against the
session's real node (`cluster_service`, which with KFAAS_REUSE_CLUSTER=1 is the node that
`scripts/services up cluster` started), from the session's state folder, and stop when the session
ends — kube-router taking its iptables rules and ipsets with it. Their Go builds run once the tests
are collected, only when a selected test uses them, like the other services' builds.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.base import MissingDependency, ServiceError
from services.network_policy import NetworkPolicyEnforcer
from services.prometheus import PrometheusServer

BUILDS = {
    "network_policy_enforcer": NetworkPolicyEnforcer.build,
    "prometheus_service": PrometheusServer.build,
}
_build_failures: dict[str, ServiceError] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build kube-router and Prometheus before the first test, if a selected test needs them."""
    wanted = {
        fixture
        for item in session.items
        for fixture in BUILDS
        if fixture in getattr(item, "fixturenames", ())
    }
    if not wanted or session.config.option.collectonly:
        return
    capture = session.config.pluginmanager.get_plugin("capturemanager")
    for fixture in sorted(wanted):
        try:
            if capture is not None:
                with capture.global_and_fixture_disabled():
                    BUILDS[fixture]()
            else:
                BUILDS[fixture]()
        except ServiceError as failure:
            _build_failures[fixture] = failure


def _unavailable(fixture: str, failure: ServiceError) -> None:
    if isinstance(failure, MissingDependency) and os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"{fixture}: {failure}")
    pytest.fail(f"{fixture}: {failure}", pytrace=False)


def _node_name(cluster: Any) -> str:
    names = cluster.kubectl("get", "nodes", "-o", "name").stdout.split()
    if len(names) != 1:
        raise ServiceError(f"expected the one real node, the cluster has {names}")
    return str(names[0]).removeprefix("node/")


# Module scope: only the tests that ask for enforcement get it. On this node DNS, and the Redis and
# Kafka pods use, sit on the API server's address, which function pods' egress policy denies
# (docs/testing.md), so enforcement left on would break the node tests that follow.
@pytest.fixture(scope="module")
def network_policy_enforcer(
    cluster_service: Any, services_state_dir: Path
) -> Iterator[NetworkPolicyEnforcer]:
    """kube-router's firewall enforcing NetworkPolicies on the real node for one test module."""
    from services.control_plane import SERVICE_RANGE

    if "network_policy_enforcer" in _build_failures:
        _unavailable("network_policy_enforcer", _build_failures["network_policy_enforcer"])
    missing = [tool for tool in ("ipset", "iptables-save") if shutil.which(tool) is None]
    if missing:
        _unavailable("network_policy_enforcer", MissingDependency(f"needs {', '.join(missing)}"))
    kubeconfig = Path(cluster_service.kubeconfig)
    enforcer = NetworkPolicyEnforcer(
        services_state_dir,
        kubeconfig=kubeconfig,
        node_name=_node_name(cluster_service),
        service_range=SERVICE_RANGE,
    )
    try:
        enforcer.up()
    except ServiceError as failure:
        enforcer.down()
        _unavailable("network_policy_enforcer", failure)
    try:
        yield enforcer
    finally:
        enforcer.down()


@pytest.fixture(scope="session")
def prometheus_service(
    cluster_service: Any, services_state_dir: Path
) -> Iterator[PrometheusServer]:
    """Prometheus scraping kfaas's pods on the real node through Kubernetes discovery."""
    if "prometheus_service" in _build_failures:
        _unavailable("prometheus_service", _build_failures["prometheus_service"])
    server = PrometheusServer(services_state_dir, kubeconfig=Path(cluster_service.kubeconfig))
    try:
        server.up()
    except ServiceError as failure:
        server.down()
        _unavailable("prometheus_service", failure)
    try:
        yield server
    finally:
        server.down()
