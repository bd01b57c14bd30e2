"""The chart's gateway exposure (issue 8, points 4 and 7): separate Services for the Invoke API and
HTTP triggers, a NetworkPolicy that admits only the configured peers to the Invoke API, a durable
async queue by default with NOTES warning about memory, and the resource bounds as values."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart.platform import CHART, render


def _objects(helm: Path, *values: str) -> list[dict[str, Any]]:
    text = render(helm, "kfaas-system", *values, include_crds=False)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _gateway_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = _one(objects, "Deployment", "kfaas-gateway")
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _notes(helm: Path, tmp_path: Path, *values: str) -> str:
    """NOTES.txt as `helm install` prints it (`helm template` skips it: render a copy as data)."""
    chart = tmp_path / "kfaas"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes-source.txt")
    (chart / "templates" / "notes-as-data.yaml").write_text(
        '{"kind": "Notes", "text": {{ tpl (.Files.Get "notes-source.txt") . | toJson }}}\n'
    )
    argv = [str(helm), "template", "kfaas", str(chart), "--namespace", "kfaas-system"]
    argv += ["--show-only", "templates/notes-as-data.yaml"]
    for value in values:
        argv += ["--set", value]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    text: str = yaml.safe_load(done.stdout)["text"]
    return text


def test_invoke_api_and_triggers_have_their_own_ports_and_services(helm: Path) -> None:
    objects = _objects(helm)
    container = _gateway_container(objects)
    assert container["command"][:4] == ["kfaas", "gateway", "--backend", "kubernetes"]
    assert container["command"][4:] == [
        "--listen", "invoke=0.0.0.0:8080", "--listen", "trigger=0.0.0.0:8081",
    ]  # fmt: skip
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "triggers": 8081}
    invoke = _one(objects, "Service", "kfaas-gateway")
    triggers = _one(objects, "Service", "kfaas-gateway-triggers")
    assert [p["targetPort"] for p in invoke["spec"]["ports"]] == ["http"]
    assert [(p["name"], p["targetPort"]) for p in triggers["spec"]["ports"]] == [
        ("triggers", "triggers")
    ]
    assert triggers["spec"]["selector"] == invoke["spec"]["selector"]
    # The ServiceMonitor scrapes port http (the Invoke API listener serves /metrics).
    monitor = _objects(helm, "metrics.serviceMonitor.enabled=true")
    endpoints = _one(monitor, "ServiceMonitor", "kfaas")["spec"]["endpoints"]
    assert {e["port"] for e in endpoints} == {"http", "metrics"}
    # kfaas's `namespace` label (the function's) must survive the scrape (docs/operating.md).
    assert all(e["honorLabels"] is True for e in endpoints)


def _scheduler_rule(rule: dict[str, Any]) -> bool:
    """The rule that admits the release's own scheduler (tests/chart/test_scheduler_chart.py)."""
    return any(
        peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
        == "scheduler"
        for peer in rule.get("from", [])
    )


