"""Prometheus on the real node: a host process that finds kfaas's pods by Kubernetes discovery.

It reads the API server with the cluster's kubeconfig and scrapes pod addresses on the bridge,
which the host reaches directly. What it scrapes is `scrape_configs()`, the same selection
docs/operating.md gives to a Prometheus without the operator: the gateway and operator through
their Services' endpoints (what the chart's ServiceMonitor selects), function and poller pods by
their `kfaas.dev/component` label and named port. `honor_labels` keeps the `namespace` and
`function` labels of kfaas's series (the function's, not the scraped pod's namespace). A function
pod's own counts of its invocations are dropped: the gateway counts the same invocations under the
same names, and the dashboard's sums would count each twice.
Scrapes and rule evaluation run every second, so a test sees data within seconds.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from services.addons_build import PROMETHEUS
from services.base import LOOPBACK, ServiceDir, ServiceError, progress
from services.processes import launch, running_pid, stop, wait_until

SCRAPE_INTERVAL = "1s"
# What a function pod's /metrics and the gateway's both count, for the same invocations.
GATEWAY_ALSO = (
    "invocations",
    "errors",
    "duration_seconds",
    "concurrent_executions",
    "cold_starts",
    "init_duration_seconds",
)
DUPLICATES = "|".join(GATEWAY_ALSO)


def scrape_configs(kubeconfig: Path | None = None) -> list[dict[str, Any]]:
    """kfaas's scrape jobs; without `kubeconfig`, discovery uses the in-cluster account."""
    sd: dict[str, Any] = {}
    if kubeconfig is not None:
        sd["kubeconfig_file"] = str(kubeconfig)
    pod_labels = [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "pod_namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    return [
        {
            "job_name": "kfaas-services",
            "honor_labels": True,
            "kubernetes_sd_configs": [{"role": "endpoints", **sd}],
            "relabel_configs": [
                {
                    "source_labels": [
                        "__meta_kubernetes_service_label_app_kubernetes_io_name",
                        "__meta_kubernetes_service_label_app_kubernetes_io_component",
                        "__meta_kubernetes_endpoint_port_name",
                    ],
                    "regex": "kfaas;(gateway;http|operator;metrics|scheduler;metrics)",
                    "action": "keep",
                },
                {
                    "source_labels": [
                        "__meta_kubernetes_service_label_app_kubernetes_io_component"
                    ],
                    "target_label": "component",
                },
                *pod_labels,
            ],
        },
        {
            "job_name": "kfaas-pods",
            "honor_labels": True,
            "kubernetes_sd_configs": [{"role": "pod", **sd}],
            "relabel_configs": [
                {
                    "source_labels": [
                        "__meta_kubernetes_pod_label_kfaas_dev_component",
                        "__meta_kubernetes_pod_container_port_name",
                    ],
                    "regex": "(runtime;http|poller;metrics)",
                    "action": "keep",
                },
                {
                    "source_labels": ["__meta_kubernetes_pod_label_kfaas_dev_component"],
                    "target_label": "component",
                },
                *pod_labels,
            ],
            # A function pod counts the invocations it runs under the gateway's names; the
            # dashboard sums every series, so keep only what the gateway does not export.
            "metric_relabel_configs": [
                {
                    "source_labels": ["component", "__name__"],
                    "regex": f"runtime;kfaas_({DUPLICATES})(_total|_bucket|_sum|_count)?",
                    "action": "drop",
                }
            ],
        },
    ]


def configuration(kubeconfig: Path) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": scrape_configs(kubeconfig),
    }


class PrometheusServer:
    """`.url`, `.query(expr)`, `.targets()`; data lives in the run's state folder."""

    name = "prometheus"

    def __init__(self, state_dir: Path, *, kubeconfig: Path) -> None:
        self.dir = ServiceDir(state_dir, self.name)
        self.kubeconfig = kubeconfig
        self.port = 0

    @staticmethod
    def build() -> None:
        PROMETHEUS.build()

    @property
    def log_path(self) -> Path:
        return self.dir.log_file("prometheus")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def running(self) -> bool:
        return running_pid(self.dir.pid_file("prometheus")) is not None

    def up(self) -> None:
        binary = PROMETHEUS.build()
        self.port = self.dir.ports(["web"])["web"]
        config = self.dir.root / "prometheus.json"  # JSON is YAML, which Prometheus reads
        config.write_text(json.dumps(configuration(self.kubeconfig), indent=2) + "\n")
        argv = [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.dir.data}",
            "--storage.tsdb.retention.time=2h",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--log.level=warn",
        ]
        pid = launch(argv, pid_file=self.dir.pid_file("prometheus"), log_file=self.log_path)
        progress(f"Prometheus on {self.url} (log {self.log_path})")
        wait_until(self._ready, what="prometheus", timeout=60, pid=pid, log_file=self.log_path)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def down(self) -> None:
        stop(self.dir.pid_file("prometheus"))

    def _api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as answer:
                body = json.load(answer)
        except urllib.error.HTTPError as refused:
            raise ServiceError(f"Prometheus {path} {params}: {refused.read()!r}") from None
        if body.get("status") != "success":
            raise ServiceError(f"Prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector (a list of {metric, value})."""
        data = self._api("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their labels, health and last error."""
        active: list[dict[str, Any]] = self._api("/api/v1/targets", state="active")["activeTargets"]
        return active
