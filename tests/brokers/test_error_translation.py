"""Which aiokafka and redis-py errors kfaas retries and which it gives up on (``kfaas.brokers``).

The decision is made from the client libraries' classes and aiokafka's ``retriable`` attribute,
once for the gateway's queues, the destination senders and the pollers alike (ADR 019).
"""

from __future__ import annotations

import pytest
from aiokafka import errors as kafka
from redis import exceptions as redis

from kfaas.brokers.errors import (
    BrokerError,
    BrokerUnavailable,
    CommitRefused,
    GroupMissing,
    from_kafka,
    from_redis,
    kafka_errors,
    kafka_retriable,
    redis_error_code,
    redis_errors,
)

KAFKA_CASES: list[tuple[BaseException, type[BrokerError]]] = [
    # Transient: no broker yet, a connection lost, a leader or coordinator moving, a slow answer.
    (kafka.KafkaConnectionError("connection refused"), BrokerUnavailable),
    (kafka.NoBrokersAvailable(), BrokerUnavailable),
    (kafka.NodeNotReadyError(), BrokerUnavailable),
    (kafka.KafkaTimeoutError(), BrokerUnavailable),
    (kafka.RequestTimedOutError(), BrokerUnavailable),
    (kafka.NotLeaderForPartitionError(), BrokerUnavailable),
    (kafka.LeaderNotAvailableError(), BrokerUnavailable),
    (kafka.GroupCoordinatorNotAvailableError(), BrokerUnavailable),
    (kafka.NotEnoughReplicasError(), BrokerUnavailable),
    (kafka.UnknownTopicOrPartitionError(), BrokerUnavailable),
    (ConnectionRefusedError(111, "refused"), BrokerUnavailable),
    (TimeoutError(), BrokerUnavailable),
    # A commit the group no longer accepts from us: the partition has a new owner.
    (kafka.CommitFailedError(), CommitRefused),
    (kafka.IllegalStateError("not assigned"), CommitRefused),
    # Mistakes that no retry fixes.
    (kafka.TopicAuthorizationFailedError(), BrokerError),
    (kafka.MessageSizeTooLargeError(), BrokerError),
    (kafka.UnsupportedVersionError(), BrokerError),
    (kafka.KafkaConfigurationError("bad option"), BrokerError),
    # Its name holds "Timeout", which the old text match took for transient; it is a setting.
    (kafka.InvalidSessionTimeoutError(), BrokerError),
    (kafka.KafkaError("unknown"), BrokerError),
]


@pytest.mark.parametrize(
    ("error", "expected"), KAFKA_CASES, ids=[type(e).__name__ for e, _ in KAFKA_CASES]
)
def test_kafka_errors_become_broker_errors(
    error: BaseException, expected: type[BrokerError]
) -> None:
    translated = from_kafka(error, "producing to t")
    assert type(translated) is expected
    assert str(translated).startswith("kafka: producing to t: ")


REDIS_CASES: list[tuple[BaseException, type[BrokerError]]] = [
    (redis.ConnectionError("Error 111 connecting"), BrokerUnavailable),
    (redis.TimeoutError("Timeout reading from socket"), BrokerUnavailable),
    (redis.BusyLoadingError("Redis is loading the dataset in memory"), BrokerUnavailable),
    (redis.MaxConnectionsError("Too many connections"), BrokerUnavailable),
    (ConnectionResetError(104, "reset by peer"), BrokerUnavailable),
    (TimeoutError(), BrokerUnavailable),
    (redis.ResponseError("NOGROUP No such key 's' or consumer group 'g'"), GroupMissing),
    # redis-py files these under connection errors; retrying with the same password is futile.
    (redis.AuthenticationError("invalid username-password pair"), BrokerError),
    (redis.AuthorizationError("NOPERM"), BrokerError),
    (redis.ResponseError("BUSYGROUP Consumer Group name already exists"), BrokerError),
    (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), BrokerError),
    (redis.ReadOnlyError("You can't write against a read only replica."), BrokerError),
    (redis.NoPermissionError("this user has no permissions"), BrokerError),
    (redis.DataError("Invalid input of type: 'NoneType'"), BrokerError),
]


@pytest.mark.parametrize(
    ("error", "expected"), REDIS_CASES, ids=[type(e).__name__ for e, _ in REDIS_CASES]
)
def test_redis_errors_become_broker_errors(
    error: BaseException, expected: type[BrokerError]
) -> None:
    translated = from_redis(error, "XADD s")
    assert type(translated) is expected
    assert str(translated).startswith("redis: XADD s: ")


def test_kafka_retriability_is_never_read_from_a_class_name() -> None:
    class SomeTimeoutConnectionError(kafka.KafkaError):  # type: ignore[misc]
        pass

    class QuietlyRetriable(kafka.KafkaError):  # type: ignore[misc]
        retriable = True

    assert not kafka_retriable(SomeTimeoutConnectionError())
    assert kafka_retriable(QuietlyRetriable())


def test_a_redis_error_code_is_the_reply_s_first_upper_case_word() -> None:
    assert (
        redis_error_code(redis.ResponseError("BUSYGROUP Consumer Group name exists")) == "BUSYGROUP"
    )
    assert redis_error_code(redis.ResponseError("NOGROUP No such key")) == "NOGROUP"
    assert redis_error_code(redis.ResponseError("unknown command 'XFOO'")) == ""


def test_the_translating_blocks_raise_from_the_library_error() -> None:
    original = kafka.KafkaConnectionError("refused")
    with pytest.raises(BrokerUnavailable) as raised, kafka_errors("fetching"):
        raise original
    assert raised.value.__cause__ is original

    with pytest.raises(GroupMissing) as missing, redis_errors("XREADGROUP"):
        raise redis.ResponseError("NOGROUP No such key")
    assert isinstance(missing.value.__cause__, redis.ResponseError)


def test_errors_of_other_kinds_pass_through_untranslated() -> None:
    with pytest.raises(ValueError), kafka_errors("fetching"):
        raise ValueError("a bug, not a broker failure")
    with pytest.raises(KeyError), redis_errors("XADD s"):
        raise KeyError("body")
