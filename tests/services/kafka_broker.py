"""A real Apache Kafka 4 broker in KRaft combined mode, from Maven Central jars, on loopback.

Only package registries are reachable here, so instead of the release tarball Maven copies
`kafka_2.13` and its runtime dependencies (tests/kafka/pom.xml) into
`~/.cache/kfaas/kafka-<version>/libs`, and the broker runs as `java -cp libs/* kafka.Kafka`. One
node is both controller and broker with static voters; the settings that only make sense for a
multi-node cluster (replication 3, 50 offsets partitions, a 3 s rebalance delay) are scaled down.
Besides PLAINTEXT it listens with server TLS, mutual TLS and SASL_SSL (services.kafka_listeners);
the broker for pods also on the node's bridge address, in PLAINTEXT and in SASL_SSL.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from waiting import NeverHappened, eventually_async

from services.base import (
    LOOPBACK,
    MissingDependency,
    ServiceDir,
    ServiceError,
    build_lock,
    cache_root,
    port_accepts,
    progress,
    tail,
)
from services.kafka_listeners import (
    LISTENERS,
    POD_LISTENER,
    POD_PORT,
    PROTOCOLS,
    USERS_MARKER,
    SecuredListeners,
    listener_settings,
    listeners,
    make_certificates,
    scram_arguments,
    secured_listeners,
    users_marker_text,
)
from services.processes import launch, running_pid, stop, wait_until

KAFKA_VERSION = "4.1.1"  # keep in step with kafka.version in tests/kafka/pom.xml
POM = Path(__file__).resolve().parents[1] / "kafka" / "pom.xml"
EXECUTABLE = "java"
STARTED = "Kafka Server started"

_T = TypeVar("_T")


def libs_dir() -> Path:
    return cache_root() / f"kafka-{KAFKA_VERSION}" / "libs"


def run_coroutine(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, even inside a running event loop.

    The fixtures' helpers are called from sync and async tests alike; a private loop in a
    private thread works in both.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="services-kafka-admin")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def _cluster_id() -> str:
    # What `kafka-storage random-uuid` prints: 16 random bytes, URL-safe base64, no padding,
    # never starting with "-" (it would read as a command-line option).
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _server_properties(
    data: Path, ports: Mapping[str, int], tls_dir: Path, pods: tuple[str, int] | None = None
) -> str:
    port, controller_port = ports["broker"], ports["controller"]
    listening = f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}"
    advertised = f"PLAINTEXT://{LOOPBACK}:{port}"
    protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    for name, address in listeners(ports):
        listening += f",{name}://{address}"
        advertised += f",{name}://{address}"
        protocols += f",{name}:{PROTOCOLS[name]}"
    if pods is not None:
        # Listeners for pods on the real node: clients are told to come back to that address.
        address = pods[0]
        for name, port in (("PODS", pods[1]), (POD_LISTENER, ports[POD_PORT])):
            listening += f",{name}://{address}:{port}"
            advertised += f",{name}://{address}:{port}"
        protocols += f",PODS:PLAINTEXT,{POD_LISTENER}:SASL_SSL"
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOOPBACK}:{controller_port}",
        "listeners": listening,
        "advertised.listeners": advertised,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": protocols,
        "log.dirs": str(data),
        # One broker: internal topics cannot have more replicas than brokers.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "5",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "5",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "5",
        "num.partitions": "1",
        "default.replication.factor": "1",
        # Tests join groups all the time; the default waits 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
        # The default reserves 128 MiB for compaction that tests never need.
        "log.cleaner.dedupe.buffer.size": "2097152",
        # A bad configuration must fail startup instead of hanging it.
        "server.max.startup.time.ms": "60000",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "auto.create.topics.enable": "true",
        **listener_settings(tls_dir, pods=pods is not None),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


# Everything to stdout, which the launcher appends to one log kept for failure reports.
_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def _fetch(libs: Path) -> None:
    """Copy the broker's jars from Maven Central (through ~/.m2) into the version's cache."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingDependency("mvn is not installed (it fetches Kafka from Maven Central)")
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    progress(f"fetching Kafka {KAFKA_VERSION} jars with Maven into {libs}")
    fetched = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-Dkafka.version={KAFKA_VERSION}",
            f"-DoutputDirectory={partial}",
        ],
        capture_output=True,
        text=True,
    )
    if fetched.returncode != 0:
        raise ServiceError(f"mvn could not fetch Kafka:\n{fetched.stdout}{fetched.stderr}")
    (partial / ".complete").write_text(f"kafka {KAFKA_VERSION}\n")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)


