"""What `kfaas dev`, `kfaas gateway` and `kfaas invoke` are configured with: flags over variables.

Each command builds its settings here once, before anything starts, and passes them down; nothing
below reads the environment (ruff TID251, ADR 020). A bad value raises ValueError naming the flag or
variable and the form expected, which the command prints as one line before exiting with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kfaas import sigv4
from kfaas.code_capabilities import KEY_ENV
from kfaas.config import BOUND_FLAGS, Settings, async_queue_for, choice, port

if TYPE_CHECKING:
    # Imported where used: `kfaas invoke` reads its settings here and must not pay for aiohttp.
    from kfaas.gateway.auth_rules import CredentialsFile
    from kfaas.gateway.listeners import Listener
    from kfaas.pollers.settings import PollerSettings
    from kfaas.scheduler.settings import SchedulerSettings

BACKENDS = ("local", "kubernetes")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
DEFAULT_PLATFORM_NAMESPACE = "kfaas-system"
DEFAULT_DEV_STATE = ".kfaas"


def process_environment() -> Mapping[str, str]:
    """This process's environment: read by the settings builders below, and nowhere else."""
    return os.environ


@dataclass(frozen=True)
class ServerSettings:
    """Everything `kfaas dev` or `kfaas gateway` needs, flags applied over the variables."""

    command: str
    settings: Settings
    # The pollers `kfaas dev` runs in its own process read their settings here too.
    poller: PollerSettings
    host: str
    port: int
    backend: str
    listeners: list[Listener]
    credentials: CredentialsFile | None
    async_queue: str
    # With --backend kubernetes: one namespace's Functions (None: all), the platform's namespace
    # (Leases, credentials) and this replica's name in its demand Lease.
    watch_namespace: str | None
    platform_namespace: str
    replica: str
    # `kfaas dev`'s state folder (objects and code kept across restarts, ADR 024); None: a local
    # `kfaas gateway` keeps nothing.
    state: Path | None = None
    # The cluster's code store (ADR 025): its URL (KFAAS_CODE_STORE_URL) and key
    # (KFAAS_CODE_STORE_KEY); None: uploaded zips are refused.
    code_store_url: str | None = None
    code_store_key: str | None = field(default=None, repr=False)
    # The schedule engine `kfaas dev` runs (KFAAS_SCHEDULER_*, ADR 026); None: not `kfaas dev`.
    scheduler: SchedulerSettings | None = None


