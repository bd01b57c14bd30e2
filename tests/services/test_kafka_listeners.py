"""The broker's secured listeners accept their own mode and refuse the wrong credentials.

Each refusal is checked twice: the client cannot use the listener, and the broker's log says why
(a failed TLS handshake, a failed SASL authentication), so a refusal for an unrelated reason — a
wrong port, a broker that is down — cannot pass for the one under test.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from waiting import eventually

from services.kafka_broker import KafkaBroker, _server_properties
from services.kafka_listeners import (
    POD_MECHANISM,
    USERS_MARKER,
    SecuredListeners,
    make_certificates,
)

pytestmark = pytest.mark.kafka


def _context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


def _sasl(secured: SecuredListeners, mechanism: str, password: str | None = None) -> dict[str, Any]:
    username, right = secured.users[mechanism]
    return {
        "bootstrap_servers": secured.sasl_ssl,
        "security_protocol": "SASL_SSL",
        "ssl_context": _context(secured.ca_file),
        "sasl_mechanism": mechanism,
        "sasl_plain_username": username,
        "sasl_plain_password": right if password is None else password,
    }


def _modes(secured: SecuredListeners) -> dict[str, dict[str, Any]]:
    return {
        "ssl": {
            "bootstrap_servers": secured.ssl,
            "security_protocol": "SSL",
            "ssl_context": _context(secured.ca_file),
        },
        "mtls": {
            "bootstrap_servers": secured.mtls,
            "security_protocol": "SSL",
            "ssl_context": _context(
                secured.ca_file, secured.client_cert_file, secured.client_key_file
            ),
        },
        **{
            mechanism.lower(): _sasl(secured, mechanism)
            for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
        },
    }


MODES = ["ssl", "mtls", "plain", "scram-sha-256", "scram-sha-512"]


@pytest.mark.parametrize("mode", MODES)
async def test_each_listener_carries_records_in_its_mode(
    kafka_service: KafkaBroker, mode: str
) -> None:
    options = _modes(kafka_service.secured)[mode]
    topic = f"services-secured-{mode}"
    kafka_service.create_topic(topic)
    producer = AIOKafkaProducer(**options, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, mode.encode())
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, **options, group_id=topic, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        record = await consumer.getone()
        await consumer.commit()  # the group coordinator is reached through the listener too
    finally:
        await consumer.stop()
    assert record.value == mode.encode()


async def _refused(options: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(**options, request_timeout_ms=5000)
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()
    # aiokafka closes a refused connection's writer without waiting for it: the TLS transport
    # ends a few loop iterations later. Ended before the test's loop closes, or it is collected
    # half-closed during a later test (an unclosed-transport ResourceWarning, seen once in CI).
    await asyncio.sleep(0.2)


def _logged(broker: KafkaBroker, since: int, text: str) -> None:
    def found() -> bool:
        with broker.log_path.open("rb") as log:
            log.seek(since)
            return text.encode() in log.read()

    eventually(found, within=10, what=f"{text!r} in the broker's log")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_a_wrong_password_is_refused(kafka_service: KafkaBroker, mechanism: str) -> None:
    since = kafka_service.log_path.stat().st_size
    await _refused(_sasl(kafka_service.secured, mechanism, password="not-the-password"))
    reason = (
        "Invalid username or password"
        if mechanism == "PLAIN"
        else f"invalid credentials with SASL mechanism {mechanism}"
    )
    _logged(kafka_service, since, reason)


async def test_another_mechanism_than_the_users_is_refused(kafka_service: KafkaBroker) -> None:
    secured = kafka_service.secured
    options = _sasl(secured, "SCRAM-SHA-512")
    # The SCRAM-SHA-256 user's own password, offered with SCRAM-SHA-512: no such credential.
    options["sasl_plain_username"], options["sasl_plain_password"] = secured.users["SCRAM-SHA-256"]
    await _refused(options)


async def test_mtls_refuses_a_client_without_a_certificate(kafka_service: KafkaBroker) -> None:
    secured = kafka_service.secured
    since = kafka_service.log_path.stat().st_size
    await _refused(
        {
            "bootstrap_servers": secured.mtls,
            "security_protocol": "SSL",
            "ssl_context": _context(secured.ca_file),
        }
    )
    _logged(kafka_service, since, "Failed authentication with /127.0.0.1")


async def test_mtls_refuses_a_certificate_of_an_untrusted_ca(kafka_service: KafkaBroker) -> None:
    secured = kafka_service.secured
    since = kafka_service.log_path.stat().st_size
    await _refused(
        {
            "bootstrap_servers": secured.mtls,
            "security_protocol": "SSL",
            "ssl_context": _context(
                secured.ca_file,
                secured.untrusted_client_cert_file,
                secured.untrusted_client_key_file,
            ),
        }
    )
    _logged(kafka_service, since, "Failed authentication with /127.0.0.1")


async def test_a_client_that_does_not_trust_the_brokers_ca_refuses_it(
    kafka_service: KafkaBroker,
) -> None:
    secured = kafka_service.secured
    await _refused(
        {
            "bootstrap_servers": secured.ssl,
            "security_protocol": "SSL",
            "ssl_context": _context(secured.untrusted_ca_file),
        }
    )


def test_the_pem_files_and_exports_match(kafka_service: KafkaBroker) -> None:
    secured = kafka_service.secured
    assert secured.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert secured.client_key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    exports = kafka_service.environment()
    assert exports["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"] == secured.sasl_ssl
    assert exports["KAFKA_CLIENT_CERT_FILE"] == str(secured.client_cert_file)
    assert (exports["KAFKA_SCRAM_512_USERNAME"], exports["KAFKA_SCRAM_512_PASSWORD"]) == (
        secured.users["SCRAM-SHA-512"]
    )
    assert exports["KAFKA_PLAIN_USERNAME"] == secured.users["PLAIN"][0]


def test_data_formatted_without_the_scram_users_is_formatted_again(tmp_path: Path) -> None:
    """SCRAM users are only written at format time: a folder formatted before them (no marker)
    is formatted anew, a folder formatted with them is kept."""
    broker = KafkaBroker(tmp_path)
    broker.dir.create()
    make_certificates(broker.tls_dir)
    ports = {
        name: 1 + index
        for index, name in enumerate(("broker", "controller", "ssl", "mtls", "sasl_ssl"))
    }
    broker.config_dir.mkdir(parents=True)
    properties = broker.config_dir / "server.properties"
    properties.write_text(_server_properties(broker.dir.data, ports, broker.tls_dir))
    (broker.config_dir / "log4j2.properties").write_text("")
    meta = broker.dir.data / "meta.properties"

    broker._format(properties)
    first = meta.read_text()
    broker._format(properties)
    assert meta.read_text() == first  # kept: same cluster id

    (broker.dir.data / USERS_MARKER).unlink()
    kept = broker.dir.data / f"old-{uuid.uuid4().hex}"
    kept.mkdir()
    broker._format(properties)
    assert meta.read_text() != first  # a new cluster id
    assert not kept.exists()
    assert (broker.dir.data / USERS_MARKER).exists()


def _names(certificate: Path) -> str:
    shown = subprocess.run(
        ["openssl", "x509", "-in", str(certificate), "-noout", "-ext", "subjectAltName"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return shown.stdout


def test_the_brokers_certificate_names_the_pods_address_and_is_made_again_for_it(
    tmp_path: Path,
) -> None:
    """A folder made for loopback only (as before pods had a secured listener) is made again
    for the bridge address; made for it, it is kept."""
    tls = tmp_path / "tls"
    make_certificates(tls)
    loopback_ca = (tls / "ca.crt").read_bytes()
    make_certificates(tls)
    assert (tls / "ca.crt").read_bytes() == loopback_ca  # kept
    assert "10.88.0.1" not in _names(tls / "server.crt")

    make_certificates(tls, ("10.88.0.1",))
    assert "IP Address:10.88.0.1" in _names(tls / "server.crt")
    assert "IP Address:127.0.0.1" in _names(tls / "server.crt")
    again = (tls / "ca.crt").read_bytes()
    assert again != loopback_ca
    make_certificates(tls, ("10.88.0.1",))
    assert (tls / "ca.crt").read_bytes() == again


async def test_the_pods_sasl_ssl_listener_carries_records_on_its_own_address(
    tmp_path: Path,
) -> None:
    """The pods' broker without a node: 127.0.0.2 (any 127/8 address is loopback) stands in for
    the bridge address; the client checks the broker's certificate against that IP."""
    broker = KafkaBroker(tmp_path, pod_address="127.0.0.2")
    broker.up()
    try:
        assert broker.sasl_ssl_for_pods.startswith("127.0.0.2:")
        assert broker.environment()["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS_FOR_PODS"] == (
            broker.sasl_ssl_for_pods
        )
        options = {
            **_sasl(broker.secured, POD_MECHANISM),
            "bootstrap_servers": broker.sasl_ssl_for_pods,
        }
        broker.create_topic("services-pods-sasl-ssl")
        producer = AIOKafkaProducer(**options, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait("services-pods-sasl-ssl", b"pods")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            "services-pods-sasl-ssl", **options, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            record = await consumer.getone()
        finally:
            await consumer.stop()
        assert record.value == b"pods"
        # Another mechanism than the one this listener enables is refused.
        await _refused(
            {**_sasl(broker.secured, "PLAIN"), "bootstrap_servers": broker.sasl_ssl_for_pods}
        )
    finally:
        broker.down()
