"""Kafka security built from Secrets, as aiokafka options, and failures named (ADR 027).

The pure parts: which Secret keys each `auth.mechanism` reads and what is said when one is
missing, the invariants of `KafkaSecurity` (a password only over TLS for PLAIN), that no password
or key reaches a repr, the aiokafka options of each mode, and what a probe's error is reported
as. The real broker's listeners are exercised in tests/streams/test_kafka_security_modes.py.
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Mapping
from pathlib import Path

import pytest
from aiokafka import errors as kafka
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kfaas.brokers.destinations import DestinationWriter
from kfaas.brokers.errors import BrokerError, DestinationError, KafkaAuthError
from kfaas.brokers.kafka_failures import explain_failure
from kfaas.brokers.kafka_security import (
    PLAINTEXT,
    KafkaSecurity,
    client_options,
    resolve_security,
    security_from_secret_data,
)
from kfaas.brokers.policies import BLOCKING_READS
from kfaas.manifests import KafkaAuth, KafkaTls


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey]
) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=name == issuer[0], path_length=None), True)
        .sign(issuer[1], hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pems() -> dict[str, bytes]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "ca.crt": _certificate("test-ca", ca_key, ("test-ca", ca_key)),
        "tls.crt": _certificate("client", client_key, ("test-ca", ca_key)),
        "tls.key": client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "encrypted.key": client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key-password"),
        ),
    }


SASL = {"username": b"alice", "password": b"s3cret"}


@pytest.mark.parametrize(
    ("mechanism", "expected"),
    [
        ("BASIC_AUTH", "PLAIN"),
        ("SASL_SCRAM_256_AUTH", "SCRAM-SHA-256"),
        ("SASL_SCRAM_512_AUTH", "SCRAM-SHA-512"),
    ],
)
def test_sasl_mechanisms_read_username_and_password(mechanism: str, expected: str) -> None:
    security = security_from_secret_data(mechanism, True, SASL, None, auth_secret="creds")
    assert (security.sasl_mechanism, security.username, security.password) == (
        expected,
        "alice",
        "s3cret",
    )
    assert security.protocol == "SASL_SSL"


def test_scram_without_tls_is_sasl_plaintext_and_plain_without_tls_is_refused() -> None:
    scram = security_from_secret_data("SASL_SCRAM_512_AUTH", False, SASL, None)
    assert scram.protocol == "SASL_PLAINTEXT"
    assert "ssl_context" not in client_options(scram)
    with pytest.raises(ValueError, match=r"PLAIN .* needs tls"):
        KafkaSecurity(sasl_mechanism="PLAIN", username="a", password="b")


def test_client_certificate_reads_the_kubernetes_tls_keys(pems: dict[str, bytes]) -> None:
    data = {"tls.crt": pems["tls.crt"], "tls.key": pems["tls.key"]}
    security = security_from_secret_data(
        "CLIENT_CERTIFICATE_TLS_AUTH", True, data, {"ca.crt": pems["ca.crt"]}
    )
    assert security.protocol == "SSL"
    assert security.client_cert_pem == pems["tls.crt"]
    assert security.ca_pem == pems["ca.crt"]
    assert security.client_key_password is None


@pytest.mark.parametrize(
    ("mechanism", "auth_data", "ca_data", "names"),
    [
        ("BASIC_AUTH", {"password": b"x"}, None, ["'creds'", "'username'", "BASIC_AUTH"]),
        ("SASL_SCRAM_256_AUTH", {"username": b"x"}, None, ["'creds'", "'password'"]),
        ("CLIENT_CERTIFICATE_TLS_AUTH", {"tls.key": b"k"}, None, ["'creds'", "'tls.crt'"]),
        ("CLIENT_CERTIFICATE_TLS_AUTH", {"tls.crt": b"c"}, None, ["'creds'", "'tls.key'"]),
        (None, None, {"tls.crt": b"c"}, ["'ca'", "'ca.crt'", "tls.caSecretRef"]),
    ],
)
def test_a_missing_key_names_the_secret_and_the_key(
    mechanism: str | None,
    auth_data: Mapping[str, bytes] | None,
    ca_data: Mapping[str, bytes] | None,
    names: list[str],
) -> None:
    with pytest.raises(KafkaAuthError) as caught:
        security_from_secret_data(
            mechanism, True, auth_data, ca_data, auth_secret="creds", ca_secret="ca"
        )
    for name in names:
        assert name in str(caught.value)
    assert isinstance(caught.value, BrokerError)


def test_a_client_certificate_without_tls_is_refused() -> None:
    data = {"tls.crt": b"c", "tls.key": b"k"}
    with pytest.raises(KafkaAuthError, match="only used with tls"):
        security_from_secret_data("CLIENT_CERTIFICATE_TLS_AUTH", False, data, None)


def test_an_empty_username_is_refused_naming_the_secret() -> None:
    with pytest.raises(KafkaAuthError, match=r"'creds'.*username"):
        security_from_secret_data(
            "SASL_SCRAM_512_AUTH",
            True,
            {"username": b"", "password": b"p"},
            None,
            auth_secret="creds",
        )


def test_no_secret_reaches_a_repr(pems: dict[str, bytes]) -> None:
    sasl = KafkaSecurity(tls=True, sasl_mechanism="SCRAM-SHA-512", username="alice", password="pw1")
    assert "pw1" not in repr(sasl) and "pw1" not in str(sasl)
    assert repr(sasl) == "KafkaSecurity(SASL_SSL (SASL SCRAM-SHA-512 as 'alice', system CAs))"
    mtls = KafkaSecurity(tls=True, client_cert_pem=pems["tls.crt"], client_key_pem=pems["tls.key"])
    assert b"PRIVATE" not in repr(mtls).encode() and "BEGIN" not in repr(mtls)
    assert repr(PLAINTEXT) == "KafkaSecurity(PLAINTEXT)"


def test_options_of_each_mode(pems: dict[str, bytes]) -> None:
    assert client_options(None) == {} and client_options(PLAINTEXT) == {}
    tls = client_options(KafkaSecurity(tls=True, ca_pem=pems["ca.crt"]))
    assert tls["security_protocol"] == "SSL"
    context = tls["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]
    sasl = client_options(
        KafkaSecurity(tls=True, sasl_mechanism="SCRAM-SHA-256", username="u", password="p")
    )
    assert sasl["security_protocol"] == "SASL_SSL"
    assert (sasl["sasl_mechanism"], sasl["sasl_plain_username"]) == ("SCRAM-SHA-256", "u")
    assert sasl["sasl_plain_password"] == "p"


def test_client_certificate_files_live_only_while_loaded(
    pems: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    security = KafkaSecurity(
        tls=True,
        ca_pem=pems["ca.crt"],
        client_cert_pem=pems["tls.crt"],
        client_key_pem=pems["encrypted.key"],
        client_key_password="key-password",
    )
    assert client_options(security)["security_protocol"] == "SSL"
    assert list(tmp_path.iterdir()) == []
    wrong = KafkaSecurity(
        tls=True, client_cert_pem=pems["tls.crt"], client_key_pem=pems["encrypted.key"]
    )
    with pytest.raises(KafkaAuthError, match=r"client certificate .* cannot be loaded"):
        client_options(wrong)
    assert list(tmp_path.iterdir()) == []


def test_a_ca_that_is_no_certificate_is_reported() -> None:
    with pytest.raises(KafkaAuthError, match=r"CA certificate \(ca.crt\) cannot be loaded"):
        client_options(KafkaSecurity(tls=True, ca_pem=b"not a certificate"))


async def test_resolving_reads_the_named_secrets_and_names_a_missing_one() -> None:
    secrets = {"ca": {"ca.crt": b"CA"}, "creds": dict(SASL)}
    reads: list[str] = []

    async def read(name: str) -> Mapping[str, bytes] | None:
        reads.append(name)
        return secrets.get(name)

    tls = KafkaTls.model_validate({"caSecretRef": {"name": "ca"}})
    auth = KafkaAuth.model_validate(
        {"mechanism": "SASL_SCRAM_512_AUTH", "secretRef": {"name": "creds"}}
    )
    security = await resolve_security(tls, auth, read)
    assert security is not None and security.ca_pem == b"CA" and security.username == "alice"
    assert reads == ["ca", "creds"]
    assert await resolve_security(None, None, read) is None
    assert await resolve_security(KafkaTls(), None, read) == KafkaSecurity(tls=True)
    missing = KafkaAuth.model_validate({"mechanism": "BASIC_AUTH", "secretRef": {"name": "gone"}})
    with pytest.raises(KafkaAuthError, match=r"Secret 'gone' \(auth.secretRef\) does not exist"):
        await resolve_security(tls, missing, read)


SCRAM = KafkaSecurity(tls=True, sasl_mechanism="SCRAM-SHA-512", username="alice", password="pw")
MTLS_WITHOUT_CERT = KafkaSecurity(tls=True)


def _verification_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "unable to get local issuer certificate"
    return error


@pytest.mark.parametrize(
    ("error", "security", "said"),
    [
        (
            kafka.SaslAuthenticationFailed("Authentication failed due to invalid credentials"),
            SCRAM,
            "SASL SCRAM-SHA-512 authentication failed for user 'alice'",
        ),
        (
            kafka.UnsupportedSaslMechanismError("enabled: PLAIN"),
            SCRAM,
            "SASL SCRAM-SHA-512: the broker refused it",
        ),
        (
            _verification_error(),
            MTLS_WITHOUT_CERT,
            "TLS: the broker's certificate is not trusted (unable to get local issuer",
        ),
        (
            kafka.KafkaConnectionError("Connection at 127.0.0.1:9094 closed"),
            MTLS_WITHOUT_CERT,
            "may require a client certificate",
        ),
    ],
)
def test_a_probe_failure_says_what_failed(
    error: BaseException, security: KafkaSecurity, said: str
) -> None:
    explained = explain_failure(error, security)
    assert explained is not None and said in str(explained)
    assert "pw" not in str(explained).replace("SASL", "")


def test_an_unreachable_broker_is_no_security_failure() -> None:
    assert explain_failure(ConnectionRefusedError(111, "refused"), SCRAM) is None
    assert explain_failure(TimeoutError(), SCRAM) is None
    plain_scram = KafkaSecurity(sasl_mechanism="SCRAM-SHA-256", username="u", password="p")
    assert explain_failure(kafka.KafkaConnectionError("closed"), plain_scram) is None


def _scram(username: str, password: str) -> KafkaSecurity:
    return KafkaSecurity(sasl_mechanism="SCRAM-SHA-512", username=username, password=password)


async def test_a_writer_keeps_a_producer_per_user_and_retires_a_rotated_one() -> None:
    # Nothing listens on port 1: each send fails, but the writer has chosen its producer by then.
    writer = DestinationWriter(redis_policy=BLOCKING_READS)
    servers = "127.0.0.1:1"
    try:
        for security in (_scram("alice", "a1"), _scram("bob", "b1"), _scram("alice", "a2")):
            with pytest.raises(DestinationError):
                await writer.to_topic(servers, "t", [(None, b"v", ())], security=security)
        # Alice's and Bob's producers live side by side; Alice's old password is being retired.
        assert set(writer._producers) == {
            (servers, _scram("bob", "b1")),
            (servers, _scram("alice", "a2")),
        }
        assert len(writer._retiring) == 1
    finally:
        await writer.close()
    assert not writer._retiring and not writer._producers
