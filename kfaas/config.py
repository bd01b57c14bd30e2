"""Process-wide settings shared by every kfaas component, read from `KFAAS_*` variables.

Each component has its own flags too; these are the few values every component needs to agree on
(how fast retries go, which namespace a bare function name means, which region ARNs name).
Reading them in one place gives one error message per bad variable instead of a crash deep inside.

This is one of the few settings modules allowed to read the process environment (ruff TID251,
ADR 020); each role builds its settings once at its entry point and passes them down. The parsers
below (``seconds``, ``count``, ``port``, ``choice``) are shared by the roles' own
settings modules so that every bad value reads ``NAME='value' must be <form>``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from kfaas import runtimetoken
from kfaas.kafka_settings import PlatformKafkaSecurity

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_REGION = re.compile(r"[a-z0-9-]+")


def seconds(environ: Mapping[str, str], variable: str, default: float) -> float:
    """Zero or more seconds (a float); unset or blank: ``default``."""
    raw = environ.get(variable)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{variable}={raw!r} must be a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{variable}={raw!r} must be zero or more seconds")
    return value


_SIZE = re.compile(r"(\d+)\s*(Ki|Mi|Gi)?")
_UNITS = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}


def count(environ: Mapping[str, str], variable: str, default: int, *, size: bool = False) -> int:
    """A whole number of at least 1 (``size``: bytes, optionally with a Ki, Mi or Gi suffix)."""
    raw = environ.get(variable)
    if raw is None or raw.strip() == "":
        return default
    match = (_SIZE if size else re.compile(r"(\d+)()")).fullmatch(raw.strip())
    value = int(match.group(1)) * _UNITS[match.group(2) or None] if match else 0
    if value < 1:
        form = "a number of bytes such as 67108864 or 64Mi" if size else "a whole number, 1 or more"
        raise ValueError(f"{variable}={raw!r} must be {form}")
    return value


def _matching(
    environ: Mapping[str, str], variables: tuple[str, ...], default: str, pattern: re.Pattern[str]
) -> str:
    for variable in variables:
        raw = environ.get(variable)
        if raw:
            if not pattern.fullmatch(raw):
                raise ValueError(f"{variable}={raw!r} is not a valid value")
            return raw
    return default


def fraction(environ: Mapping[str, str], variable: str, default: float) -> float:
    """A fraction from 0 to 1 (a float); unset or blank: ``default``."""
    raw = environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{variable}={raw!r} must be a fraction from 0 to 1, such as 0.05")
    return value


def whole(environ: Mapping[str, str], variable: str, default: int) -> int:
    """A whole number, 0 or more; unset or blank: ``default``."""
    raw = environ.get(variable, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ValueError(f"{variable}={raw!r} must be a whole number, 0 or more")
    return int(raw)


AUTH_MODES = ("none", "sigv4")


def choice(environ: Mapping[str, str], variable: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (the first when unset); anything else names the variable."""
    raw = environ.get(variable, "").strip()
    if raw and raw not in choices:
        raise ValueError(f"{variable}={raw!r} must be one of {', '.join(choices)}")
    return raw or choices[0]


def http_url(environ: Mapping[str, str], variable: str) -> str:
    """A plain-HTTP base URL, ``http://host[:port][/path]`` (how kfaas's own callers reach the
    gateway inside the cluster); unset or blank: ""."""
    raw = environ.get(variable, "").strip()
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 -- a port that is not a number raises ValueError
        usable = parts.scheme == "http" and bool(parts.hostname)
    except ValueError:
        usable = False
    if raw and not usable:
        raise ValueError(f"{variable}={raw!r} must be http://host[:port]")
    return raw


def port(environ: Mapping[str, str], variable: str, default: int) -> int:
    """A TCP port, 0 to 65535; unset or blank: ``default``."""
    raw = environ.get(variable, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 65535:
        raise ValueError(f"{variable}={raw!r} must be a port number, 0 to 65535")
    return int(raw)


def wants_otlp(environ: Mapping[str, str]) -> bool:
    """Whether the standard OpenTelemetry variables ask for traces exported over OTLP."""
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_TRACES_EXPORTER", "").lower() == "otlp"
    )


