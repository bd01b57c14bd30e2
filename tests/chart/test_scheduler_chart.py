"""The chart's scheduler (ADR 026): a hardened Deployment of two replicas running `kfaas scheduler`
against the release's gateway, least-privilege RBAC (Schedules read, their status written,
`invoke` on functions), a NetworkPolicy for its metrics and a way into the gateway's Invoke API
port; off, nothing of it is rendered. On kwok's API server its ServiceAccount can do exactly that,
and a real `kfaas scheduler` running as it fires a Schedule through a `--auth sigv4` gateway."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from services.cluster import Cluster
from waiting import eventually

from chart.platform import CHART, RELEASE, Platform, gateway_process, install
from chart.test_gateway_exposure import _env, _objects, _one

SCHEDULER = "kfaas-scheduler"
GATEWAY_URL = "http://kfaas-gateway.kfaas-system.svc:8080"
KFAAS = str(Path(sys.executable).with_name("kfaas"))


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = _one(objects, "Deployment", SCHEDULER)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert isinstance(container, dict)
    return container


def test_the_scheduler_is_two_hardened_replicas_of_kfaas_scheduler(helm: Path) -> None:
    objects = _objects(helm)
    deployment = _one(objects, "Deployment", SCHEDULER)
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == SCHEDULER
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = _container(objects)
    assert container["command"] == ["kfaas", "scheduler"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    env = _env(container)
    assert env["KFAAS_GATEWAY_URL"] == GATEWAY_URL
    # Each replica names itself in its claims by its pod's name.
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert (env["KFAAS_SCHEDULER_CLAIM_SECONDS"], env["KFAAS_SCHEDULER_POLL_SECONDS"]) == (
        "30",
        "2",
    )
    assert (env["KFAAS_SCHEDULER_METRICS_HOST"], env["KFAAS_SCHEDULER_METRICS_PORT"]) == (
        "0.0.0.0",
        "9090",
    )
    service = _one(objects, "Service", "kfaas-scheduler-metrics")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    _one(objects, "ServiceAccount", SCHEDULER)


def test_values_reach_the_pods(helm: Path) -> None:
    objects = _objects(
        helm,
        "scheduler.replicas=3",
        "scheduler.claimSeconds=60",
        "scheduler.pollSeconds=5",
        "scheduler.nodeSelector.pool=platform",
        "watchNamespace=team-a",
    )
    deployment = _one(objects, "Deployment", SCHEDULER)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "platform"}
    env = _env(_container(objects))
    assert (env["KFAAS_SCHEDULER_CLAIM_SECONDS"], env["KFAAS_SCHEDULER_POLL_SECONDS"]) == (
        "60",
        "5",
    )
    assert env["KFAAS_WATCH_NAMESPACE"] == "team-a"


RULES = [
    {"apiGroups": ["kfaas.dev"], "resources": ["schedules"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": ["kfaas.dev"],
        "resources": ["schedules/status"],
        "verbs": ["get", "update", "patch"],
    },
    {"apiGroups": ["kfaas.dev"], "resources": ["functions"], "verbs": ["invoke"]},
]


def test_rbac_is_schedules_their_status_and_invoke(helm: Path) -> None:
    objects = _objects(helm)
    assert _one(objects, "ClusterRole", SCHEDULER)["rules"] == RULES
    binding = _one(objects, "ClusterRoleBinding", SCHEDULER)
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": SCHEDULER, "namespace": "kfaas-system"}
    ]
    namespaced = _objects(helm, "watchNamespace=team-a")
    role = _one(namespaced, "Role", SCHEDULER)
    assert (role["metadata"]["namespace"], role["rules"]) == ("team-a", RULES)
    assert _one(namespaced, "RoleBinding", SCHEDULER)["metadata"]["namespace"] == "team-a"
    assert not [o for o in namespaced if o["kind"] == "ClusterRole" and "scheduler" in str(o)]


def _scheduler_peer(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The gateway policy's rules that admit the release's scheduler."""
    return [
        rule
        for rule in policy["spec"]["ingress"]
        for peer in rule.get("from", [])
        if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
        == "scheduler"
    ]


