"""The operator's configuration: what it puts into every function pod and poller it creates.

Read once from ``KFAAS_*`` variables (the chart sets them) so the builders stay pure functions of
(manifest, config).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from kfaas.config import Settings


@dataclass(frozen=True)
class OperatorConfig:
    # The kfaas image: runtime pods (unless code.image brings its own) and pollers run it.
    image: str = "kfaas:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    region: str = "us-east-1"
    # Where the gateway and the operator run, and how their pods are labelled: NetworkPolicies
    # admit exactly these, and pollers invoke through the gateway's URL.
    platform_namespace: str = "kfaas-system"
    gateway_url: str = "http://kfaas-gateway.kfaas-system.svc:8080"
    gateway_pod_labels: tuple[tuple[str, str], ...] = (
        ("app.kubernetes.io/name", "kfaas"),
        ("app.kubernetes.io/component", "gateway"),
    )
    # /tmp of a runtime pod, as Lambda's default ephemeral storage.
    tmp_size_mb: int = 512
    # Memory the runtime server itself needs on top of memoryMB per worker.
    runtime_overhead_mb: int = 64
    stream_retry_base_seconds: float = 1.0
    # The autoscaler's stable window (KFAAS_SCALING_STABLE_WINDOW_SECONDS), as in local mode.
    stable_window_seconds: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> OperatorConfig:
        settings = Settings.from_env(environ)
        namespace = environ.get("KFAAS_PLATFORM_NAMESPACE") or cls.platform_namespace
        labels = environ.get("KFAAS_GATEWAY_POD_LABELS")
        return cls(
            image=environ.get("KFAAS_IMAGE") or cls.image,
            image_pull_policy=environ.get("KFAAS_IMAGE_PULL_POLICY") or cls.image_pull_policy,
            region=settings.region,
            platform_namespace=namespace,
            gateway_url=environ.get("KFAAS_GATEWAY_URL")
            or f"http://kfaas-gateway.{namespace}.svc:8080",
            gateway_pod_labels=_labels(labels) if labels else cls.gateway_pod_labels,
            stream_retry_base_seconds=settings.stream_retry_base_seconds,
            stable_window_seconds=settings.scaling_stable_window_seconds,
        )


def _labels(text: str) -> tuple[tuple[str, str], ...]:
    """``a=b,c=d`` → pairs; a malformed entry raises ValueError naming it."""
    pairs = []
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise ValueError(f"KFAAS_GATEWAY_POD_LABELS: {item!r} must be key=value")
        pairs.append((key, value))
    return tuple(pairs)
