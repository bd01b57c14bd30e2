"""Which security a function's Kafka destination is written with (ADR 027).

No `bootstrapServers`: the platform's cluster, with the platform's security. Its own cluster: its
own `tls`/`auth`, the Secrets read in the function's namespace at each send; a Secret missing, or
no way to read one, is a `DestinationError` naming the destination and the namespace. The writer
is replaced by a recorder: what is decided here is which cluster and which security, not I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from kfaas.brokers.destinations import ClientDestinations
from kfaas.brokers.errors import DestinationError
from kfaas.brokers.kafka_clients import KafkaMessageTuple
from kfaas.brokers.kafka_security import KafkaSecurity, SecretReader
from kfaas.manifests import Destination

PLATFORM = KafkaSecurity(
    tls=True, sasl_mechanism="SCRAM-SHA-512", username="platform", password="platform-password"
)
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
SECRETS = {
    ("team-a", "kafka-ca"): {"ca.crt": CA},
    ("team-a", "kafka-user"): {"username": b"team-a", "password": b"team-a-password"},
}
RECORD = {"requestContext": {"requestId": "r-1"}}


class Recorder:
    def __init__(self) -> None:
        self.writes: list[tuple[str, str, KafkaSecurity | None]] = []

    async def to_topic(
        self,
        servers: str,
        topic: str,
        messages: Sequence[KafkaMessageTuple],
        *,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.writes.append((servers, topic, security))

    async def close(self) -> None:
        pass


def _secrets(namespace: str) -> SecretReader:
    async def read(name: str) -> Mapping[str, bytes] | None:
        return SECRETS.get((namespace, name))

    return read


def _sender(**options: Any) -> tuple[ClientDestinations, Recorder]:
    sender = ClientDestinations(kafka_bootstrap_servers="platform:9093", **options)
    recorder = Recorder()
    sender.writer = recorder  # type: ignore[assignment]
    return sender, recorder


def _kafka(**fields: Any) -> Destination:
    return Destination.model_validate({"kafka": {"topic": "records", **fields}})


async def test_the_platforms_cluster_gets_the_platforms_security() -> None:
    sender, recorder = _sender(kafka_security=PLATFORM, secrets=_secrets)
    await sender.send(_kafka(), dict(RECORD), namespace="team-a")
    assert recorder.writes == [("platform:9093", "records", PLATFORM)]


async def test_its_own_cluster_without_tls_or_auth_is_plaintext() -> None:
    sender, recorder = _sender(kafka_security=PLATFORM, secrets=_secrets)
    await sender.send(_kafka(bootstrapServers="own:9092"), dict(RECORD), namespace="team-a")
    assert recorder.writes == [("own:9092", "records", None)]


async def test_its_own_cluster_uses_its_secrets_in_the_functions_namespace() -> None:
    sender, recorder = _sender(kafka_security=PLATFORM, secrets=_secrets)
    destination = _kafka(
        bootstrapServers="own:9093",
        tls={"caSecretRef": {"name": "kafka-ca"}},
        auth={"mechanism": "SASL_SCRAM_256_AUTH", "secretRef": {"name": "kafka-user"}},
    )
    await sender.send(destination, dict(RECORD), namespace="team-a")
    assert recorder.writes == [
        (
            "own:9093",
            "records",
            KafkaSecurity(
                tls=True,
                ca_pem=CA,
                sasl_mechanism="SCRAM-SHA-256",
                username="team-a",
                password="team-a-password",
            ),
        )
    ]
    # Another namespace has no such Secrets: nothing is written, the error says where it looked.
    with pytest.raises(DestinationError, match=r"namespace team-b.*'kafka-ca'.*does not exist"):
        await sender.send(destination, dict(RECORD), namespace="team-b")
    assert len(recorder.writes) == 1


async def test_secrets_that_cannot_be_read_here_are_an_error_not_plaintext() -> None:
    destination = _kafka(bootstrapServers="own:9093", tls={"caSecretRef": {"name": "kafka-ca"}})
    sender, recorder = _sender()
    with pytest.raises(DestinationError, match="tls/auth Secrets cannot be read here"):
        await sender.send(destination, dict(RECORD), namespace="team-a")
    sender, recorder = _sender(secrets=_secrets)
    with pytest.raises(DestinationError, match="tls/auth Secrets cannot be read here"):
        await sender.send(destination, dict(RECORD))  # a caller that knows no namespace
    assert recorder.writes == []


async def test_tls_with_the_system_cas_needs_no_secret() -> None:
    sender, recorder = _sender()
    await sender.send(_kafka(bootstrapServers="own:9093", tls={}), dict(RECORD))
    assert recorder.writes == [("own:9093", "records", KafkaSecurity(tls=True))]
