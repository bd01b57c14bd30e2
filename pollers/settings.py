"""The pollers' settings: read from `KFAAS_POLLER_*` and friends once, at the entry point.

`kfaas poller` builds them in ``main``; `kfaas dev`, which runs pollers in its own process, builds
them too and hands them to its ``PollerGroup``. Nothing below the entry points reads the
environment (ruff TID251, ADR 020), so a bad value is one line naming the variable, exit 2, before
anything starts, never a traceback from deep inside a runner.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from kfaas.config import Settings, http_url, in_a_pod, port, seconds

from .status import REPORT_SECONDS

DEFAULT_METRICS_PORT = 9090
DEFAULT_CLAIM_IDLE_SECONDS = 60.0


@dataclass(frozen=True)
class PollerSettings:
    # The gateway every batch is sent through ("" = not set; `kfaas poller` needs it).
    gateway_url: str = ""
    # The mapping as YAML or JSON (KFAAS_MAPPING), when not given as --mapping FILE.
    mapping: str = ""
    metrics_host: str = "127.0.0.1"
    # None: not set (`kfaas poller` serves on 9090; `kfaas dev` serves no poller metrics).
    metrics_port: int | None = None
    status_seconds: float = REPORT_SECONDS
    # How long a Redis entry stays with a silent consumer before another claims it.
    claim_idle_seconds: float = DEFAULT_CLAIM_IDLE_SECONDS
    # Redis consumer names: stable per pod ("" = the host name), so a restart finds its entries.
    consumer_name: str = ""
    # A file holding the bearer token presented to the gateway ("" = the ServiceAccount's, if any).
    gateway_token_file: str = ""
    # Where the mapping's status is reported: the pod's own credentials, else a kubeconfig.
    in_a_pod: bool = False
    kubeconfig: str | None = None
    # Where the Secrets a secured Kafka mapping names are mounted, a folder each ("" = none).
    secrets_dir: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PollerSettings:
        """Read the settings; a bad value raises ValueError naming the variable."""
        metrics_port = port(environ, "KFAAS_POLLER_METRICS_PORT", -1)
        return cls(
            # Plain HTTP inside the cluster, as the invoker speaks it.
            gateway_url=http_url(environ, "KFAAS_GATEWAY_URL"),
            mapping=environ.get("KFAAS_MAPPING", ""),
            metrics_host=environ.get("KFAAS_POLLER_METRICS_HOST", "127.0.0.1"),
            metrics_port=None if metrics_port == -1 else metrics_port,
            status_seconds=seconds(environ, "KFAAS_POLLER_STATUS_SECONDS", REPORT_SECONDS),
            claim_idle_seconds=seconds(
                environ, "KFAAS_POLLER_CLAIM_IDLE_SECONDS", DEFAULT_CLAIM_IDLE_SECONDS
            ),
            consumer_name=environ.get("KFAAS_POLLER_CONSUMER_NAME", ""),
            gateway_token_file=environ.get("KFAAS_GATEWAY_TOKEN_FILE", "").strip(),
            in_a_pod=in_a_pod(environ),
            kubeconfig=environ.get("KUBECONFIG") or None,
            secrets_dir=environ.get("KFAAS_POLLER_SECRETS_DIR", "").strip(),
        )


def poller_settings(environ: Mapping[str, str] | None = None) -> tuple[Settings, PollerSettings]:
    """Both settings a poller needs, from ``environ`` (default: this process's environment)."""
    environ = os.environ if environ is None else environ
    return Settings.from_env(environ), PollerSettings.from_env(environ)