def host_environment() -> dict[str, str]:
    """A copy of this process's environment: what `kfaas dev` hands on, in part, to the instances
    and interpreter probes it starts (PATH, HOME, OTEL_*…), taken once by whoever starts them."""
    return dict(os.environ)


def in_a_pod(environ: Mapping[str, str] = os.environ) -> bool:
    """Inside a Kubernetes pod, where its service account's credentials apply (the kubelet says)."""
    return bool(environ.get("KUBERNETES_SERVICE_HOST"))


@dataclass(frozen=True)
class Settings:
    # Lambda waits about 1 then 2 minutes between async retries; tests shrink this to seconds.
    async_retry_base_seconds: float = 60.0
    stream_retry_base_seconds: float = 1.0
    # The scaling rule's stable window (Knative's 60 s); demos and tests shorten it.
    scaling_stable_window_seconds: float = 60.0
    default_namespace: str = "default"
    region: str = "us-east-1"
    log_level: str = "info"
    # Where Event invocations wait: memory, redis://… or kafka://… ("" = the command's default).
    async_queue: str = ""
    # How long a silent dispatcher keeps its in-flight async events before another takes them over.
    async_redelivery_seconds: float = 30.0
    # The platform's own Redis and Kafka, used by destinations that name no server of their own.
    redis_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    # How the platform's Kafka is reached (KFAAS_KAFKA_TLS, _SASL_MECHANISM, …; ADR 027).
    kafka_security: PlatformKafkaSecurity = dataclasses.field(default_factory=PlatformKafkaSecurity)
    # Bounds of the gateway (ADR 010, docs/security.md "Bounded resources").
    header_timeout_seconds: float = 10.0
    body_idle_timeout_seconds: float = 30.0
    body_timeout_seconds: float = 120.0
    keepalive_timeout_seconds: float = 75.0
    max_connections: int = 1000
    body_memory_bytes: int = 64 << 20
    async_queue_max_events: int = 10_000
    async_queue_max_bytes: int = 64 << 20
    # Invoke API authentication (ADR 009): none, or sigv4 (SigV4 keys, bearer tokens, RBAC).
    auth: str = "none"
    # How long a TokenReview or SubjectAccessReview answer is reused (0: ask every time).
    auth_cache_seconds: float = 10.0
    # The key runtime tokens are derived from (ADR 011); None: a random key per start.
    runtime_token_key: str | None = dataclasses.field(default=None, repr=False)
    # Export traces over OTLP (the standard OTEL_* variables ask for it), as this service.
    otlp_traces: bool = False
    otel_service_name: str | None = None
    # Traces the gateway starts for `tracing.mode: Active` functions (ADR 030), as X-Ray's default
    # rule: the first N invocations each second, then this fraction of the others.
    tracing_sample_rate: float = 0.05
    tracing_reservoir_per_second: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Read the settings; a bad value raises ValueError naming the variable."""
        log_level = environ.get("KFAAS_LOG_LEVEL", "").strip().lower() or "info"
        if log_level not in LOG_LEVELS:
            raise ValueError(
                f"KFAAS_LOG_LEVEL={environ['KFAAS_LOG_LEVEL']!r} must be one of "
                f"{', '.join(LOG_LEVELS)}"
            )
        return cls(
            async_retry_base_seconds=seconds(environ, "KFAAS_ASYNC_RETRY_BASE_SECONDS", 60.0),
            stream_retry_base_seconds=seconds(environ, "KFAAS_STREAM_RETRY_BASE_SECONDS", 1.0),
            scaling_stable_window_seconds=seconds(
                environ, "KFAAS_SCALING_STABLE_WINDOW_SECONDS", 60.0
            ),
            default_namespace=_matching(
                environ, ("KFAAS_DEFAULT_NAMESPACE",), "default", _NAMESPACE
            ),
            # The kfaas-specific variable wins: AWS_REGION may be set for the AWS SDK's sake.
            region=_matching(environ, ("KFAAS_REGION", "AWS_REGION"), "us-east-1", _REGION),
            log_level=log_level,
            async_queue=environ.get("KFAAS_ASYNC_QUEUE", "").strip(),
            async_redelivery_seconds=seconds(environ, "KFAAS_ASYNC_REDELIVERY_SECONDS", 30.0),
            redis_url=environ.get("KFAAS_REDIS_URL", "").strip() or None,
            kafka_bootstrap_servers=(
                environ.get("KFAAS_KAFKA_BOOTSTRAP_SERVERS", "").strip() or None
            ),
            kafka_security=PlatformKafkaSecurity.from_env(environ),
            **_bounds(environ),  # type: ignore[arg-type]
            auth=choice(environ, "KFAAS_AUTH", AUTH_MODES),
            auth_cache_seconds=seconds(environ, "KFAAS_AUTH_CACHE_SECONDS", 10.0),
            runtime_token_key=environ.get(runtimetoken.KEY_ENV) or None,
            otlp_traces=wants_otlp(environ),
            otel_service_name=environ.get("OTEL_SERVICE_NAME") or None,
            tracing_sample_rate=fraction(environ, "KFAAS_TRACING_SAMPLE_RATE", 0.05),
            tracing_reservoir_per_second=whole(environ, "KFAAS_TRACING_RESERVOIR_PER_SECOND", 1),
        )

    def with_flags(self, flags: Mapping[str, str | None]) -> Settings:
        """These settings with the bounds given as command-line flags (``BOUND_FLAGS``) applied.

        A flag is checked as its variable is, and a bad one raises ValueError naming the flag.
        """
        changes = {
            field: _bound(flags, field, flag)
            for flag, (field, _) in BOUND_FLAGS.items()
            if flags.get(flag) is not None
        }
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


# Flags of `kfaas dev` and `kfaas gateway` that set a bound: flag -> (Settings field, variable).
BOUND_FLAGS: dict[str, tuple[str, str]] = {
    "--header-timeout": ("header_timeout_seconds", "KFAAS_HEADER_TIMEOUT_SECONDS"),
    "--body-idle-timeout": ("body_idle_timeout_seconds", "KFAAS_BODY_IDLE_TIMEOUT_SECONDS"),
    "--body-timeout": ("body_timeout_seconds", "KFAAS_BODY_TIMEOUT_SECONDS"),
    "--keepalive-timeout": ("keepalive_timeout_seconds", "KFAAS_KEEPALIVE_TIMEOUT_SECONDS"),
    "--max-connections": ("max_connections", "KFAAS_MAX_CONNECTIONS"),
    "--body-memory": ("body_memory_bytes", "KFAAS_BODY_MEMORY_BYTES"),
    "--async-queue-max-events": ("async_queue_max_events", "KFAAS_ASYNC_QUEUE_MAX_EVENTS"),
    "--async-queue-max-bytes": ("async_queue_max_bytes", "KFAAS_ASYNC_QUEUE_MAX_BYTES"),
}


def _bounds(environ: Mapping[str, str]) -> dict[str, float | int]:
    return {field: _bound(environ, field, variable) for field, variable in BOUND_FLAGS.values()}


def _bound(source: Mapping[str, str | None], field: str, name: str) -> float | int:
    """One bound from ``source[name]`` (a variable or a flag), checked; errors name ``name``."""
    present = {name: raw} if (raw := source.get(name)) is not None else {}
    default = getattr(Settings, field)
    if isinstance(default, float):
        value = seconds(present, name, default)
        if value == 0:
            raise ValueError(f"{name}={raw!r} must be more than 0 seconds")
        return value
    return count(present, name, default, size=field.endswith("_bytes"))


def async_queue_for(command: str, settings: Settings, flag: str | None = None) -> str:
    """Which async queue a command uses: the flag, then KFAAS_ASYNC_QUEUE, then the default.

    In a cluster the gateway defaults to Redis Streams on the platform's Redis (KFAAS_REDIS_URL),
    so replicas share durable work; ``kfaas dev`` and a gateway without Redis keep events in memory.
    ``redis`` names that platform Redis explicitly (the chart's default): ValueError without it.
    """
    chosen = flag or settings.async_queue
    if chosen == "redis":
        if not settings.redis_url:
            raise ValueError("async queue 'redis' means the platform's Redis: set KFAAS_REDIS_URL")
        return settings.redis_url
    if chosen:
        return chosen
    if command == "gateway" and settings.redis_url:
        return settings.redis_url
    return "memory"
