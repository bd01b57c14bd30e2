"""Sending records to destinations: Kafka topics and Redis streams, with the platform's fallback.

Both the gateway (Lambda's invocation records, ``DestinationConfig`` of a function) and the
stream pollers (given-up records, a mapping's ``onFailure``) write to destinations. They share
``DestinationWriter``: one producer per Kafka cluster and one client per Redis server, opened on
first use and kept; a write that fails raises ``DestinationError`` naming the destination. With
``retry_seconds`` a writer rides out a short outage itself (the gateway's, which has nowhere to
keep a record); without, it tries once and its caller keeps the records and retries (the pollers).

A destination that names no server of its own uses the platform's Redis or Kafka — values its
caller passes in (``KFAAS_REDIS_URL``, ``KFAAS_KAFKA_BOOTSTRAP_SERVERS`` read by the settings),
reached with the platform's Kafka security (``KFAAS_KAFKA_*``); one that names its own cluster is
reached with its own ``tls``/``auth``, whose Secrets are read in the function's namespace at each
send (the reader caches), so a fixed Secret is used without a restart (ADR 027).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from kfaas.aiokit import DeadlinePassed, retry_until_deadline
from kfaas.manifests import Destination, KafkaDestination

from .errors import BrokerError, BrokerUnavailable, DestinationError, KafkaAuthError
from .kafka_clients import KafkaMessageTuple, KafkaProducer
from .kafka_security import KafkaSecurity, SecretReader, resolve_security
from .policies import BOUNDED_CALLS, RedisPolicy
from .redis_streams import RedisStreams

# The field a Redis destination's entry carries the record in: what the Redis event-source
# poller hands handlers as the SQS record's ``body``.
REDIS_FIELD = "body"


def platform_kafka(named: str | None, platform: str | None, *, what: str) -> str:
    """The Kafka cluster ``what`` writes to: the one it names, else the platform's."""
    servers = named or platform
    if not servers:
        raise DestinationError(
            f"{what} needs bootstrapServers: it names none and the platform's Kafka "
            "(KFAAS_KAFKA_BOOTSTRAP_SERVERS) is not set"
        )
    return servers


def platform_redis(named: str | None, platform: str | None, *, what: str) -> str:
    """The Redis server ``what`` writes to: the one it names, else the platform's."""
    url = named or platform
    if not url:
        raise DestinationError(
            f"{what} needs a url: it names none and the platform's Redis (KFAAS_REDIS_URL) "
            "is not set"
        )
    return url


# How long a producer replaced by new credentials keeps serving the sends it already carries.
RETIRE_GRACE_SECONDS = 10.0


def _principal(security: KafkaSecurity | None) -> tuple[object, ...]:
    """Who a security authenticates as — not with which password: a rotation keeps it. A client
    certificate is its own principal (two functions' certificates must not replace each other)."""
    if security is None:
        return ()
    return (security.protocol, security.sasl_mechanism, security.username, security.client_cert_pem)


class DestinationWriter:
    """Writes records to Kafka topics and Redis streams on any number of clusters and servers."""

    def __init__(self, *, redis_policy: RedisPolicy, retry_seconds: float = 0.0) -> None:
        self.redis_policy = redis_policy
        self.retry_seconds = retry_seconds
        # By cluster and the security it is reached with: each user of a shared cluster keeps its
        # own producer, and new credentials (a rotated password) open a new one.
        self._producers: dict[tuple[str, KafkaSecurity | None], KafkaProducer] = {}
        # Producers left by a rotation, stopped once the sends they still carry have finished.
        self._retiring: set[asyncio.Task[None]] = set()
        self._redis: dict[str, RedisStreams] = {}

    async def to_topic(
        self,
        servers: str,
        topic: str,
        messages: Sequence[KafkaMessageTuple],
        *,
        security: KafkaSecurity | None = None,
    ) -> None:
        """Write (key, value, headers) records to ``topic``; returns once all are stored."""
        producer = self._producers.get((servers, security))
        if producer is None:
            producer = KafkaProducer(servers, security=security)
            self._retire_rotated(servers, security)
            self._producers[(servers, security)] = producer
        await self._delivering(
            f"kafka topic {topic!r} at {servers}", lambda: producer.send_all(topic, messages)
        )

    async def to_stream(
        self, url: str, stream: str, entries: Sequence[Mapping[str, str | bytes]]
    ) -> None:
        """Add entries to ``stream`` (several in one MULTI/EXEC); returns once all are stored."""
        client = self._redis.get(url)
        if client is None:
            client = self._redis[url] = RedisStreams(url, self.redis_policy)

        async def add() -> None:
            if len(entries) == 1:
                await client.add(stream, entries[0])
            else:
                await client.add_all(stream, entries)

        await self._delivering(f"redis stream {stream!r} at {url}", add)

    def _retire_rotated(self, servers: str, security: KafkaSecurity | None) -> None:
        """Retire the producers of the same cluster and principal opened with other credentials.

        Another principal's producer (another function's user on a shared cluster) is kept: only
        a rotation replaces one. The old producer may still carry a send, so it is stopped after
        the longest a send may take, not at once.
        """
        principal = _principal(security)
        for key in [
            key for key in self._producers if key[0] == servers and _principal(key[1]) == principal
        ]:
            task = asyncio.create_task(self._stop_later(self._producers.pop(key)))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _stop_later(self, producer: KafkaProducer) -> None:
        try:
            await asyncio.sleep(self.retry_seconds + RETIRE_GRACE_SECONDS)
        finally:
            with contextlib.suppress(BrokerError):
                await producer.stop()

    async def close(self) -> None:
        retiring = list(self._retiring)
        for task in retiring:
            task.cancel()  # stops its producer now
        await asyncio.gather(*retiring, return_exceptions=True)
        for producer in self._producers.values():
            with contextlib.suppress(BrokerError):
                await producer.stop()
        for client in self._redis.values():
            await client.close()
        self._producers.clear()
        self._redis.clear()

    async def _delivering(self, where: str, operation: Callable[[], Awaitable[None]]) -> None:
        try:
            if not self.retry_seconds:
                await operation()
                return
            # Each attempt is bounded by the time left, so one hung inside a client ends in time.
            await retry_until_deadline(
                operation,
                retry_on=(BrokerUnavailable,),
                within_seconds=self.retry_seconds,
                first_delay=0.1,
                max_delay=2.0,
                attempt_timeout=self.retry_seconds,
            )
        except DeadlinePassed as exc:
            last = exc.__cause__ or exc
            raise DestinationError(
                f"{where}: not delivered within {self.retry_seconds:g} s: {last}"
            ) from last
        except BrokerError as exc:
            raise DestinationError(f"{where}: {exc}") from exc


