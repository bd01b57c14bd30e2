"""Process-wide settings shared by every kfaas component, read from `KFAAS_*` variables.

Each component has its own flags too; these are the few values every component needs to agree on
(how fast retries go, which namespace a bare function name means, which region ARNs name).
Reading them in one place gives one error message per bad variable instead of a crash deep inside.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_REGION = re.compile(r"[a-z0-9-]+")


def _seconds(environ: Mapping[str, str], variable: str, default: float) -> float:
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
            async_retry_base_seconds=_seconds(environ, "KFAAS_ASYNC_RETRY_BASE_SECONDS", 60.0),
            stream_retry_base_seconds=_seconds(environ, "KFAAS_STREAM_RETRY_BASE_SECONDS", 1.0),
            scaling_stable_window_seconds=_seconds(
                environ, "KFAAS_SCALING_STABLE_WINDOW_SECONDS", 60.0
            ),
            default_namespace=_matching(
                environ, ("KFAAS_DEFAULT_NAMESPACE",), "default", _NAMESPACE
            ),
            # The kfaas-specific variable wins: AWS_REGION may be set for the AWS SDK's sake.
            region=_matching(environ, ("KFAAS_REGION", "AWS_REGION"), "us-east-1", _REGION),
            log_level=log_level,
            async_queue=environ.get("KFAAS_ASYNC_QUEUE", "").strip(),
            async_redelivery_seconds=_seconds(environ, "KFAAS_ASYNC_REDELIVERY_SECONDS", 30.0),
            redis_url=environ.get("KFAAS_REDIS_URL", "").strip() or None,
            kafka_bootstrap_servers=(
                environ.get("KFAAS_KAFKA_BOOTSTRAP_SERVERS", "").strip() or None
            ),
        )


def async_queue_for(command: str, settings: Settings, flag: str | None = None) -> str:
    """Which async queue a command uses: the flag, then KFAAS_ASYNC_QUEUE, then the default.

    In a cluster the gateway defaults to Redis Streams on the platform's Redis (KFAAS_REDIS_URL),
    so replicas share durable work; ``kfaas dev`` and a gateway without Redis keep events in memory.
    """
    if flag:
        return flag
    if settings.async_queue:
        return settings.async_queue
    if command == "gateway" and settings.redis_url:
        return settings.redis_url
    return "memory"
