"""The platform's Kafka settings become the clients' KafkaSecurity; bad PEMs stop the start."""

from __future__ import annotations

from pathlib import Path

import pytest
from services.kafka_listeners import make_certificates

from kfaas.brokers.kafka_security import KafkaSecurity, client_options
from kfaas.brokers.platform_kafka import check_platform_security, platform_security
from kfaas.kafka_settings import PlatformKafkaSecurity


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("platform-kafka") / "tls"
    make_certificates(folder)
    return folder


def test_no_settings_is_plaintext() -> None:
    assert platform_security(PlatformKafkaSecurity()) is None
    check_platform_security(PlatformKafkaSecurity())


def test_scram_over_tls_becomes_sasl_ssl_options(tls: Path) -> None:
    settings = PlatformKafkaSecurity(
        tls=True,
        ca_pem=(tls / "ca.crt").read_bytes(),
        sasl_mechanism="SCRAM-SHA-512",
        username="kfaas",
        password="p",
    )
    check_platform_security(settings)
    security = platform_security(settings)
    assert security == KafkaSecurity(
        tls=True,
        ca_pem=(tls / "ca.crt").read_bytes(),
        sasl_mechanism="SCRAM-SHA-512",
        username="kfaas",
        password="p",
    )
    options = client_options(security)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"


def test_a_client_certificate_is_loaded_at_start(tls: Path) -> None:
    settings = PlatformKafkaSecurity(
        tls=True,
        ca_pem=(tls / "ca.crt").read_bytes(),
        client_cert_pem=(tls / "client.crt").read_bytes(),
        client_key_pem=(tls / "client.key").read_bytes(),
    )
    check_platform_security(settings)
    security = platform_security(settings)
    assert security is not None and security.protocol == "SSL"


def test_a_ca_that_is_no_pem_stops_the_start() -> None:
    settings = PlatformKafkaSecurity(tls=True, ca_pem=b"not a certificate\n")
    with pytest.raises(ValueError, match=r"KFAAS_KAFKA_CA_FILE.*CA certificate"):
        check_platform_security(settings)


def test_a_key_that_does_not_match_the_certificate_stops_the_start(tls: Path) -> None:
    settings = PlatformKafkaSecurity(
        tls=True,
        client_cert_pem=(tls / "client.crt").read_bytes(),
        client_key_pem=(tls / "untrusted-client.key").read_bytes(),
    )
    with pytest.raises(ValueError, match="client certificate"):
        check_platform_security(settings)