class ClientDestinations:
    """What the gateway's dispatcher sends Kafka and Redis destinations' records through.

    Kafka records are keyed by the request id; a Redis entry carries the record as JSON in the
    field ``body``. A short outage is ridden out until ``deadline_seconds``. ``kafka_security``
    is the platform's Kafka's; ``secrets`` reads a namespace's Secrets (a destination's own
    ``tls``/``auth``), None where there are none to read.
    """

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        kafka_bootstrap_servers: str | None = None,
        deadline_seconds: float = 15.0,
        kafka_security: KafkaSecurity | None = None,
        secrets: Callable[[str], SecretReader] | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.kafka_bootstrap_servers = kafka_bootstrap_servers
        self.kafka_security = kafka_security
        self.secrets = secrets
        self.writer = DestinationWriter(redis_policy=BOUNDED_CALLS, retry_seconds=deadline_seconds)

    async def send(
        self, destination: Any, record: dict[str, Any], *, namespace: str | None = None
    ) -> None:
        """Write ``record``; its destination's Secrets are in ``namespace`` (the function's)."""
        if not isinstance(destination, Destination):
            raise DestinationError(f"not a Kafka or Redis destination: {destination!r}")
        body = json.dumps(record).encode()
        request_id = str(record.get("requestContext", {}).get("requestId", ""))
        if destination.kafka is not None:
            topic = destination.kafka.topic
            servers = platform_kafka(
                destination.kafka.bootstrap_servers,
                self.kafka_bootstrap_servers,
                what=f"kafka destination {topic!r}",
            )
            security = await self._kafka_security(destination.kafka, namespace)
            await self.writer.to_topic(
                servers, topic, [(request_id.encode() or None, body, ())], security=security
            )
        elif destination.redis is not None:
            stream = destination.redis.stream
            url = platform_redis(
                destination.redis.url, self.redis_url, what=f"redis destination {stream!r}"
            )
            await self.writer.to_stream(url, stream, [{REDIS_FIELD: body}])
        else:
            raise DestinationError(f"not a Kafka or Redis destination: {destination!r}")

    async def _kafka_security(
        self, kafka: KafkaDestination, namespace: str | None
    ) -> KafkaSecurity | None:
        if kafka.bootstrap_servers is None:
            return self.kafka_security  # the platform's cluster: the platform's credentials
        if kafka.tls is None and kafka.auth is None:
            return None
        what = f"kafka destination {kafka.topic!r} at {kafka.bootstrap_servers}"
        read = None if namespace is None or self.secrets is None else self.secrets(namespace)
        ca_secret = kafka.tls.ca_secret_ref if kafka.tls is not None else None
        names_a_secret = kafka.auth is not None or ca_secret is not None
        if names_a_secret and read is None:
            raise DestinationError(f"{what}: its tls/auth Secrets cannot be read here")
        try:
            return await resolve_security(kafka.tls, kafka.auth, read)
        except KafkaAuthError as exc:
            raise DestinationError(f"{what} (namespace {namespace}): {exc}") from exc

    async def close(self) -> None:
        await self.writer.close()
