"""Pytest fixtures for the real services: one Redis, one Kafka, one cluster per test session.

Registered by tests/conftest.py (`pytest_plugins = ["services.fixtures"]`). Each run gets its own
state directory under pytest's temporary folder, so the suite never touches (or is disturbed by)
what a developer started with `scripts/services up`, and always begins with empty data; the last
runs' logs stay there for post-mortems. The services are stopped when the session ends.

Builds (Maven for Kafka, Go for the cluster) run once the tests are collected, before the first
test, so that a cold build is not cut short by a test's timeout; only the services the selected
tests use are built. A fixture skips only when a tool the service needs is missing, and never when
the environment says CI=true: there a missing service fails the run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from services.base import MissingDependency, Service, ServiceError, default_state_dir, tail
from services.cluster import Cluster
from services.kafka_broker import KafkaBroker
from services.markers import needs
from services.node import NodeCluster
from services.processes import running_pid, stop
from services.redis_server import RedisServer

FIXTURES: dict[str, type[RedisServer] | type[KafkaBroker] | type[Cluster] | type[NodeCluster]] = {
    "redis_service": RedisServer,
    "kafka_service": KafkaBroker,
    "kwok_service": Cluster,
    "cluster_service": NodeCluster,
    "pod_kafka_service": KafkaBroker,
}
# Use the real node `scripts/services up cluster` started (default state folder) instead of
# starting one: one real node per machine, so parallel test runs share it. Never stopped here;
# the kfaas image of the sources as they are is built and imported into it, as `up` does.
REUSE_CLUSTER = "KFAAS_REUSE_CLUSTER"

_S = TypeVar("_S", bound=Service)
_build_failures: dict[str, ServiceError] = {}


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _reusing_cluster() -> bool:
    return os.environ.get(REUSE_CLUSTER, "") == "1"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build what the selected tests need before any test (and its timeout) starts."""
    # By marker too: a fixture reached through a marked parameter is not in `fixturenames`.
    wanted = {fixture for item in session.items for fixture in FIXTURES if needs(item, fixture)}
    if not wanted or session.config.option.collectonly:
        return
    capture = session.config.pluginmanager.get_plugin("capturemanager")
    for fixture in sorted(wanted):
        build = FIXTURES[fixture].build
        try:
            # Builds print progress on stderr; let the developer see a long cold build.
            if capture is not None:
                with capture.global_and_fixture_disabled():
                    build()
            else:
                build()
        except ServiceError as failure:
            _build_failures[fixture] = failure


@pytest.fixture(scope="session")
def services_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state_dir = tmp_path_factory.mktemp("services", numbered=False)
    _stop_abandoned(state_dir.parent.parent)
    # Recorded like a service's pid, so a later run can tell whether this one is still alive.
    launch_record = state_dir / "pytest.pid"
    launch_record.write_text(f"{os.getpid()} {os.path.realpath(f'/proc/{os.getpid()}/exe')}\n")
    return state_dir


def _stop_abandoned(runs: Path) -> None:
    """Stop services left by earlier runs whose pytest died before its teardown (a kill -9, a
    CI time-out): they would otherwise hold memory and ports until the machine restarts."""
    for owner in runs.glob("*/services/pytest.pid"):
        if running_pid(owner) is None:
            for pid_file in owner.parent.glob("*/run/*.pid"):
                stop(pid_file)
            owner.unlink(missing_ok=True)


def _running(fixture: str, service: _S) -> Iterator[_S]:
    failure = _build_failures.get(fixture)
    try:
        if failure is not None:
            raise failure
        service.up()
    except MissingDependency as missing:
        reason = f"{service.name}: {missing}"
        if _in_ci():
            pytest.fail(f"CI=true and a service is missing: {reason}", pytrace=False)
        print(f"skipping tests that need {reason}")
        pytest.skip(reason)
    except BaseException:
        # A service that failed half-way (a node whose image import timed out) is stopped here:
        # its processes would otherwise outlive the run, and a real node left running makes the
        # next run's node fight it over the machine's cgroups and containers.
        with contextlib.suppress(Exception):
            service.down()
        raise
    try:
        yield service
    finally:
        service.down()


@pytest.fixture(scope="session")
def redis_service(services_state_dir: Path) -> Iterator[RedisServer]:
    """A private redis-server with append-only persistence: `.url`, `.restart()`."""
    yield from _running("redis_service", RedisServer(services_state_dir))


@pytest.fixture(scope="session")
def kafka_service(services_state_dir: Path) -> Iterator[KafkaBroker]:
    """One Kafka 4 broker: `.bootstrap_servers`, `.restart()`, `.create_topic()`, `.log_path`,
    and `.secured` (services.kafka_listeners.SecuredListeners): its TLS, mutual TLS and SASL_SSL
    listeners, the CA and client certificate files, the users of each SASL mechanism."""
    yield from _running("kafka_service", KafkaBroker(services_state_dir))


@pytest.fixture(scope="session")
def kwok_service(services_state_dir: Path) -> Iterator[Cluster]:
    """A Kubernetes control plane with two kwok nodes: `.kubeconfig`, `.kubectl(*args)`."""
    yield from _running("kwok_service", Cluster(services_state_dir))


@pytest.fixture(scope="session")
def cluster_service(services_state_dir: Path) -> Iterator[NodeCluster]:
    """A control plane with one real node (containerd, kubelet, kube-proxy, CoreDNS):
    `.kubeconfig`, `.kubectl(*args)`, `.import_image(archive)`, `.bridge_address`."""
    if _reusing_cluster():
        node = NodeCluster(default_state_dir())
        if not node.running():
            pytest.fail(
                f"{REUSE_CLUSTER}=1 but no real node runs in {node.dir.root}: "
                "start one with `scripts/services up cluster`",
                pytrace=False,
            )
        failure = _build_failures.get("cluster_service")
        if failure is not None:
            raise failure
        node.up()  # it runs: this only imports the kfaas image of today's sources if new
        yield node
        return
    yield from _running("cluster_service", NodeCluster(services_state_dir))


@pytest.fixture(scope="session")
def pod_kafka_service(
    cluster_service: NodeCluster, services_state_dir: Path
) -> Iterator[KafkaBroker]:
    """A Kafka broker with a listener on the real node's bridge address, for pods:
    `.bootstrap_servers_for_pods` (and `.bootstrap_servers` for the tests themselves)."""
    broker = KafkaBroker(services_state_dir, pod_address=cluster_service.bridge_address)
    yield from _running("pod_kafka_service", broker)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test that used a service shows the end of that service's logs."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for fixture in FIXTURES:
            for name, path in _logs(funcargs.get(fixture)):
                report.sections.append((f"{name} log ({path})", tail(path, 30)))
    return report


def _logs(service: object) -> list[tuple[str, Path]]:
    if isinstance(service, RedisServer | KafkaBroker):
        return [(service.name, service.log_path)]
    if isinstance(service, NodeCluster):
        return [
            (component, service.dir.log_file(component))
            for component in ("kube-apiserver", "kubelet", "containerd", "kube-proxy", "coredns")
        ]
    if isinstance(service, Cluster):
        return [
            (component, service.dir.log_file(component))
            for component in ("kube-apiserver", "kube-controller-manager", "kwok")
        ]
    return []
