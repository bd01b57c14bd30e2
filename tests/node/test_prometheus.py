"""Prometheus finds kfaas on the real node by Kubernetes discovery, and the shipped dashboard works.

Prometheus (services.prometheus, a host process with the scrape jobs docs/operating.md gives)
scrapes the gateway and operator through their Services' endpoints and the function and poller pods
by label. One function is kept under load for the module — synchronous calls (some failing, some
throttled by its reserved concurrency), Event invocations (successes whose onSuccess destination is
unreachable, failures dropped after no retry) and a Redis stream mapping whose poller feeds it — so
that every panel of charts/kfaas/dashboards/kfaas.json has something to show; then each of the
dashboard's queries, with Grafana's variables filled in for that function, must return data.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from botocore.exceptions import BotoCoreError, ClientError
from services.prometheus import PrometheusServer
from waiting import eventually

from node.kfaas_release import Release

DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "kfaas" / "dashboards" / "kfaas.json"
RATE_INTERVAL = "30s"  # Grafana's $__rate_interval: at least 4 scrapes (1 s here)
HANDLER = """\
import time

def handler(event, context):
    if "Records" in event:  # a batch from the poller
        if any("poison" in record["body"] for record in event["Records"]):
            raise ValueError("poison record")
        return {"records": len(event["Records"])}
    time.sleep(event.get("sleep", 0.05))
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"ok": True}
"""
# Nothing listens there: deliveries to it fail, as a destination that is down would.
UNREACHABLE_REDIS = "redis://10.88.0.1:1/0"


def dashboard_queries(namespace: str, function: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target, with the dashboard's variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = str(target["expr"])
            expr = expr.replace("$__rate_interval", RATE_INTERVAL)
            expr = expr.replace("$namespace", namespace).replace("$function", function)
            assert "$" not in expr, f"a variable the test does not know in {expr}"
            queries.append((str(panel["title"]), expr))
    return queries


@dataclass
class Load:
    ok: int = 0
    errors: int = 0
    throttled: int = 0
    # Connections the gateway dropped (a gateway pod going away under another test's hands).
    dropped: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # other error codes, by code
    stop: threading.Event = field(default_factory=threading.Event)

    def refuse(self, code: str) -> None:
        if code == "TooManyRequestsException":
            self.throttled += 1
        else:
            self.refused[code] = self.refused.get(code, 0) + 1


@pytest.fixture(scope="module")
def loaded(
    release: Release, prometheus_service: PrometheusServer, platform_redis_url: str
) -> Iterator[tuple[str, Load]]:
    """A function under steady load for the whole module: its name and the load's counts."""
    async_spec: dict[str, Any] = {  # `async` is a keyword: passed as **
        "async": {
            "maximumRetryAttempts": 0,
            "onSuccess": {"redis": {"stream": "nowhere", "url": UNREACHABLE_REDIS}},
        }
    }
    name = release.function(
        {"app.py": HANDLER},
        timeoutSeconds=10,
        concurrency={"reserved": 2},
        scaling={"minInstances": 1},
        **async_spec,
    )
    source = f"prom-{uuid.uuid4().hex[:8]}"
    release.apply({
        "apiVersion": "kfaas.dev/v1alpha1", "kind": "EventSourceMapping",
        "metadata": {"name": f"{name}-stream", "namespace": release.namespace},
        "spec": {
            "functionName": name,
            "redis": {"url": platform_redis_url, "stream": source,
                      "startingPosition": "TRIM_HORIZON"},
            "batchSize": 5, "maximumRetryAttempts": 0,
            "destinationConfig": {"onFailure": {"redis": {"stream": "nowhere",
                                                          "url": UNREACHABLE_REDIS}}},
        },
    })  # fmt: skip
    store = redis.Redis.from_url(platform_redis_url)
    load = Load()
    client = release.lambda_client()

    def call() -> None:
        n = 0
        while not load.stop.is_set():
            n += 1
            payload = {"sleep": 0.2, "fail": n % 7 == 0}
            try:
                answer = client.invoke(
                    FunctionName=release.qualified(name), Payload=json.dumps(payload).encode()
                )
            except ClientError as refused:
                load.refuse(refused.response["Error"]["Code"])
                time.sleep(0.1)
                continue
            except BotoCoreError:
                load.dropped += 1
                time.sleep(0.5)
                continue
            answer["Payload"].read()
            if "FunctionError" in answer:
                load.errors += 1
            else:
                load.ok += 1
            # Paced: three callers collide on the reserved 2 often enough to be throttled, yet
            # leave free slots for the poller's batches. Unpaced, they held both slots nearly all
            # the time once reserved concurrency became one count across the gateway replicas
            # (ADR 028), and the poller's batches were throttled for good: no record failed.
            time.sleep(0.3)

    def events() -> None:
        n = 0
        while not load.stop.wait(1.0):
            n += 1
            for fail in (False, True):
                try:
                    client.invoke(
                        FunctionName=release.qualified(name),
                        InvocationType="Event",
                        Payload=json.dumps({"fail": fail, "sleep": 0.01}).encode(),
                    )
                except ClientError as refused:  # a full async queue answers 429 too
                    load.refuse(refused.response["Error"]["Code"])
                except BotoCoreError:
                    load.dropped += 1
            store.xadd(source, {"n": str(n), "kind": "poison" if n % 5 == 0 else "plain"})

    with ThreadPoolExecutor(max_workers=4) as pool:
        running = [pool.submit(call) for _ in range(3)] + [pool.submit(events)]
        try:
            yield name, load
        finally:
            load.stop.set()
            for future in running:
                future.result()
            # A reused node keeps the release: leave no pods or poller behind for the next run.
            release.kubectl("-n", release.namespace, "delete", "--wait=false",
                            f"eventsourcemapping/{name}-stream", f"function/{name}")  # fmt: skip


