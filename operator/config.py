"""The operator's settings: what it puts into every pod it creates, and how the process runs.

``OperatorConfig`` is what every function pod and poller gets; ``OperatorOptions`` is how the
process itself runs (namespace, peering, identity, probes). Both are read once, from ``KFAAS_*``
variables (the chart sets them) and flags, at the entry point, and passed down: the builders stay
pure functions of (manifest, config), and no other operator module reads the environment. A bad
value raises ValueError naming the variable and the expected form (``kfaas operator`` exits 2).
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kfaas import runtimes
from kfaas.config import Settings

from .platform_brokers import PlatformKafka, PlatformRedis


@dataclass(frozen=True)
class EgressConfig:
    """What function pods may reach (docs/security.md, "Function pods"): see ``make_egress_rules``.

    By default: DNS, the gateway's invoke port, and any address outside the cluster but the
    link-local range (cloud metadata). ``denied_cidrs`` are also cut out of "anywhere": the
    cluster's pod and service ranges and the API server's addresses, which a NetworkPolicy cannot
    otherwise tell apart from the internet on CNIs where ipBlock matches in-cluster addresses.
    """

    enabled: bool = True
    allow_platform_namespace: bool = False
    allow_api_server: bool = False
    allow_metadata: bool = False
    denied_cidrs: tuple[str, ...] = ()
    api_server_cidrs: tuple[str, ...] = ()
    allowed_cidrs: tuple[str, ...] = ()
    gateway_ports: tuple[int, ...] = (8080,)
    dns_namespace: str = "kube-system"
    dns_pod_labels: tuple[tuple[str, str], ...] = (("k8s-app", "kube-dns"),)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> EgressConfig:
        dns_labels = environ.get("KFAAS_EGRESS_DNS_POD_LABELS")
        return cls(
            enabled=_flag(environ, "KFAAS_EGRESS_POLICY", True),
            allow_platform_namespace=_flag(environ, "KFAAS_EGRESS_ALLOW_PLATFORM", False),
            allow_api_server=_flag(environ, "KFAAS_EGRESS_ALLOW_API_SERVER", False),
            allow_metadata=_flag(environ, "KFAAS_EGRESS_ALLOW_METADATA", False),
            denied_cidrs=_cidrs(environ, "KFAAS_EGRESS_DENIED_CIDRS"),
            api_server_cidrs=_cidrs(environ, "KFAAS_EGRESS_API_SERVER_CIDRS"),
            allowed_cidrs=_cidrs(environ, "KFAAS_EGRESS_ALLOWED_CIDRS"),
            gateway_ports=_ports(environ, "KFAAS_EGRESS_GATEWAY_PORTS") or cls.gateway_ports,
            dns_namespace=environ.get("KFAAS_EGRESS_DNS_NAMESPACE") or cls.dns_namespace,
            dns_pod_labels=(
                _labels(dns_labels, "KFAAS_EGRESS_DNS_POD_LABELS")
                if dns_labels
                else cls.dns_pod_labels
            ),
        )


@dataclass(frozen=True)
class OperatorConfig:
    # The kfaas image: runtime pods (unless code.image brings its own) and pollers run it.
    image: str = "kfaas:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    # The image of each runtime (KFAAS_RUNTIME_IMAGES, the chart's functions.runtimeImages) over
    # the defaults: ``image`` for python3.11 and provided. A runtime missing here is refused
    # (RuntimeNotAvailable, ADR 016); None: those defaults for ``image``.
    runtime_images: tuple[tuple[str, str], ...] | None = None
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
    # The platform key (KFAAS_RUNTIME_TOKEN_KEY, from the chart's Secret) each function's runtime
    # token is derived from (ADR 011). Without it no token is set and runtimes accept anyone
    # who can reach them: the chart always sets it.
    runtime_token_key: str | None = field(default=None, repr=False)
    # Whether a Function may have its ServiceAccount token mounted (podTemplate
    # automountServiceAccountToken: true): off unless the platform says so.
    allow_service_account_token: bool = False
    egress: EgressConfig = field(default_factory=EgressConfig)
    # The code store (ADR 025; KFAAS_CODE_STORE_URL and KFAAS_CODE_STORE_KEY, the chart's
    # codeStore): with both, code.zip Functions run (an init container fetches their zip with a
    # read capability derived from the key); without, they are refused (CodeStoreNotAvailable).
    code_store_url: str | None = None
    code_store_key: str | None = field(default=None, repr=False)
    # How the store's pods are labelled and the port they serve on: function pods' egress
    # policy lets them reach exactly these (KFAAS_CODE_STORE_POD_LABELS).
    code_store_pod_labels: tuple[tuple[str, str], ...] = (
        ("app.kubernetes.io/name", "kfaas"),
        ("app.kubernetes.io/component", "code-store"),
    )
    code_store_port: int = 8090
    # The platform's Kafka and Redis as poller pods get them, for destinations that name no
    # server of their own (ADR 032): the operator's own settings, Secrets mounted by name.
    platform_kafka: PlatformKafka = field(default_factory=PlatformKafka)
    platform_redis: PlatformRedis = field(default_factory=PlatformRedis)

    @property
    def code_store(self) -> bool:
        """Whether this platform runs the code store (code.zip Functions can run)."""
        return self.code_store_url is not None and self.code_store_key is not None

    def images(self) -> dict[str, str]:
        """The image of each runtime the platform can run (a runtime missing has none)."""
        if self.runtime_images is None:
            return runtimes.runtime_images("", self.image)
        return dict(self.runtime_images)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> OperatorConfig:
        settings = Settings.from_env(environ)
        namespace = environ.get("KFAAS_PLATFORM_NAMESPACE") or cls.platform_namespace
        labels = environ.get("KFAAS_GATEWAY_POD_LABELS")
        image = environ.get("KFAAS_IMAGE") or cls.image
        images = runtimes.runtime_images(environ.get(runtimes.IMAGES_ENV, ""), image)
        return cls(
            image=image,
            runtime_images=tuple(sorted(images.items())),
            image_pull_policy=environ.get("KFAAS_IMAGE_PULL_POLICY") or cls.image_pull_policy,
            region=settings.region,
            platform_namespace=namespace,
            gateway_url=environ.get("KFAAS_GATEWAY_URL")
            or f"http://kfaas-gateway.{namespace}.svc:8080",
            gateway_pod_labels=_labels(labels) if labels else cls.gateway_pod_labels,
            stream_retry_base_seconds=settings.stream_retry_base_seconds,
            stable_window_seconds=settings.scaling_stable_window_seconds,
            runtime_token_key=environ.get("KFAAS_RUNTIME_TOKEN_KEY") or None,
            allow_service_account_token=_flag(environ, "KFAAS_ALLOW_SERVICE_ACCOUNT_TOKEN", False),
            egress=EgressConfig.from_env(environ),
            platform_kafka=PlatformKafka.from_env(environ),
            platform_redis=PlatformRedis.from_env(environ),
            **_code_store(environ),
        )


@dataclass(frozen=True)
class OperatorOptions:
    namespace: str | None = None  # None: every namespace
    peering_name: str = "kfaas"
    identity: str = ""
    priority: int = 0
    kubeconfig: str | None = None
    # Kopf's liveness endpoint, e.g. http://0.0.0.0:8081/healthz (the chart's probe).
    health_address: str | None = None
    # Where /metrics is served (all interfaces); None: not served.
    metrics_port: int | None = None
    # No peering at all: this process reconciles and scales alone (``--standalone``).
    standalone: bool = False

    @classmethod
    def from_env(
        cls,
        namespace: str | None,
        kubeconfig: str | None = None,
        *,
        standalone: bool = False,
        environ: Mapping[str, str] = os.environ,
    ) -> OperatorOptions:
        identity = environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        raw = environ.get("KFAAS_OPERATOR_PRIORITY", "").strip()
        if raw and not raw.lstrip("-").isdigit():
            raise ValueError(f"KFAAS_OPERATOR_PRIORITY={raw!r} must be an integer")
        priority = int(raw) if raw else random.randint(1, 2**31 - 1)
        return cls(
            namespace=namespace,
            peering_name=environ.get("KFAAS_PEERING_NAME", "kfaas"),
            identity=identity,
            priority=priority,
            kubeconfig=kubeconfig,
            health_address=environ.get("KFAAS_OPERATOR_HEALTH_ADDRESS") or None,
            metrics_port=_port(environ.get("KFAAS_OPERATOR_METRICS_PORT")),
            standalone=standalone,
        )


def _code_store(environ: Mapping[str, str]) -> dict[str, Any]:
    """The code store's settings; its URL and key come together or not at all."""
    url = environ.get("KFAAS_CODE_STORE_URL", "").strip() or None
    key = environ.get("KFAAS_CODE_STORE_KEY", "").strip() or None
    if url is None:
        return {}
    if key is None:
        raise ValueError("KFAAS_CODE_STORE_URL needs KFAAS_CODE_STORE_KEY (the code store's key)")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"KFAAS_CODE_STORE_URL={url!r} must be an http:// or https:// URL")
    found: dict[str, Any] = {"code_store_url": url.rstrip("/"), "code_store_key": key}
    labels = environ.get("KFAAS_CODE_STORE_POD_LABELS")
    if labels:
        found["code_store_pod_labels"] = _labels(labels, "KFAAS_CODE_STORE_POD_LABELS")
    ports = _ports(environ, "KFAAS_CODE_STORE_POD_PORT")
    if ports:
        found["code_store_port"] = ports[0]
    return found


