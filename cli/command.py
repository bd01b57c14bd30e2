"""The ``kfaas`` command: thin entry points that parse configuration and wire objects.

Each role (``dev``, ``gateway``, ``runtime``, ``invoke``, ``operator``, ``poller``,
``scheduler``) is a subcommand; the loops live in their own modules so they can be tested without
the command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kfaas import __version__, aiokit

if TYPE_CHECKING:
    from kfaas.cli.settings import ServerSettings

ASYNC_QUEUE_HELP = (
    "where Event invocations wait: memory (default, lost on exit), "
    "redis://host:port/db[?prefix=kfaas:async] (Redis Streams) or "
    "kafka://host:port[,host:port]/[topic][?partitions=8] (default $KFAAS_ASYNC_QUEUE)"
)


# The gateway's bounds (docs/security.md, "Bounded resources"); each flag overrides its variable.
BOUND_HELP = {
    "--header-timeout": "seconds a request head may take from the connection opening or its "
    "first byte; past it 408 (default 10, $KFAAS_HEADER_TIMEOUT_SECONDS)",
    "--body-idle-timeout": "seconds a request body may stall before a 408 "
    "(default 30, $KFAAS_BODY_IDLE_TIMEOUT_SECONDS)",
    "--body-timeout": "seconds a whole request body may take before a 408 "
    "(default 120, $KFAAS_BODY_TIMEOUT_SECONDS)",
    "--keepalive-timeout": "seconds an idle keep-alive connection stays open "
    "(default 75, $KFAAS_KEEPALIVE_TIMEOUT_SECONDS)",
    "--max-connections": "connections open at once; more are answered 429 and closed "
    "(default 1000, $KFAAS_MAX_CONNECTIONS)",
    "--body-memory": "bytes of request bodies held at once, e.g. 128Mi; past it 429 "
    "(default 64Mi, $KFAAS_BODY_MEMORY_BYTES)",
    "--async-queue-max-events": "events the in-memory async queue holds; past it Event "
    "invocations get 429 (default 10000, $KFAAS_ASYNC_QUEUE_MAX_EVENTS)",
    "--async-queue-max-bytes": "payload bytes the in-memory async queue holds, e.g. 64Mi "
    "(default 64Mi, $KFAAS_ASYNC_QUEUE_MAX_BYTES)",
}
STATE_HELP = (
    "folder kept across restarts: the objects applied from PATHs or created through the "
    "management API, and uploaded code; one kfaas dev per folder (default $KFAAS_DEV_STATE, "
    "else ./.kfaas)"
)
LISTEN_HELP = (
    "ROLE=HOST:PORT, repeatable: serve the Invoke API (invoke) and the HTTP triggers (trigger) on "
    "separate addresses, or both (all); overrides --host/--port (default $KFAAS_LISTEN, "
    "comma-separated)"
)


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", action="append", metavar="ROLE=HOST:PORT", help=LISTEN_HELP)
    for flag, text in BOUND_HELP.items():
        unit = "SECONDS" if flag.endswith("timeout") else "N"
        unit = "BYTES" if flag.endswith(("memory", "bytes")) else unit
        parser.add_argument(flag, default=None, metavar=unit, help=text)


AUTH_HELP = (
    "how Invoke API callers are checked: none (anyone who reaches the port may call) or sigv4 "
    "(AWS Signature V4 keys or Kubernetes bearer tokens, then RBAC; docs/security.md) "
    "(default $KFAAS_AUTH, else none; sigv4 when --credentials is given)"
)
CREDENTIALS_HELP = (
    "YAML file of access keys and RBAC-shaped rules for --auth sigv4 without a cluster: "
    "credentials: [{accessKeyId, secretAccessKey, user, groups}], "
    "rules: [{users|groups, namespaces, verbs}] (docs/guide.md)"
)


def _add_auth_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--auth", choices=("none", "sigv4"), default=None, help=AUTH_HELP)
    parser.add_argument("--credentials", metavar="FILE", default=None, help=CREDENTIALS_HELP)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kfaas",
        description="AWS-Lambda-style functions on a Kubernetes cluster you own.",
    )
    parser.add_argument("--version", action="version", version=f"kfaas {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev",
        help="run functions from manifests on this machine, no cluster needed",
        description="Load Function manifests from files or folders, serve the Lambda Invoke API "
        "and HTTP triggers, run instances as local processes and reload on change.",
    )
    dev.add_argument(
        "paths",
        nargs="*",
        default=["."],
        metavar="PATH",
        help="manifest files or folders (multi-document YAML); default: .",
    )
    dev.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    dev.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    dev.add_argument("--async-queue", default=None, help=ASYNC_QUEUE_HELP)
    dev.add_argument("--state", metavar="DIR", default=None, help=STATE_HELP)
    _add_server_flags(dev)
    _add_auth_flags(dev)

    gateway = commands.add_parser(
        "gateway",
        help="serve the Invoke API and HTTP triggers (in-cluster role)",
        description="The gateway role. Without a cluster backend it runs the functions of the "
        "given manifests as local processes, like `kfaas dev` without reloading.",
    )
    gateway.add_argument("paths", nargs="*", metavar="PATH", help="manifest files or folders")
    # Defaults: $KFAAS_GATEWAY_HOST, _PORT and _BACKEND, read (and checked) in cli.settings.
    gateway.add_argument("--host", default=None)
    gateway.add_argument("--port", type=int, default=None)
    gateway.add_argument(
        "--backend",
        choices=["local", "kubernetes"],
        default=None,
        help="where instances run: local processes from the manifests in PATHs (default), or "
        "the cluster's Functions and runtime pods (in-cluster role; $KFAAS_GATEWAY_BACKEND)",
    )
    gateway.add_argument(
        "--namespace",
        default=None,
        help="with --backend kubernetes: serve the Functions of this namespace only "
        "(default: all namespaces)",
    )
    _add_server_flags(gateway)
    _add_auth_flags(gateway)

    operator = commands.add_parser(
        "operator",
        help="reconcile Functions and EventSourceMappings into Kubernetes objects (in-cluster "
        "role)",
        description="The operator role: runs Kopf handlers for Function and EventSourceMapping "
        "and the autoscaler. Uses in-cluster credentials or $KUBECONFIG; replicas elect one "
        "active operator through Kopf peering, which needs the ClusterKopfPeering (KopfPeering "
        "with --namespace) named by KFAAS_PEERING_NAME: without it the operator exits 2 "
        "naming what to create, unless --standalone. Configuration: KFAAS_IMAGE, "
        "KFAAS_PLATFORM_NAMESPACE, KFAAS_GATEWAY_URL (see docs/operating.md).",
    )
    operator.add_argument(
        "--namespace",
        default=None,
        help="watch this namespace only (default: all namespaces)",
    )
    operator.add_argument(
        "--standalone",
        action="store_true",
        help="run without peering: this process alone reconciles and scales (never run two)",
    )
    gateway.add_argument(
        "--async-queue",
        default=None,
        help=ASYNC_QUEUE_HELP + "; a gateway with KFAAS_REDIS_URL set defaults to that Redis",
    )

    commands.add_parser(
        "runtime",
        help="run one function instance (in-pod role), configured by environment",
        description="The runtime role: serves POST /invoke, /healthz and /metrics, runs "
        "KFAAS_PER_INSTANCE workers and the Lambda Runtime API. Configuration comes from the "
        "environment (see docs/decisions/002-gateway-runtime-protocol.md).",
    )

    poller = commands.add_parser(
        "poller",
        help="run the pollers of one EventSourceMapping (in-cluster role)",
        description="The poller role: reads a Kafka topic or Redis stream and invokes the "
        "function through the gateway (KFAAS_GATEWAY_URL). The mapping comes from --mapping FILE "
        "or, as YAML or JSON, from KFAAS_MAPPING. Metrics on KFAAS_POLLER_METRICS_PORT (default "
        "9090, 0: off).",
    )
    poller.add_argument("--mapping", metavar="FILE", help="the EventSourceMapping manifest")

    commands.add_parser(
        "scheduler",
        help="fire Schedules as Event invocations through the gateway (in-cluster role)",
        description="The scheduler role (ADR 026): fires the Schedules of every namespace "
        "(KFAAS_WATCH_NAMESPACE: one) through the gateway's Invoke API (KFAAS_GATEWAY_URL), with "
        "the pod's ServiceAccount or $KUBECONFIG. Replicas share the ticks by claims in each "
        "Schedule's status; each replica is named by POD_NAME (else host name and process id). "
        "Metrics and /healthz on KFAAS_SCHEDULER_METRICS_PORT (default 9090, 0: off); timing "
        "from KFAAS_SCHEDULER_POLL_SECONDS, KFAAS_SCHEDULER_CLAIM_SECONDS and "
        "KFAAS_SCHEDULER_RETRY_BASE_SECONDS (docs/operating.md).",
    )

    commands.add_parser(
        "code-store",
        help="serve uploaded zips by sha256 from a folder (in-cluster role, ADR 025)",
        description="The code store: PUT/GET /v1/blobs/sha256/HEX on KFAAS_CODE_STORE_PORT "
        "(8090) over KFAAS_CODE_STORE_DIR, with the key of KFAAS_CODE_STORE_KEY(_FILE); "
        "garbage-collects unreferenced zips every KFAAS_CODE_STORE_GC_INTERVAL_SECONDS.",
    )
    commands.add_parser(
        "fetch-code",
        help="fetch, verify and unpack a function's zip (a function pod's init container)",
        description="Downloads KFAAS_CODE_SHA256 from KFAAS_CODE_STORE_URL with "
        "KFAAS_CODE_CAPABILITY, checks its sha256 and unpacks it into KFAAS_CODE_TARGET "
        "(/var/task).",
    )

    invoke = commands.add_parser(
        "invoke",
        help="invoke a function through a gateway",
        description="Invoke a function through the gateway's Lambda Invoke API and print the "
        "response payload. Exit status 1 on a function error.",
    )
    invoke.add_argument("name", help="function name, namespace/name or ARN")
    invoke.add_argument("--payload", default="{}", help="event as JSON (default {})")
    invoke.add_argument("--event", action="store_true", help="invoke asynchronously (202)")
    invoke.add_argument("--tail", action="store_true", help="print the log tail to stderr")
    invoke.add_argument(
        "--endpoint",
        default=None,
        help="gateway URL (default $KFAAS_ENDPOINT or http://127.0.0.1:8080)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "runtime":
        from kfaas.runtime.__main__ import main as runtime_main

        return runtime_main([])
    if args.command == "invoke":
        return _invoke(args)
    if args.command == "operator":
        return _operator(args)
    if args.command in ("code-store", "fetch-code"):
        from kfaas.cli import code_store

        if args.command == "code-store":
            return code_store.code_store_command()
        return code_store.fetch_code_command()
    if args.command == "poller":
        from kfaas.pollers.main import main as poller_main

        return poller_main(args.mapping)
    if args.command == "scheduler":
        return _scheduler()
    from kfaas import telemetry
    from kfaas.cli.settings import server_settings

    try:
        server = server_settings(args)
    except ValueError as exc:
        print(f"kfaas {args.command}: {exc}", file=sys.stderr)
        return 2
    telemetry.configure(args.command, server.settings)
    if server.backend == "kubernetes":
        return _kubernetes_gateway(server)
    return _serve(args, server)


def _serve(args: argparse.Namespace, server: ServerSettings) -> int:
    from kfaas.cli.dev import run_dev

    try:
        return aiokit.run(run_dev(args.paths or ["."], server))
    except OSError as exc:
        print(f"kfaas {args.command}: cannot serve: {exc}", file=sys.stderr)
        return 1


def _operator(args: argparse.Namespace) -> int:
    from kfaas import telemetry
    from kfaas.cli.settings import watch_namespace
    from kfaas.config import Settings
    from kfaas.kube_clients import KubeError
    from kfaas.operator.config import OperatorConfig
    from kfaas.operator.main import OperatorOptions, PeeringMissing, run_operator

    try:
        settings = Settings.from_env()
        config = OperatorConfig.from_env()
        options = OperatorOptions.from_env(
            watch_namespace(args.namespace), standalone=args.standalone
        )
    except ValueError as exc:
        print(f"kfaas operator: {exc}", file=sys.stderr)
        return 2
    telemetry.configure("operator", settings)
    try:
        return aiokit.run(run_operator(config, options))
    except PeeringMissing as exc:
        print(f"kfaas operator: {exc}", file=sys.stderr)
        return 2
    except KubeError as exc:
        print(f"kfaas operator: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"kfaas operator: cannot serve metrics: {exc}", file=sys.stderr)
        return 1


def _scheduler() -> int:
    # The Kubernetes ObjectStore and Secret reader are the gateway's; the command line composes
    # the two components.
    from kfaas.gateway.kube_clients import KubernetesKeySources
    from kfaas.gateway.kube_store import KubernetesObjectStore
    from kfaas.scheduler.main import main as scheduler_main

    return scheduler_main(
        lambda client, namespace: KubernetesObjectStore(client, watch_namespace=namespace),
        secrets_for=lambda client: KubernetesKeySources(client).secret_reader,
    )


def _kubernetes_gateway(server: ServerSettings) -> int:
    from kfaas.code_capabilities import write_token
    from kfaas.gateway.code_store_client import HttpCodeStore
    from kfaas.gateway.kube_clients import run_kubernetes_gateway
    from kfaas.kube_clients import KubeError

    code_store = None
    if server.code_store_url is not None and server.code_store_key is not None:
        code_store = HttpCodeStore(server.code_store_url, write_token(server.code_store_key))
    try:
        return aiokit.run(
            run_kubernetes_gateway(
                host=server.host,
                port=server.port,
                settings=server.settings,
                platform_namespace=server.platform_namespace,
                watch_namespace=server.watch_namespace,
                replica=server.replica,
                async_queue=server.async_queue,
                listeners=server.listeners,
                code_store=code_store,
                location_key=server.code_store_key if code_store is not None else None,
            )
        )
    except KubeError as exc:
        print(f"kfaas gateway: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"kfaas gateway: cannot serve: {exc}", file=sys.stderr)
        return 1


def _invoke(args: argparse.Namespace) -> int:
    from kfaas.cli.invoke import invoke

    return invoke(args)


if __name__ == "__main__":
    raise SystemExit(main())