# A stand-in for a function pod: /metrics with one series the gateway also exports (dropped by
# the scrape job) and one only function pods have.
FAKE_RUNTIME = """\
import http.server, signal, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
BODY = (b'kfaas_invocations_total{namespace="sd",function="fake"} 3\\n'
        b'kfaas_worker_restarts_total{namespace="sd",function="fake",reason="timeout"} 1\\n')
class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(BODY)
http.server.HTTPServer(("0.0.0.0", 8080), Metrics).serve_forever()
"""


@pytest.fixture
def fake_runtime_pod(cluster_service: Any) -> Iterator[str]:
    namespace = f"prom-{uuid.uuid4().hex[:6]}"
    image = cluster_service.environment()["KFAAS_IMAGE"]
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "fake-runtime", "namespace": namespace,
                     "labels": {"kfaas.dev/component": "runtime"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "runtime", "image": image, "imagePullPolicy": "Never",
            "command": ["python3", "-c", FAKE_RUNTIME],
            "ports": [{"name": "http", "containerPort": 8080}],
        }]},
    }  # fmt: skip
    cluster_service.kubectl("create", "namespace", namespace)
    cluster_service.kubectl("apply", "-f", "-", input=json.dumps(pod))
    try:
        yield namespace
    finally:
        cluster_service.kubectl("delete", "namespace", namespace, "--wait=false")


def test_prometheus_finds_a_labelled_pod_on_the_bridge_and_scrapes_it(
    prometheus_service: PrometheusServer, fake_runtime_pod: str
) -> None:
    """Kubernetes discovery through the kubeconfig, the pod's address on the bridge, the scrape
    job's selection and its drop of a function pod's copies of the gateway's series."""
    selector = f'pod_namespace="{fake_runtime_pod}",pod="fake-runtime"'
    eventually(
        lambda: prometheus_service.query(f'up{{{selector},component="runtime"}} == 1') or None,
        within=60,
        what="the fake runtime pod as an up target",
    )
    restarts = prometheus_service.query(f"kfaas_worker_restarts_total{{{selector}}}")
    assert [s["value"][1] for s in restarts] == ["1"]
    assert restarts[0]["metric"]["namespace"] == "sd"  # honour_labels: the series' own
    assert prometheus_service.query(f"kfaas_invocations_total{{{selector}}}") == []


def _components(prometheus: PrometheusServer) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for target in prometheus.targets():
        found.setdefault(target["labels"].get("component", "?"), []).append(target)
    return found


def test_prometheus_discovers_and_scrapes_every_kfaas_component(
    prometheus_service: PrometheusServer, loaded: tuple[str, Load]
) -> None:
    def all_up() -> dict[str, list[dict[str, Any]]] | None:
        found = _components(prometheus_service)
        wanted = ("gateway", "operator", "runtime", "poller")
        if all(found.get(c) and all(t["health"] == "up" for t in found[c]) for c in wanted):
            return found
        return None

    found = eventually(all_up, within=90, what="up targets for gateway, operator, runtime, poller")
    assert len(found["operator"]) == 2  # both replicas, the standby included
    for target in (t for targets in found.values() for t in targets):
        assert target["discoveredLabels"]["__meta_kubernetes_pod_ip"].startswith("10.88.")


@pytest.mark.timeout(300)  # a loaded 2-CPU node: scrapes and rate() windows need minutes
def test_every_dashboard_query_returns_data_for_a_function_under_load(
    release: Release, prometheus_service: PrometheusServer, loaded: tuple[str, Load]
) -> None:
    name, load = loaded
    queries = dashboard_queries(release.namespace, name)
    assert len(queries) >= 20

    def all_answered() -> bool:
        missing = [(title, q) for title, q in queries if not prometheus_service.query(q)]
        assert not missing, f"dashboard queries without data ({load}):\n" + "\n".join(
            f"  {title}: {q}" for title, q in missing
        )
        return True

    eventually(  # under the test's own 300 s, so the message names the gaps
        all_answered, within=180, what="data for every dashboard query", interval=2,
        ignoring=(AssertionError,),
    )  # fmt: skip
    # The variables' own queries find the function too.
    names = prometheus_service.query(
        f'count by (function) (kfaas_invocations_total{{namespace="{release.namespace}"}})'
    )
    assert name in {series["metric"]["function"] for series in names}


def test_the_dashboard_counts_each_invocation_once(
    release: Release, prometheus_service: PrometheusServer, loaded: tuple[str, Load]
) -> None:
    """The panels sum over every scraped series: the gateway's count must not be added to the
    function pods' own (both export kfaas_invocations_total)."""
    name, _ = loaded
    selector = f'namespace="{release.namespace}",function="{name}"'
    everything = prometheus_service.query(f"sum(kfaas_invocations_total{{{selector}}})")
    gateway = prometheus_service.query(
        f'sum(kfaas_invocations_total{{{selector},component="gateway"}})'
    )
    assert everything and gateway
    total, seen_by_gateway = float(everything[0]["value"][1]), float(gateway[0]["value"][1])
    assert seen_by_gateway > 0
    assert total < 1.5 * seen_by_gateway, (total, seen_by_gateway)
