"""The platform's Kafka security variables: read with their files, refused when inconsistent."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfaas.config import Settings
from kfaas.kafka_settings import PlatformKafkaSecurity

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name, content in (
        ("ca", CA),
        ("cert", CA),
        ("key", b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"),
        ("password", b"s3cret\n"),
        ("empty", b""),
    ):
        path = tmp_path / name
        path.write_bytes(content)
        paths[name] = str(path)
    return paths


def test_nothing_set_is_plaintext() -> None:
    assert PlatformKafkaSecurity.from_env({}) == PlatformKafkaSecurity()
    assert Settings.from_env({}).kafka_security == PlatformKafkaSecurity()


def test_sasl_over_tls_with_a_private_ca_and_a_password_file(files: dict[str, str]) -> None:
    security = Settings.from_env(
        {
            "KFAAS_KAFKA_TLS": "true",
            "KFAAS_KAFKA_CA_FILE": files["ca"],
            "KFAAS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KFAAS_KAFKA_USERNAME": "kfaas",
            "KFAAS_KAFKA_PASSWORD_FILE": files["password"],
        }
    ).kafka_security
    assert security.tls and security.ca_pem == CA
    assert (security.sasl_mechanism, security.username) == ("SCRAM-SHA-512", "kfaas")
    # The newline a mounted Secret file ends with is not part of the password.
    assert security.password == "s3cret"
    assert "s3cret" not in repr(security) and "CERTIFICATE" not in repr(security)


def test_mutual_tls(files: dict[str, str]) -> None:
    security = PlatformKafkaSecurity.from_env(
        {
            "KFAAS_KAFKA_TLS": "1",
            "KFAAS_KAFKA_CERT_FILE": files["cert"],
            "KFAAS_KAFKA_KEY_FILE": files["key"],
        }
    )
    assert security.client_cert_pem == CA and security.client_key_pem is not None
    assert security.ca_pem is None  # the system's CAs


def test_scram_may_go_without_tls() -> None:
    security = PlatformKafkaSecurity.from_env(
        {
            "KFAAS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "KFAAS_KAFKA_USERNAME": "kfaas",
            "KFAAS_KAFKA_PASSWORD": "p",
        }
    )
    assert not security.tls and security.password == "p"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"KFAAS_KAFKA_TLS": "maybe"}, "KFAAS_KAFKA_TLS='maybe' must be true or false"),
        ({"KFAAS_KAFKA_CA_FILE": "{ca}"}, "KFAAS_KAFKA_CA_FILE is only used over TLS"),
        (
            {"KFAAS_KAFKA_TLS": "true", "KFAAS_KAFKA_CERT_FILE": "{cert}"},
            "KFAAS_KAFKA_CERT_FILE and KFAAS_KAFKA_KEY_FILE go together",
        ),
        (
            {"KFAAS_KAFKA_TLS": "true", "KFAAS_KAFKA_CA_FILE": "/nonexistent/ca.crt"},
            "cannot be read",
        ),
        ({"KFAAS_KAFKA_TLS": "true", "KFAAS_KAFKA_CA_FILE": "{empty}"}, "is empty"),
        (
            {"KFAAS_KAFKA_SASL_MECHANISM": "GSSAPI"},
            "KFAAS_KAFKA_SASL_MECHANISM='GSSAPI' must be one of PLAIN, SCRAM-SHA-256",
        ),
        (
            {"KFAAS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "KFAAS_KAFKA_USERNAME": "u"},
            "needs KFAAS_KAFKA_USERNAME and KFAAS_KAFKA_PASSWORD",
        ),
        (
            {
                "KFAAS_KAFKA_SASL_MECHANISM": "PLAIN",
                "KFAAS_KAFKA_USERNAME": "u",
                "KFAAS_KAFKA_PASSWORD": "p",
            },
            "PLAIN sends the password as it is: set KFAAS_KAFKA_TLS=true",
        ),
        ({"KFAAS_KAFKA_PASSWORD": "p"}, "only used with KFAAS_KAFKA_SASL_MECHANISM"),
        (
            {
                "KFAAS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                "KFAAS_KAFKA_USERNAME": "u",
                "KFAAS_KAFKA_PASSWORD": "p",
                "KFAAS_KAFKA_PASSWORD_FILE": "{password}",
            },
            "not both",
        ),
    ],
)
def test_inconsistent_settings_are_refused_naming_the_variable(
    environ: dict[str, str], message: str, files: dict[str, str]
) -> None:
    filled = {key: value.format(**files) for key, value in environ.items()}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Settings.from_env(filled)
