"""`scripts/services`: start, stop and inspect the real services by hand, for demos and debugging.

    eval "$(scripts/services up redis kafka cluster)"  # sets REDIS_URL, KAFKA_BOOTSTRAP_SERVERS,
                                                       # KUBECONFIG, KFAAS_IMAGE (a real node)
    scripts/services up kwok                          # a control plane with kwok's fake nodes
    scripts/services status
    scripts/services down                             # all of them; data stays
    scripts/services wipe kafka                       # stop it and delete its data

Kafka also exports its secured listeners (KAFKA_SSL_/MTLS_/SASL_SSL_BOOTSTRAP_SERVERS), the CA and
client certificate files and its SASL users (docs/testing.md, "Running a service by hand").
Only `export` lines go to stdout; progress and errors go to stderr. The services run detached and
outlive this command. Their state is under KFAAS_SERVICES_DIR (default ~/.cache/kfaas/services).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from services.base import MissingDependency, ServiceError, default_state_dir
from services.cluster import Cluster
from services.kafka_broker import KafkaBroker
from services.node import NodeCluster
from services.redis_server import RedisServer

ServiceType = RedisServer | KafkaBroker | Cluster | NodeCluster
SERVICES: dict[str, type[RedisServer] | type[KafkaBroker] | type[Cluster] | type[NodeCluster]] = {
    "redis": RedisServer,
    "kafka": KafkaBroker,
    "kwok": Cluster,
    "cluster": NodeCluster,
}


def _make(name: str, state_dir: Path) -> ServiceType:
    return SERVICES[name](state_dir)


def _names(given: Sequence[str]) -> list[str]:
    return list(given) if given else list(SERVICES)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/services",
        description="Run the real Redis, Kafka and Kubernetes used by kfaas's tests and demos.",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where pid files, ports, logs and data live "
        "(default: $KFAAS_SERVICES_DIR or ~/.cache/kfaas/services)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command, text in (
        ("up", "start services (unless running), wait until ready, print export lines"),
        ("down", "stop services (all when none named); their data stays"),
        ("wipe", "stop services and delete their data, ports and logs"),
        ("build", "only fetch or build what services run (cached under ~/.cache/kfaas)"),
        ("status", "show which services run, where, and where their logs are"),
        ("env", "print the export lines of running services"),
    ):
        sub = commands.add_parser(command, help=text, description=text)
        # No `choices`: argparse rejects an empty list against them; main() checks the names.
        sub.add_argument(
            "names",
            nargs="+" if command in ("up", "wipe") else "*",
            metavar="NAME",
            help=f"one of {', '.join(SERVICES)}",
        )
    return parser


def _exports(service: ServiceType) -> None:
    for key, value in service.environment().items():
        print(f"export {key}={shlex.quote(value)}")


def _status(service: ServiceType) -> str:
    if not service.running():
        return f"{service.name}: stopped (state in {service.dir.root})"
    where = ", ".join(f"{key}={value}" for key, value in service.environment().items())
    return f"{service.name}: running, {where}, logs in {service.dir.logs}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    options = parser.parse_args(argv)
    unknown = [name for name in options.names if name not in SERVICES]
    if unknown:
        parser.error(f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    state_dir: Path = options.state_dir or default_state_dir()
    names = _names(options.names)
    try:
        if options.command == "up":
            for name in names:
                service = _make(name, state_dir)
                service.up()
                _exports(service)
        elif options.command == "down":
            # The reverse of the order they are usually started in.
            for name in reversed(names):
                _make(name, state_dir).down()
        elif options.command == "wipe":
            for name in names:
                _make(name, state_dir).wipe()
                print(f"services: wiped {name}", file=sys.stderr)
        elif options.command == "build":
            for name in names:
                SERVICES[name].build()
        elif options.command == "status":
            for name in names:
                print(_status(_make(name, state_dir)))
        elif options.command == "env":
            for name in names:
                service = _make(name, state_dir)
                if service.running():
                    _exports(service)
    except MissingDependency as missing:
        print(f"services: missing dependency: {missing}", file=sys.stderr)
        return 2
    except ServiceError as failure:
        print(f"services: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
