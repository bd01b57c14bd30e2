"""The broker vocabulary: each aiokafka and redis-py error becomes one of these, raised from it.

httpx keeps its whole exception tree in one module and maps the transport's errors at the boundary
(STYLE 9); this is that module for Kafka and Redis. Whether a failure is worth retrying is decided
here once, from the client libraries' exception classes and their ``retriable`` attribute — never
from the text of a class name — so the gateway's queues, the destination senders and the pollers
all ride out the same outages and give up on the same mistakes.

    BrokerError              a broker refused or failed an operation (a mistake: do not retry)
    ├── BrokerUnavailable    unreachable, restarting or too slow: retry until a deadline
    ├── CommitRefused        Kafka refused an offset commit: the partition moved (a rebalance)
    ├── GroupMissing         a Redis stream lost its consumer group (the stream was deleted)
    ├── KafkaAuthError       Kafka refused the credentials, TLS failed, or a Secret is missing
    └── DestinationError     a record was not delivered to a destination; names the destination
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, KafkaTimeoutError
from redis.exceptions import AuthenticationError, AuthorizationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class BrokerError(Exception):
    """Kafka or Redis refused or failed an operation; the message says which and why."""


class BrokerUnavailable(BrokerError):
    """The server could not be reached or did not answer in time; retrying may succeed."""


class CommitRefused(BrokerError):
    """Kafka refused an offset commit: the group rebalanced and the partition has a new owner."""


class GroupMissing(BrokerError):
    """A Redis stream has no such consumer group (the stream was deleted or Redis lost it)."""


class KafkaAuthError(BrokerError):
    """Kafka's SASL authentication or the TLS handshake failed, or the credentials could not be
    read from their Secret (ADR 027). Retrying helps only once the Secret or the cluster is
    fixed; the message says what failed, never a password."""


class DestinationError(BrokerError):
    """Records could not be delivered to a destination; the message names the destination."""


def kafka_retriable(exc: BaseException) -> bool:
    """Whether retrying the Kafka operation that raised ``exc`` may succeed.

    aiokafka marks its transient errors ``retriable`` (no broker, connection lost, leader moving,
    coordinator loading); a request that timed out (``KafkaTimeoutError``, not marked) is transient
    too. A socket error below aiokafka is a lost connection.
    """
    if isinstance(exc, KafkaError):
        return bool(exc.retriable) or isinstance(exc, KafkaTimeoutError)
    return isinstance(exc, OSError | asyncio.TimeoutError)


def redis_error_code(exc: ResponseError) -> str:
    """The error code a Redis error reply starts with (``NOGROUP``, ``BUSYGROUP``, ``ERR``).

    redis-py maps some codes to classes but not the stream ones, so the reply's first word —
    Redis's own machine-readable code, not a message to match — is what tells them apart.
    """
    first = str(exc).split(" ", 1)[0]
    return first if first.isupper() else ""


def redis_retriable(exc: BaseException) -> bool:
    """Whether retrying the Redis command that raised ``exc`` may succeed.

    A lost or refused connection, a server still loading its data and a command that timed out are
    transient; wrong credentials or permissions (which redis-py files under connection errors),
    and every error reply, are not.
    """
    if isinstance(exc, AuthenticationError | AuthorizationError):
        return False
    return isinstance(
        exc, RedisConnectionError | RedisTimeoutError | OSError | asyncio.TimeoutError
    )


def from_kafka(exc: BaseException, what: str) -> BrokerError:
    """The broker error for an aiokafka (or socket) error raised while doing ``what``."""
    message = f"kafka: {what}: {exc!r}"
    if isinstance(exc, CommitFailedError | IllegalStateError):
        # IllegalStateError: a commit for a partition no longer assigned, the same situation.
        return CommitRefused(message)
    if kafka_retriable(exc):
        return BrokerUnavailable(message)
    return BrokerError(message)


def from_redis(exc: BaseException, what: str) -> BrokerError:
    """The broker error for a redis-py (or socket) error raised while doing ``what``."""
    message = f"redis: {what}: {exc}"
    if isinstance(exc, ResponseError) and redis_error_code(exc) == "NOGROUP":
        return GroupMissing(message)
    if redis_retriable(exc):
        return BrokerUnavailable(message)
    return BrokerError(message)


_KAFKA_ERRORS = (KafkaError, OSError)
_REDIS_ERRORS = (RedisError, OSError)


@contextmanager
def kafka_errors(what: str) -> Iterator[None]:
    """Translate aiokafka's errors raised inside the block (``what`` names the operation)."""
    try:
        yield
    except _KAFKA_ERRORS as exc:
        raise from_kafka(exc, what) from exc


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Translate redis-py's errors raised inside the block (``what`` names the operation)."""
    try:
        yield
    except _REDIS_ERRORS as exc:
        raise from_redis(exc, what) from exc