def _port(raw: str | None) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"KFAAS_OPERATOR_METRICS_PORT={raw!r} must be a port number")
    return int(raw)


def _labels(text: str, variable: str = "KFAAS_GATEWAY_POD_LABELS") -> tuple[tuple[str, str], ...]:
    """``a=b,c=d`` → pairs; a malformed entry raises ValueError naming it."""
    pairs = []
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise ValueError(f"{variable}: {item!r} must be key=value")
        pairs.append((key, value))
    return tuple(pairs)


def _flag(environ: Mapping[str, str], variable: str, default: bool) -> bool:
    raw = environ.get(variable, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false", "1", "0"):
        raise ValueError(f"{variable}={environ[variable]!r} must be true or false")
    return raw in ("true", "1")


def _cidrs(environ: Mapping[str, str], variable: str) -> tuple[str, ...]:
    """``10.0.0.0/8,fd00::/8`` → normalised CIDRs; a malformed one raises ValueError naming it."""
    found = []
    for item in environ.get(variable, "").split(","):
        if not item.strip():
            continue
        try:
            found.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError:
            raise ValueError(
                f"{variable}: {item.strip()!r} must be a CIDR such as 10.0.0.0/8"
            ) from None
    return tuple(found)


def _ports(environ: Mapping[str, str], variable: str) -> tuple[int, ...]:
    found = []
    for item in environ.get(variable, "").split(","):
        if not item.strip():
            continue
        if not item.strip().isdigit() or not 0 < int(item) < 65536:
            raise ValueError(f"{variable}: {item.strip()!r} must be a port number")
        found.append(int(item))
    return tuple(found)
