"""How kfaas opens its Redis and Kafka clients: one named policy per use, all of them here.

Each use had written its own set-up and the retry and health-check choices had drifted apart.
The choices differ for reasons, and the reasons are written next to them:

- ``BOUNDED_CALLS`` (the gateway's async queue and its destination sender): redis-py retries
  nothing and every call carries kfaas's own deadline, so an outage is ridden out by a retry loop
  that knows how long it has lasted (``kfaas.aiokit.retry_until_deadline``).
- ``BLOCKING_READS`` (the stream pollers): long ``XREADGROUP BLOCK`` reads wait on the server, so no
  call deadline; redis-py's own retries and a health check find dead connections after a restart.

Kafka producers always write with ``acks=all`` and idempotence (a record a caller was told is
stored must survive a broker failing); consumers take a ``ConsumerPolicy``. Every Kafka client
takes the cluster's ``KafkaSecurity`` (TLS, SASL; ADR 027), PLAINTEXT when none is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .kafka_security import KafkaSecurity, client_options


@dataclass(frozen=True)
class RedisPolicy:
    name: str
    call_seconds: float | None
    """kfaas's deadline for one command (blocking reads get their block time on top); None: none."""
    library_retries: bool
    """Whether redis-py retries a command on a connection error by itself (its default policy)."""
    health_check_seconds: float = 0
    """Ping a connection idle this long before using it (0: never)."""


BOUNDED_CALLS = RedisPolicy("bounded-calls", call_seconds=5.0, library_retries=False)
BLOCKING_READS = RedisPolicy(
    "blocking-reads", call_seconds=None, library_retries=True, health_check_seconds=5
)

# Connecting is bounded in every policy: an address that drops packets must not hang a caller.
_CONNECT_SECONDS = 5


def open_redis(url: str, policy: RedisPolicy) -> aioredis.Redis:
    """A client (connection pool) for ``url`` set up as ``policy`` says; connects lazily.

    ``socket_timeout`` is always None, said explicitly: redis-py 8 turned its default from None
    into 5 s, and with a socket timeout it sends every command through ``asyncio.wait_for``,
    which on Python 3.11 loses a cancellation that lands as the send completes. A poller's
    reader then ignored SIGTERM and read on forever (the CI of 2026-11-30). Without it, a
    blocking ``XREADGROUP`` also waits server-side for as long as it asks, and the policy's
    call deadline (``RedisStreams``) bounds a bounded call instead.
    """
    if policy.library_retries:
        return aioredis.Redis.from_url(
            url,
            socket_timeout=None,
            health_check_interval=policy.health_check_seconds,
            socket_connect_timeout=_CONNECT_SECONDS,
            retry_on_timeout=False,
        )
    return aioredis.Redis.from_url(
        url,
        socket_timeout=None,
        health_check_interval=policy.health_check_seconds,
        socket_connect_timeout=_CONNECT_SECONDS,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 0),
    )


@dataclass(frozen=True)
class ConsumerPolicy:
    name: str
    session_timeout_ms: int
    heartbeat_interval_ms: int
    from_beginning: bool
    """Where a new group starts: the oldest record (True) or only records written from now on."""
    max_poll_interval_ms: int = 300_000
    max_partition_fetch_bytes: int = 1 << 20
    fetch_max_bytes: int = 50 << 20


# The broker refuses session timeouts below group.min.session.timeout.ms (6 s by default).
_MIN_SESSION_MS = 6000


def async_queue_consumer(redelivery_seconds: float) -> ConsumerPolicy:
    """The gateway's async queue: a replica silent for ``redelivery_seconds`` loses its work."""
    session_ms = max(_MIN_SESSION_MS, int(redelivery_seconds * 1000))
    return ConsumerPolicy(
        "async-queue",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(500, session_ms // 4),
        from_beginning=True,
    )


def poller_consumer(*, from_beginning: bool) -> ConsumerPolicy:
    """The stream pollers: batches may retry for hours outside ``getmany``, so only the
    heartbeat's session timeout decides liveness; fetches as large as Lambda's (6 MB) partition
    reads, where aiokafka's 1 MB default was the bottleneck for big batches."""
    return ConsumerPolicy(
        "poller",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
        from_beginning=from_beginning,
        max_poll_interval_ms=24 * 3600 * 1000,
        max_partition_fetch_bytes=6 << 20,
        fetch_max_bytes=50 << 20,
    )


def open_consumer(
    bootstrap_servers: str,
    group_id: str,
    policy: ConsumerPolicy,
    *,
    client_id: str | None = None,
    security: KafkaSecurity | None = None,
) -> AIOKafkaConsumer:
    """A consumer-group member that commits only what it is told to (no auto-commit)."""
    options = client_options(security)
    if client_id:
        options["client_id"] = client_id
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if policy.from_beginning else "latest",
        session_timeout_ms=policy.session_timeout_ms,
        heartbeat_interval_ms=policy.heartbeat_interval_ms,
        max_poll_interval_ms=policy.max_poll_interval_ms,
        max_partition_fetch_bytes=policy.max_partition_fetch_bytes,
        fetch_max_bytes=policy.fetch_max_bytes,
        **options,
    )


def open_producer(
    bootstrap_servers: str,
    *,
    request_timeout_ms: int | None = None,
    security: KafkaSecurity | None = None,
) -> AIOKafkaProducer:
    """A producer whose writes are confirmed by every in-sync replica, never duplicated."""
    options = client_options(security)
    if request_timeout_ms:
        options["request_timeout_ms"] = request_timeout_ms
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True, **options
    )