class KafkaBroker:
    name = "kafka"

    def __init__(self, state_dir: Path, *, pod_address: str | None = None) -> None:
        self.pod_address = pod_address  # the real node's bridge address: a listener for pods
        if pod_address is not None:
            self.name = "kafka-pods"
        self.dir = ServiceDir(state_dir, self.name)
        self.pid_file = self.dir.pid_file("kafka")
        self.log_path = self.dir.log_file("kafka")
        self.config_dir = self.dir.root / "config"
        self.tls_dir = self.dir.root / "tls"

    # -- build ---------------------------------------------------------------------------------

    @staticmethod
    def build() -> None:
        java = java_major_version()
        if java is None or java < 17:
            raise MissingDependency(f"Kafka 4 needs Java 17 or later, found {java or 'none'}")
        libs = libs_dir()
        if (libs / ".complete").exists():
            return
        with build_lock(libs.parent.name):
            if not (libs / ".complete").exists():
                _fetch(libs)

    # -- state ---------------------------------------------------------------------------------

    def running(self) -> bool:
        return running_pid(self.pid_file) is not None

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.dir.saved_ports()['broker']}"

    @property
    def bootstrap_servers_for_pods(self) -> str:
        if self.pod_address is None:
            raise ServiceError("this broker listens on loopback only: no pod can reach it")
        return f"{self.pod_address}:{self.dir.saved_ports()['pods']}"

    @property
    def sasl_ssl_for_pods(self) -> str:
        """Bootstrap servers of SASL_SSL (SCRAM-SHA-512, `secured.users`) on the bridge address;
        the broker's certificate is signed by `secured.ca_file` and names that address."""
        if self.pod_address is None:
            raise ServiceError("this broker listens on loopback only: no pod can reach it")
        return f"{self.pod_address}:{self.dir.saved_ports()[POD_PORT]}"

    @property
    def secured(self) -> SecuredListeners:
        """The TLS, mutual TLS and SASL_SSL listeners (loopback only) and their credentials."""
        return secured_listeners(self.tls_dir, self.dir.saved_ports())

    def _port_names(self) -> list[str]:
        names = ["broker", "controller", *LISTENERS.values()]
        return names + (["pods", POD_PORT] if self.pod_address else [])

    def _has_secured_listeners(self) -> bool:
        saved = self.dir.saved_ports()
        return all(port in saved for port in self._port_names())

    def environment(self) -> Mapping[str, str]:
        exports = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers}
        if self.pod_address is not None:
            exports["KAFKA_BOOTSTRAP_SERVERS_FOR_PODS"] = self.bootstrap_servers_for_pods
            exports["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS_FOR_PODS"] = self.sasl_ssl_for_pods
        if self._has_secured_listeners():
            exports |= self.secured.environment()
        return exports

    def _java(self, main: str, *args: str, jvm: tuple[str, ...]) -> list[str]:
        return [
            EXECUTABLE,
            *jvm,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.config_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.dir.logs}",
            "-cp",
            f"{libs_dir()}/*",
            main,
            *args,
        ]

    def _format(self, properties: Path) -> None:
        """Format the data folder once; later starts reuse it, so data outlives restarts.

        SCRAM users are written into the cluster metadata at format time only: a folder formatted
        without them (before the secured listeners) is formatted again, losing its topics.
        """
        marker = self.dir.data / USERS_MARKER
        if (self.dir.data / "meta.properties").exists():
            if marker.exists() and marker.read_text() == users_marker_text():
                return
            progress("Kafka data has no SCRAM users (formatted before them): formatting it again")
            shutil.rmtree(self.dir.data)
            self.dir.create()
        cluster_id = _cluster_id()
        progress(f"formatting Kafka storage (cluster id {cluster_id})")
        formatted = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(properties),
                *scram_arguments(),
                # A one-shot tool: the quick compiler tier is all it has time to use.
                jvm=("-Xmx128m", "-XX:TieredStopAtLevel=1"),
            ),
            capture_output=True,
            text=True,
        )
        if formatted.returncode != 0:
            raise ServiceError(
                f"formatting Kafka storage failed:\n{formatted.stdout}{formatted.stderr}"
            )
        marker.write_text(users_marker_text())

    # -- lifecycle -----------------------------------------------------------------------------

    def up(self) -> Mapping[str, str]:
        if self.running():
            if self._has_secured_listeners():
                return self.environment()
            # Started by a kfaas from before the secured listeners: give it them.
            progress("kafka runs without its secured listeners: restarting it with them")
            self.down()
        self.build()
        ports = self.dir.ports(self._port_names())
        pods = (self.pod_address, ports["pods"]) if self.pod_address else None
        make_certificates(self.tls_dir, (self.pod_address,) if self.pod_address else ())
        self.config_dir.mkdir(parents=True, exist_ok=True)
        properties = self.config_dir / "server.properties"
        properties.write_text(_server_properties(self.dir.data, ports, self.tls_dir, pods))
        (self.config_dir / "log4j2.properties").write_text(_LOG4J2)
        self._format(properties)
        progress(f"starting Kafka {KAFKA_VERSION} on {LOOPBACK}:{ports['broker']}")
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        pid = launch(
            self._java("kafka.Kafka", str(properties), jvm=("-Xmx512m", "-XX:+UseG1GC")),
            pid_file=self.pid_file,
            log_file=self.log_path,
        )

        def started() -> bool:
            with self.log_path.open("rb") as log:
                log.seek(log_start)
                return STARTED.encode() in log.read() and port_accepts(ports["broker"])

        wait_until(
            started,
            what="kafka",
            timeout=90,
            pid=pid,
            log_file=self.log_path,
            interval=0.2,
        )
        self._check_ready()
        return self.environment()

    def _check_ready(self) -> None:
        """A client sees node 1, and consumer groups work from the first try.

        The offsets topic is created on the first coordinator lookup, and until its partitions
        have leaders group requests fail with GroupCoordinatorNotAvailable; doing that lookup
        here keeps it out of the tests.
        """

        async def check() -> list[int]:
            from aiokafka.admin import AIOKafkaAdminClient
            from aiokafka.errors import KafkaError

            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
            await admin.start()
            try:
                cluster = await admin.describe_cluster()

                async def coordinator() -> bool:
                    await admin.find_coordinator("kfaas-services-readiness")
                    return True

                try:
                    await eventually_async(
                        coordinator, within=30, what="a group coordinator", ignoring=(KafkaError,)
                    )
                except NeverHappened as late:
                    raise ServiceError(f"kafka: {late}") from None
            finally:
                await admin.close()
            return [broker["node_id"] for broker in cluster["brokers"]]

        nodes = run_coroutine(check())
        if nodes != [1]:
            raise ServiceError(f"kafka: expected broker node 1, the cluster says {nodes}")

    def down(self) -> None:
        # SIGTERM is a controlled shutdown: logs are flushed and the next start skips recovery.
        if stop(self.pid_file, grace=30):
            progress("stopped kafka")

    def restart(self) -> None:
        if not self.running():
            raise ServiceError("kafka is not running")
        self.down()
        self.up()

    def wipe(self) -> None:
        self.down()
        self.dir.wipe()

    # -- helpers for tests ---------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create a topic and wait until every partition has a leader (so producers don't retry)."""

        async def create() -> None:
            from aiokafka.admin import AIOKafkaAdminClient, NewTopic

            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
            await admin.start()
            try:
                await admin.create_topics(
                    [NewTopic(name=name, num_partitions=partitions, replication_factor=1)]
                )

                async def leaders() -> bool:
                    described = await admin.describe_topics([name])
                    found = described[0]["partitions"] if described else []
                    led = len(found) == partitions and all(p["leader"] >= 0 for p in found)
                    assert led, f"partitions {found}"
                    return True

                try:
                    await eventually_async(
                        leaders,
                        within=30,
                        what="a leader per partition",
                        ignoring=(AssertionError,),
                    )
                except NeverHappened as late:
                    raise ServiceError(f"topic {name}: {late}") from None
            finally:
                await admin.close()

        run_coroutine(create())

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


def java_major_version() -> int | None:
    """Java 17 is required (Kafka 4 is built for it); None when java is missing."""
    java = shutil.which("java")
    if java is None:
        return None
    shown = subprocess.run([java, "-version"], capture_output=True, text=True, env=dict(os.environ))
    for token in shown.stderr.split():
        token = token.strip('"')
        if token[:2].isdigit():
            return int(token.split(".")[0])
    return None
