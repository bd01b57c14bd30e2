"""The chart's platform Kafka values (ADR 027): Secrets mounted as files, KFAAS_KAFKA_* naming them.

The gateway (its kafka:// queue, destinations naming no cluster) and the scheduler (dead letters)
reach the platform's Kafka. `kafka.tls` and `kafka.auth` mirror a manifest's Kafka `tls`/`auth`
(Lambda's mechanism names, Secrets by reference). Both get the CA and the credentials as
read-only files, never a password in their environment; what the chart renders is what
`Settings.from_env` accepts once the files are where it points; inconsistent values fail at
install with a message.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from chart.platform import CHART
from chart.test_gateway_exposure import _env, _gateway_container, _objects, _one
from kfaas.config import Settings

SCRAM = (
    "kafka.bootstrapServers=kafka.kafka:9093",
    "kafka.tls.enabled=true",
    "kafka.tls.caSecretRef.name=kafka-ca",
    "kafka.auth.mechanism=SASL_SCRAM_512_AUTH",
    "kafka.auth.secretRef.name=kfaas-kafka-user",
)
MTLS = (
    "kafka.tls.enabled=true",
    "kafka.auth.mechanism=CLIENT_CERTIFICATE_TLS_AUTH",
    "kafka.auth.secretRef.name=kfaas-kafka-cert",
)


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = _one(objects, "Deployment", "kfaas-gateway")["spec"]["template"]["spec"]
    return pod


def test_by_default_the_platform_kafka_is_plaintext_and_nothing_is_mounted(helm: Path) -> None:
    objects = _objects(helm)
    env = _env(_gateway_container(objects))
    assert not [name for name in env if name.startswith("KFAAS_KAFKA")]
    assert [volume["name"] for volume in _pod(objects)["volumes"]] == ["tmp"]


def test_scram_over_tls_mounts_the_ca_and_the_password_as_files(helm: Path) -> None:
    objects = _objects(helm, *SCRAM)
    container = _gateway_container(objects)
    env = _env(container)
    assert env["KFAAS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka.kafka:9093"
    assert env["KFAAS_KAFKA_TLS"] == "true"
    assert env["KFAAS_KAFKA_CA_FILE"] == "/etc/kfaas/kafka/ca/ca.crt"
    assert env["KFAAS_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["KFAAS_KAFKA_USERNAME"] == {
        "secretKeyRef": {"name": "kfaas-kafka-user", "key": "username"}
    }
    assert env["KFAAS_KAFKA_PASSWORD_FILE"] == "/etc/kfaas/kafka/auth/password"
    assert "KFAAS_KAFKA_PASSWORD" not in env  # never in the environment
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["kafka-ca"] == {
        "name": "kafka-ca",
        "mountPath": "/etc/kfaas/kafka/ca",
        "readOnly": True,
    }
    assert mounts["kafka-auth"]["readOnly"] is True
    volumes = {v["name"]: v for v in _pod(objects)["volumes"]}
    assert volumes["kafka-ca"]["secret"] == {
        "secretName": "kafka-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
        "defaultMode": 0o440,
    }
    assert volumes["kafka-auth"]["secret"] == {
        "secretName": "kfaas-kafka-user",
        "defaultMode": 0o440,
    }


def test_the_scheduler_reaches_the_platforms_kafka_the_same_way(helm: Path) -> None:
    """Its dead letters go to the platform's Kafka too (a destination naming no cluster)."""
    objects = _objects(helm, *SCRAM)
    pod = _one(objects, "Deployment", "kfaas-scheduler")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    gateway = _gateway_container(objects)
    assert {k: v for k, v in _env(container).items() if k.startswith("KFAAS_KAFKA")} == {
        k: v for k, v in _env(gateway).items() if k.startswith("KFAAS_KAFKA")
    }
    assert container["volumeMounts"] == gateway["volumeMounts"]
    assert pod["volumes"] == _pod(objects)["volumes"]


def test_a_client_certificate_is_mounted_for_mutual_tls(helm: Path) -> None:
    env = _env(_gateway_container(_objects(helm, *MTLS)))
    assert env["KFAAS_KAFKA_CERT_FILE"] == "/etc/kfaas/kafka/auth/tls.crt"
    assert env["KFAAS_KAFKA_KEY_FILE"] == "/etc/kfaas/kafka/auth/tls.key"
    assert "KFAAS_KAFKA_SASL_MECHANISM" not in env and "KFAAS_KAFKA_CA_FILE" not in env


@pytest.mark.parametrize("values", [SCRAM, MTLS], ids=["scram", "mtls"])
def test_what_the_chart_renders_is_what_the_gateway_accepts(
    helm: Path, tmp_path: Path, values: tuple[str, ...]
) -> None:
    """The rendered variables, with the Secrets' files put where they point, read cleanly."""
    env = _env(_gateway_container(_objects(helm, *values)))
    secret_files = {
        "ca/ca.crt": b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "auth/password": b"s3cret",
        "auth/tls.crt": b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "auth/tls.key": b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    }
    for name, content in secret_files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(content)
    environ = {
        name: (
            "kfaas"  # the username the kubelet takes from the Secret
            if isinstance(value, dict)
            else value.replace("/etc/kfaas/kafka", str(tmp_path))
        )
        for name, value in env.items()
        if name.startswith("KFAAS_KAFKA")
    }
    security = Settings.from_env(environ).kafka_security
    assert security.tls
    if "KFAAS_KAFKA_SASL_MECHANISM" in environ:
        assert (security.sasl_mechanism, security.username, security.password) == (
            "SCRAM-SHA-512",
            "kfaas",
            "s3cret",
        )
    else:
        assert security.client_cert_pem is not None and security.client_key_pem is not None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ("kafka.auth.mechanism=SASL_SCRAM_256_AUTH",),
            "kafka.auth.mechanism SASL_SCRAM_256_AUTH needs kafka.auth.secretRef.name",
        ),
        (
            ("kafka.auth.mechanism=BASIC_AUTH", "kafka.auth.secretRef.name=u"),
            "BASIC_AUTH sends a password or a certificate: it needs kafka.tls.enabled: true",
        ),
        (
            ("kafka.tls.caSecretRef.name=ca",),
            "kafka.tls.caSecretRef is only used with kafka.tls.enabled: true",
        ),
        (("kafka.auth.mechanism=GSSAPI",), "/kafka/auth/mechanism"),
    ],
)
def test_inconsistent_kafka_values_fail_at_install(
    helm: Path, values: tuple[str, ...], message: str
) -> None:
    argv = [str(helm), "template", "kfaas", str(CHART)]
    for value in values:
        argv += ["--set", value]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode != 0 and message in done.stderr, done.stderr
