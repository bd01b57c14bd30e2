"""kfaas's Kafka clients against the real broker's secured listeners (ADR 027).

Each mode — TLS with the test CA, mutual TLS, SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 over
TLS — writes through a `KafkaProducer` and reads back through a `KafkaConsumer`, both built by
`kfaas.brokers` from a `KafkaSecurity`. The refusals name what failed: a wrong password, a CA
that does not trust the broker, a missing or untrusted client certificate, the wrong mechanism.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from kfaas.brokers.errors import KafkaAuthError
from kfaas.brokers.kafka_clients import (
    KafkaConsumer,
    KafkaMessage,
    KafkaProducer,
    Partition,
    topic_partition_count,
)
from kfaas.brokers.kafka_security import KafkaSecurity
from kfaas.brokers.policies import poller_consumer

pytestmark = pytest.mark.kafka


def modes(secured: Any) -> dict[str, tuple[str, KafkaSecurity]]:
    """Each mode: the listener it talks to and its security."""

    def sasl(mechanism: str) -> KafkaSecurity:
        return KafkaSecurity(**secured.sasl_client(mechanism))

    return {
        "tls": (secured.ssl, KafkaSecurity(tls=True, ca_pem=secured.ca_pem)),
        "mtls": (
            secured.mtls,
            KafkaSecurity(
                tls=True,
                ca_pem=secured.ca_pem,
                client_cert_pem=secured.client_cert_pem,
                client_key_pem=secured.client_key_pem,
            ),
        ),
        "plain": (secured.sasl_ssl, sasl("PLAIN")),
        "scram-256": (secured.sasl_ssl, sasl("SCRAM-SHA-256")),
        "scram-512": (secured.sasl_ssl, sasl("SCRAM-SHA-512")),
    }


@pytest.mark.parametrize("mode", ["tls", "mtls", "plain", "scram-256", "scram-512"])
async def test_each_mode_writes_and_reads(kafka_service: Any, mode: str) -> None:
    servers, security = modes(kafka_service.secured)[mode]
    topic = f"secured-{mode}-{uuid.uuid4().hex[:8]}"
    kafka_service.create_topic(topic, 1)
    assert await topic_partition_count(servers, topic, security) == 1
    producer = KafkaProducer(servers, security=security)
    try:
        await producer.send_all(topic, [(b"k", b"hello", [("h", b"v")])])
    finally:
        await producer.stop()
    assigned: list[Partition] = []

    async def on_assigned(partitions: list[Partition]) -> None:
        assigned.extend(partitions)

    async def on_revoked(partitions: list[Partition]) -> None:
        return None

    consumer = KafkaConsumer(
        bootstrap_servers=servers,
        topics=[topic],
        group_id=f"g-{topic}",
        policy=poller_consumer(from_beginning=True),
        on_assigned=on_assigned,
        on_revoked=on_revoked,
        security=security,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            found: list[KafkaMessage] = []
            while not found:
                found = await consumer.fetch(200)
        assert [(m.key, m.value, m.headers) for m in found] == [(b"k", b"hello", (("h", b"v"),))]
        await consumer.commit((topic, 0), found[-1].offset + 1)
    finally:
        await consumer.stop()


async def refusal(servers: str, security: KafkaSecurity) -> str:
    with pytest.raises(KafkaAuthError) as caught:
        await topic_partition_count(servers, "any-topic", security)
    return str(caught.value)


async def test_a_wrong_password_is_named(kafka_service: Any) -> None:
    secured = kafka_service.secured
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        username, _ = secured.users[mechanism]
        wrong = KafkaSecurity(
            tls=True,
            ca_pem=secured.ca_pem,
            sasl_mechanism=mechanism,
            username=username,
            password="not-the-password",
        )
        message = await refusal(secured.sasl_ssl, wrong)
        assert f"SASL {mechanism} authentication failed for user {username!r}" in message
        assert "not-the-password" not in message


async def test_a_ca_that_does_not_trust_the_broker_is_named(kafka_service: Any) -> None:
    secured = kafka_service.secured
    untrusted = KafkaSecurity(tls=True, ca_pem=secured.untrusted_ca_pem)
    message = await refusal(secured.ssl, untrusted)
    assert "TLS: the broker's certificate is not trusted" in message
    system = await refusal(secured.ssl, KafkaSecurity(tls=True))
    assert "checked against the system's CAs" in system


async def test_a_missing_or_untrusted_client_certificate_is_named(kafka_service: Any) -> None:
    secured = kafka_service.secured
    without = await refusal(secured.mtls, KafkaSecurity(tls=True, ca_pem=secured.ca_pem))
    assert "client certificate" in without
    foreign = KafkaSecurity(
        tls=True,
        ca_pem=secured.ca_pem,
        client_cert_pem=secured.untrusted_client_cert_pem,
        client_key_pem=secured.untrusted_client_key_pem,
    )
    assert "client certificate" in await refusal(secured.mtls, foreign)