@pytest.mark.parametrize(
    "values",
    [
        (),
        ("gateway.triggers.separate=false",),
        ("networkPolicies.invokeFrom=null",),
        (
            "gateway.triggers.separate=false",
            "networkPolicies.gatewayFrom[0].ipBlock.cidr=10.0.0.0/8",
        ),
    ],
)
def test_the_scheduler_reaches_the_invoke_port_and_serves_only_metrics(
    helm: Path, values: tuple[str, ...]
) -> None:
    objects = _objects(helm, *values)
    (rule,) = _scheduler_peer(_one(objects, "NetworkPolicy", "kfaas-gateway"))
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    (peer,) = rule["from"]
    assert "namespaceSelector" not in peer  # the release's own scheduler only
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == RELEASE
    own = _one(objects, "NetworkPolicy", SCHEDULER)
    assert own["spec"]["policyTypes"] == ["Ingress"]
    assert own["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 9090}]}]


def test_disabled_renders_nothing(helm: Path) -> None:
    objects = _objects(helm, "scheduler.enabled=false", "metrics.serviceMonitor.enabled=true")
    assert not [o for o in objects if "scheduler" in o["metadata"]["name"]]
    assert not _scheduler_peer(_one(objects, "NetworkPolicy", "kfaas-gateway"))


def test_the_service_monitor_scrapes_the_scheduler(helm: Path) -> None:
    objects = _objects(helm, "metrics.serviceMonitor.enabled=true")
    monitor = _one(objects, "ServiceMonitor", "kfaas")
    (components,) = [
        e["values"]
        for e in monitor["spec"]["selector"]["matchExpressions"]
        if e["key"] == "app.kubernetes.io/component"
    ]
    assert "scheduler" in components


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("scheduler.replicas=0", "replicas"),
        ("scheduler.claimSeconds=0", "claimSeconds"),
        ("scheduler.pollSeconds=soon", "pollSeconds"),
        ("scheduler.leader=true", "leader"),
    ],
)
def test_bad_scheduler_values_are_refused(helm: Path, value: str, words: str) -> None:
    done = subprocess.run(
        [str(helm), "template", "kfaas", str(CHART), "--set", value],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and words in done.stderr, (value, done.stderr)


# -- On kwok's API server --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def platform(
    helm: Path, kwok_service: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """The chart installed, its Schedule kind served."""
    installed = install(helm, kwok_service, tmp_path_factory.mktemp("scheduler"))
    kwok_service.install_crds(CHART / "crds" / "schedules.kfaas.dev.yaml")
    yield installed
    kwok_service.kubectl("delete", "namespace", installed.namespace, "--wait=false")


ALLOWED = [
    ("list", "schedules.kfaas.dev"),
    ("watch", "schedules.kfaas.dev"),
    ("get", "schedules.kfaas.dev"),
    ("patch", "schedules.kfaas.dev/status"),
    ("update", "schedules.kfaas.dev/status"),
    ("invoke", "functions.kfaas.dev"),
]
REFUSED = [
    ("patch", "schedules.kfaas.dev"),  # never the spec
    ("create", "schedules.kfaas.dev"),
    ("delete", "schedules.kfaas.dev"),
    ("get", "functions.kfaas.dev"),
    ("patch", "functions.kfaas.dev/status"),
    ("get", "secrets"),
    ("list", "pods"),
    ("create", "events"),
]


def _can(platform: Platform, verb: str, resource: str) -> bool:
    """`kubectl auth can-i` as the scheduler (`kind/status` is the status subresource, not an
    object named status)."""
    kind, _, subresource = resource.partition("/")
    done = platform.cluster.kubectl(
        "auth", "can-i", verb, kind, "-n", "default",
        *([f"--subresource={subresource}"] if subresource else []),
        f"--as=system:serviceaccount:{platform.namespace}:{SCHEDULER}",
        check=False,
    )  # fmt: skip
    return done.stdout.strip() == "yes"


def test_the_schedulers_account_may_do_what_it_needs_and_nothing_else(platform: Platform) -> None:
    for verb, resource in ALLOWED:
        assert _can(platform, verb, resource), (verb, resource)
    for verb, resource in REFUSED:
        assert not _can(platform, verb, resource), (verb, resource)


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def scheduler_process(
    platform: Platform, gateway_url: str, token_file: Path
) -> Iterator[tuple[str, Path]]:
    """`kfaas scheduler` as the chart's scheduler account; yields its metrics URL and log."""
    port = _port()
    env = {
        **os.environ,
        "KUBECONFIG": str(platform.token_kubeconfig(SCHEDULER)),
        "KFAAS_GATEWAY_URL": gateway_url,
        "KFAAS_GATEWAY_TOKEN_FILE": str(token_file),
        "KFAAS_SCHEDULER_METRICS_PORT": str(port),
        "KFAAS_SCHEDULER_POLL_SECONDS": "0.5",
        "KFAAS_SCHEDULER_RETRY_BASE_SECONDS": "0.1",
    }
    log_path = platform.workdir / f"scheduler-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [KFAAS, "scheduler"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/metrics"
    try:

        def serving() -> bool:
            assert process.poll() is None, log_path.read_text()
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(answer.status == 200)

        eventually(serving, within=30, what=f"the scheduler's metrics (log: {log_path})",
                   ignoring=(OSError,))  # fmt: skip
        yield url, log_path
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()


def _metric(url: str, name: str, **labels: str) -> float:
    """The value of one series of a scrape (0 when absent)."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _token(platform: Platform, account: str, namespace: str | None = None) -> Path:
    token = platform.kubectl(
        "-n", namespace or platform.namespace, "create", "token", account, "--duration=1h"
    ).strip()
    path = platform.workdir / f"{account}-{uuid.uuid4().hex[:6]}.token"
    path.write_text(token)
    return path


def _schedule(namespace: str, name: str, function: str, expression: str) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scheduleExpression": expression,
            "target": {"functionName": function},
            "retryPolicy": {"maximumRetryAttempts": 0},
        },
    }


@contextmanager
def _namespace_with_report(platform: Platform) -> Iterator[str]:
    """A namespace of its own holding the Function `report`, deleted afterwards."""
    namespace = f"sched-{uuid.uuid4().hex[:6]}"
    platform.kubectl("create", "namespace", namespace)
    try:
        platform.apply(
            {
                "apiVersion": "kfaas.dev/v1alpha1",
                "kind": "Function",
                "metadata": {"name": "report", "namespace": namespace},
                "spec": {
                    "runtime": "python3.11",
                    "handler": "app.handler",
                    "code": {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}},
                },
            }
        )
        yield namespace
    finally:
        platform.kubectl("delete", "namespace", namespace, "--wait=false")


def test_the_scheduler_fires_as_its_account_through_a_sigv4_gateway(platform: Platform) -> None:
    with _namespace_with_report(platform) as namespace:
        for name, function, expression in (
            ("every-5s", "report", "rate(5 seconds)"),
            ("to-nothing", "absent", "rate(5 seconds)"),
            # The API server's CEL takes its shape; the parser refuses minute 99.
            ("bad-cron", "report", "cron(99 10 * * ? *)"),
        ):
            platform.apply(_schedule(namespace, name, function, expression))
        environment = {"KFAAS_AUTH": "sigv4", "KFAAS_AUTH_CACHE_SECONDS": "1"}
        with (
            gateway_process(platform, **environment) as (url, _),
            scheduler_process(platform, url, _token(platform, SCHEDULER)) as (metrics, log),
        ):

            def fired() -> bool:
                return _metric(metrics, "kfaas_schedule_fires_total", schedule="every-5s") >= 2

            eventually(fired, within=40, what=f"two ticks fired (log: {log})")

            def status(name: str) -> dict[str, Any]:
                body = json.loads(
                    platform.kubectl("-n", namespace, "get", f"schedule/{name}", "-o", "json")
                )
                found: dict[str, Any] = body.get("status") or {}
                return found

            written = status("every-5s")
            assert written["lastTick"] and written["nextFireTime"] > written["lastTick"]
            assert written["state"] == "ENABLED"
            # A function that does not exist: refused by the gateway, given up, counted.
            eventually(
                lambda: _metric(metrics, "kfaas_schedule_failures_total", reason="not_found") >= 1,
                within=30,
                what="the tick to a missing function refused",
            )
            assert _metric(metrics, "kfaas_schedule_failures_total", schedule="every-5s") == 0
            # What CEL cannot check is said in the status; the fix runs from then on.
            invalid = status("bad-cron")
            assert invalid["state"] == "INVALID", invalid
            assert 'minutes "99" is out of range 0-59' in invalid["message"]
            platform.apply(_schedule(namespace, "bad-cron", "report", "rate(5 seconds)"))
            eventually(
                lambda: _metric(metrics, "kfaas_schedule_fires_total", schedule="bad-cron") >= 1,
                within=30,
                what="the fixed schedule firing",
            )
            assert "message" not in status("bad-cron")
        table = platform.kubectl("-n", namespace, "get", "sched")
        assert "every-5s" in table and "rate(5 seconds)" in table


def test_without_invoke_the_gateway_refuses_the_scheduler(platform: Platform) -> None:
    """The `invoke` grant is what lets the ticks through: another account's token is refused."""
    with _namespace_with_report(platform) as namespace:
        platform.apply(_schedule(namespace, "denied", "report", "rate(5 seconds)"))
        stranger = _token(platform, "default", namespace)
        environment = {"KFAAS_AUTH": "sigv4", "KFAAS_AUTH_CACHE_SECONDS": "1"}
        with (
            gateway_process(platform, **environment) as (url, _),
            scheduler_process(platform, url, stranger) as (metrics, log),
        ):
            eventually(
                lambda: (
                    _metric(
                        metrics,
                        "kfaas_schedule_failures_total",
                        schedule="denied",
                        reason="refused",
                    )
                    >= 1
                ),
                within=40,
                what=f"the tick refused (log: {log})",
            )
            assert _metric(metrics, "kfaas_schedule_fires_total", schedule="denied") == 0