def server_settings(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServerSettings:
    """The settings of `kfaas dev` or `kfaas gateway`; ValueError naming a bad flag or variable."""
    from kfaas.brokers.platform_kafka import check_platform_security
    from kfaas.gateway.asyncq import parse_queue_url
    from kfaas.gateway.listeners import parse_listeners
    from kfaas.pollers.settings import PollerSettings
    from kfaas.scheduler.settings import SchedulerSettings

    environ = process_environment() if environ is None else environ
    command = args.command
    # Only the gateway role takes its address and backend from variables (the chart sets them).
    gateway: Mapping[str, str] = environ if command == "gateway" else {}
    host = args.host or gateway.get("KFAAS_GATEWAY_HOST") or DEFAULT_HOST
    chosen_port = (
        args.port if args.port is not None else port(gateway, "KFAAS_GATEWAY_PORT", DEFAULT_PORT)
    )
    backend = getattr(args, "backend", None) or choice(gateway, "KFAAS_GATEWAY_BACKEND", BACKENDS)
    base = Settings.from_env(environ)
    # The platform's Kafka certificates are loaded once here, so a bad one stops the start.
    check_platform_security(base.kafka_security)
    poller = PollerSettings.from_env(environ)
    flags = {flag: getattr(args, flag[2:].replace("-", "_")) for flag in BOUND_FLAGS}
    listen = args.listen or [v for v in environ.get("KFAAS_LISTEN", "").split(",") if v.strip()]
    settings = base.with_flags(flags)
    listeners = parse_listeners(listen, host, chosen_port)
    settings, credentials = _auth(args, settings, backend)
    async_queue = async_queue_for(command, settings, args.async_queue)
    try:
        parse_queue_url(async_queue)
    except ValueError as exc:
        # Name where the URL came from: the flag, else the variable.
        raise ValueError(
            f"{'--async-queue' if args.async_queue else 'KFAAS_ASYNC_QUEUE'}: {exc}"
        ) from None
    return ServerSettings(
        command=command,
        settings=settings,
        poller=poller,
        host=host,
        port=chosen_port,
        backend=backend,
        listeners=listeners,
        credentials=credentials,
        async_queue=async_queue,
        watch_namespace=watch_namespace(getattr(args, "namespace", None), environ),
        platform_namespace=environ.get("KFAAS_PLATFORM_NAMESPACE") or DEFAULT_PLATFORM_NAMESPACE,
        replica=environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
        state=dev_state(getattr(args, "state", None), environ) if command == "dev" else None,
        scheduler=SchedulerSettings.from_env(environ) if command == "dev" else None,
        **_code_store(gateway),
    )


def _code_store(environ: Mapping[str, str]) -> dict[str, str | None]:
    """The gateway role's code store URL and key; both or neither (ValueError naming them)."""
    url = environ.get("KFAAS_CODE_STORE_URL", "").strip() or None
    key = environ.get(KEY_ENV, "").strip() or None
    if url is not None and key is None:
        raise ValueError(f"KFAAS_CODE_STORE_URL needs {KEY_ENV} (the code store's key)")
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError(f"KFAAS_CODE_STORE_URL={url!r} must be an http:// or https:// URL")
    return {"code_store_url": url, "code_store_key": key if url else None}


def dev_state(flag: str | None, environ: Mapping[str, str]) -> Path:
    """--state, else KFAAS_DEV_STATE, else ./.kfaas, absolute; ValueError if it is not a folder."""
    raw = flag or environ.get("KFAAS_DEV_STATE") or DEFAULT_DEV_STATE
    path = Path(raw).absolute()
    if path.exists() and not path.is_dir():
        source = "--state" if flag else "KFAAS_DEV_STATE"
        raise ValueError(f"{source}: {raw} is not a folder (the state folder, e.g. ./.kfaas)")
    return path


def _auth(
    args: argparse.Namespace, settings: Settings, backend: str
) -> tuple[Settings, CredentialsFile | None]:
    """Settings with --auth applied and the parsed --credentials file (ValueError if unusable)."""
    from kfaas.gateway.auth_rules import load_credentials_file

    mode = args.auth or ("sigv4" if args.credentials else settings.auth)
    if args.credentials and mode == "none":
        raise ValueError("--credentials needs --auth sigv4")
    if args.credentials and backend == "kubernetes":
        raise ValueError(
            "--credentials is for local gateways; in a cluster credentials are Secrets labelled "
            "kfaas.dev/credentials=true (docs/security.md)"
        )
    document = load_credentials_file(args.credentials) if args.credentials else None
    return dataclasses.replace(settings, auth=mode), document


def watch_namespace(flag: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """--namespace, else KFAAS_WATCH_NAMESPACE, else None (every namespace)."""
    environ = process_environment() if environ is None else environ
    return flag or environ.get("KFAAS_WATCH_NAMESPACE") or None


@dataclass(frozen=True)
class InvokeSettings:
    """`kfaas invoke`: where the gateway is, and the AWS keys to sign with, if any."""

    endpoint: str
    credentials: sigv4.SigningCredentials | None
    region: str


def invoke_settings(
    endpoint: str | None, environ: Mapping[str, str] | None = None
) -> InvokeSettings:
    environ = process_environment() if environ is None else environ
    return InvokeSettings(
        endpoint=endpoint or environ.get("KFAAS_ENDPOINT") or DEFAULT_ENDPOINT,
        credentials=sigv4.SigningCredentials.from_env(environ),
        # The AWS CLI's own order: the region it would sign for.
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