def _configured(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The policy's rules but the scheduler's."""
    return [rule for rule in policy["spec"]["ingress"] if not _scheduler_rule(rule)]


def test_network_policy_admits_only_configured_peers_to_the_invoke_api(helm: Path) -> None:
    policy = _one(_objects(helm), "NetworkPolicy", "kfaas-gateway")
    rules = {rule["ports"][0]["port"]: rule for rule in _configured(policy)}
    assert set(rules) == {8080, 8081}
    assert "from" not in rules[8081]  # triggers: open to the ingress
    components = {
        peer["podSelector"]["matchLabels"]["kfaas.dev/component"] for peer in rules[8080]["from"]
    }
    assert components == {
        "poller",
        "runtime",
        "version-runtime",
        "provisioned-runtime",  # ADR 030: provisioned instances' Deployments
        "provisioned-version-runtime",
    }
    assert all(peer["namespaceSelector"] == {} for peer in rules[8080]["from"])

    policy = _one(
        _objects(
            helm,
            "networkPolicies.invokeFrom[0].ipBlock.cidr=10.1.0.0/16",
            "networkPolicies.gatewayFrom[0].namespaceSelector.matchLabels.ingress=yes",
        ),
        "NetworkPolicy",
        "kfaas-gateway",
    )
    rules = {rule["ports"][0]["port"]: rule for rule in _configured(policy)}
    assert rules[8080]["from"] == [{"ipBlock": {"cidr": "10.1.0.0/16"}}]
    assert rules[8081]["from"] == [{"namespaceSelector": {"matchLabels": {"ingress": "yes"}}}]

    # An empty list admits nobody to the Invoke API but the release's own scheduler.
    policy = _one(
        _objects(helm, "networkPolicies.invokeFrom=null"), "NetworkPolicy", "kfaas-gateway"
    )
    assert [rule["ports"][0]["port"] for rule in _configured(policy)] == [8081]
    assert [_scheduler_rule(rule) for rule in policy["spec"]["ingress"]] == [False, True]


def test_one_port_for_both_is_an_explicit_choice(helm: Path, tmp_path: Path) -> None:
    objects = _objects(helm, "gateway.triggers.separate=false")
    container = _gateway_container(objects)
    assert container["command"][4:] == ["--host", "0.0.0.0", "--port", "8080"]
    assert [p["name"] for p in container["ports"]] == ["http"]
    assert not [o for o in objects if o["metadata"]["name"] == "kfaas-gateway-triggers"]
    policy = _one(objects, "NetworkPolicy", "kfaas-gateway")
    assert [rule["ports"][0]["port"] for rule in _configured(policy)] == [8080]
    notes = _notes(helm, tmp_path, "gateway.triggers.separate=false", "redis.url=redis://r:6379")
    assert "whoever reaches HTTP triggers reaches the Invoke API too" in notes


def test_the_async_queue_is_the_platform_redis_by_default(helm: Path, tmp_path: Path) -> None:
    env = _env(_gateway_container(_objects(helm, "redis.url=redis://redis.platform:6379/0")))
    assert env["KFAAS_ASYNC_QUEUE"] == "redis"
    assert env["KFAAS_REDIS_URL"] == "redis://redis.platform:6379/0"
    operator_env = _env(
        _one(_objects(helm, "redis.url=redis://redis.platform:6379/0"), "Deployment",
             "kfaas-operator")["spec"]["template"]["spec"]["containers"][0]
    )  # fmt: skip
    assert operator_env["KFAAS_REDIS_URL"] == "redis://redis.platform:6379/0"
    env = _env(_gateway_container(_objects(helm, "redis.urlSecret.name=kfaas-redis")))
    assert env["KFAAS_REDIS_URL"] == {"secretKeyRef": {"name": "kfaas-redis", "key": "url"}}

    notes = _notes(helm, tmp_path / "configured", "redis.url=redis://redis.platform:6379/0")
    assert "WARNING" not in notes
    assert "kfaas-gateway-triggers" in notes and "invokeFrom" in notes
    notes = _notes(helm, tmp_path / "unset")
    assert "redis.url is not set" in notes
    notes = _notes(helm, tmp_path / "memory", "gateway.asyncQueue=memory")
    assert "WARNING: gateway.asyncQueue is memory" in notes and "OOM" in notes
    env = _env(_gateway_container(_objects(helm, "gateway.asyncQueue=memory")))
    assert env["KFAAS_ASYNC_QUEUE"] == "memory"


def test_resource_bounds_are_values_with_documented_defaults(helm: Path) -> None:
    env = _env(_gateway_container(_objects(helm)))
    assert {name: value for name, value in env.items() if name in BOUNDS} == BOUNDS
    env = _env(
        _gateway_container(
            _objects(helm, "gateway.limits.maxConnections=4000", "gateway.limits.bodyMemory=256Mi")
        )
    )
    assert env["KFAAS_MAX_CONNECTIONS"] == "4000" and env["KFAAS_BODY_MEMORY_BYTES"] == "256Mi"


BOUNDS = {
    "KFAAS_HEADER_TIMEOUT_SECONDS": "10",
    "KFAAS_BODY_IDLE_TIMEOUT_SECONDS": "30",
    "KFAAS_BODY_TIMEOUT_SECONDS": "120",
    "KFAAS_KEEPALIVE_TIMEOUT_SECONDS": "75",
    "KFAAS_MAX_CONNECTIONS": "1000",
    "KFAAS_BODY_MEMORY_BYTES": "64Mi",
    "KFAAS_ASYNC_QUEUE_MAX_EVENTS": "10000",
    "KFAAS_ASYNC_QUEUE_MAX_BYTES": "64Mi",
}


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("gateway.asyncQueue=disk", "asyncQueue"),
        ("gateway.limits.maxConnections=0", "maxConnections"),
        ("gateway.limits.bodyMemory=lots", "bodyMemory"),
        ("gateway.limits.headerTimeoutSeconds=0", "headerTimeoutSeconds"),
        ("redis.url=http://redis:6379", "url"),
        ("networkPolicies.invokeFrom[0].everyone=true", "invokeFrom"),
    ],
)
def test_bad_exposure_values_are_refused(helm: Path, value: str, words: str) -> None:
    done = subprocess.run(
        [str(helm), "template", "kfaas", str(CHART), "--set", value],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and words in done.stderr, (value, done.stderr)


def test_the_gateway_gets_the_tracing_sample_rule(helm: Path) -> None:
    """ADR 030: the traces the gateway starts for Active functions, from gateway.tracing."""
    env = _env(_gateway_container(_objects(helm)))
    assert (env["KFAAS_TRACING_SAMPLE_RATE"], env["KFAAS_TRACING_RESERVOIR_PER_SECOND"]) == (
        "0.05",
        "1",
    )
    env = _env(
        _gateway_container(
            _objects(helm, "gateway.tracing.sampleRate=1", "gateway.tracing.reservoirPerSecond=0")
        )
    )
    assert (env["KFAAS_TRACING_SAMPLE_RATE"], env["KFAAS_TRACING_RESERVOIR_PER_SECOND"]) == (
        "1",
        "0",
    )
