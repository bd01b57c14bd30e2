"""Poller pods get the platform's Kafka and Redis settings the operator was given (ADR 032).

Pure: the settings read from an environment, and the poller Deployment built with them. What the
chart renders for the operator is checked in tests/chart/test_platform_kafka_chart.py, and the
built Deployment against a real API server in test_on_cluster.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from kfaas.manifests import EventSourceMapping, parse_manifest
from kfaas.operator.config import OperatorConfig
from kfaas.operator.platform_brokers import PlatformKafka, PlatformRedis, SecretMount
from kfaas.operator.resources import mapping as esm

SCRAM = {
    "KFAAS_KAFKA_BOOTSTRAP_SERVERS": "kafka.kafka:9093",
    "KFAAS_KAFKA_TLS": "true",
    "KFAAS_KAFKA_CA_FILE": "/etc/kfaas/kafka/ca/ca.crt",
    "KFAAS_KAFKA_CA_SECRET": "kafka-ca",
    "KFAAS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KFAAS_KAFKA_USERNAME": "kfaas",  # resolved by the kubelet for the operator; not copied
    "KFAAS_KAFKA_PASSWORD_FILE": "/etc/kfaas/kafka/auth/password",
    "KFAAS_KAFKA_AUTH_SECRET": "kfaas-kafka-user",
}
MTLS = {
    "KFAAS_KAFKA_BOOTSTRAP_SERVERS": "kafka.kafka:9093",
    "KFAAS_KAFKA_TLS": "true",
    "KFAAS_KAFKA_CERT_FILE": "/etc/kfaas/kafka/auth/tls.crt",
    "KFAAS_KAFKA_KEY_FILE": "/etc/kfaas/kafka/auth/tls.key",
    "KFAAS_KAFKA_AUTH_SECRET": "kfaas-kafka-cert",
}
UID = "0f8e2c1a-uid"


def mapping(**spec: Any) -> EventSourceMapping:
    """A Kafka mapping, or with ``kafka=None`` whatever source ``spec`` names."""
    body = {"functionName": "thumbnail", "kafka": {"bootstrapServers": "k1:9092", "topic": "up"}}
    document = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "uploads", "namespace": "media"},
        "spec": {k: v for k, v in (body | spec).items() if v is not None},
    }
    manifest = parse_manifest(document)
    assert isinstance(manifest, EventSourceMapping)
    return manifest


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return found


def env(deployment: dict[str, Any]) -> dict[str, Any]:
    return {i["name"]: i.get("value", i.get("valueFrom")) for i in container(deployment)["env"]}


# A Redis source whose dead letters go to a Kafka topic naming no cluster: the platform's.
REDIS_TO_PLATFORM_KAFKA: dict[str, Any] = {
    "kafka": None,
    "redis": {"url": "redis://team-redis:6379/0", "stream": "orders"},
    "destinationConfig": {"onFailure": {"kafka": {"topic": "orders-dlq"}}},
}


def redis_mapping(**spec: Any) -> Any:
    return mapping(**{**REDIS_TO_PLATFORM_KAFKA, **spec})


def config(environ: dict[str, str]) -> OperatorConfig:
    return OperatorConfig(
        platform_kafka=PlatformKafka.from_env(environ),
        platform_redis=PlatformRedis.from_env(environ),
    )


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def test_scram_settings_are_copied_and_the_secrets_mounted_by_name() -> None:
    deployment = esm.make_poller_deployment(redis_mapping(), UID, config(SCRAM))
    variables = env(deployment)
    assert {k: v for k, v in variables.items() if k.startswith("KFAAS_KAFKA")} == {
        "KFAAS_KAFKA_BOOTSTRAP_SERVERS": "kafka.kafka:9093",
        "KFAAS_KAFKA_TLS": "true",
        "KFAAS_KAFKA_CA_FILE": "/etc/kfaas/kafka/ca/ca.crt",
        "KFAAS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KFAAS_KAFKA_USERNAME": {"secretKeyRef": {"name": "kfaas-kafka-user", "key": "username"}},
        "KFAAS_KAFKA_PASSWORD_FILE": "/etc/kfaas/kafka/auth/password",
    }
    assert "KFAAS_KAFKA_PASSWORD" not in variables
    mounts = container(deployment)["volumeMounts"]
    assert {"name": "platform-kafka-0", "mountPath": "/etc/kfaas/kafka/ca", "readOnly": True} in (
        mounts
    )
    assert {
        "name": "platform-kafka-1",
        "mountPath": "/etc/kfaas/kafka/auth",
        "readOnly": True,
    } in mounts
    volumes = {v["name"]: v for v in pod(deployment)["volumes"]}
    # As the chart mounts them for the gateway; not optional: a missing one names itself.
    assert volumes["platform-kafka-0"]["secret"] == {
        "secretName": "kafka-ca",
        "defaultMode": 0o440,
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert volumes["platform-kafka-1"]["secret"] == {
        "secretName": "kfaas-kafka-user",
        "defaultMode": 0o440,
    }


def test_a_client_certificate_is_mounted_for_mutual_tls() -> None:
    deployment = esm.make_poller_deployment(redis_mapping(), UID, config(MTLS))
    variables = env(deployment)
    assert variables["KFAAS_KAFKA_CERT_FILE"] == "/etc/kfaas/kafka/auth/tls.crt"
    assert variables["KFAAS_KAFKA_KEY_FILE"] == "/etc/kfaas/kafka/auth/tls.key"
    assert "KFAAS_KAFKA_USERNAME" not in variables
    volumes = {v["name"]: v for v in pod(deployment)["volumes"]}
    assert volumes["platform-kafka-0"]["secret"]["secretName"] == "kfaas-kafka-cert"


def test_only_a_mapping_writing_to_the_platforms_kafka_gets_its_settings() -> None:
    """Other pollers run in namespaces that need not hold the platform's Secrets."""
    platform = config(SCRAM)
    unrelated = [
        mapping(),  # a Kafka source, no destination
        # A Kafka source's destination without servers uses the source's cluster.
        mapping(destinationConfig={"onFailure": {"kafka": {"topic": "dlq"}}}),
        redis_mapping(
            destinationConfig={
                "onFailure": {"kafka": {"topic": "dlq", "bootstrapServers": "own:9092"}}
            }
        ),
    ]
    for manifest in unrelated:
        deployment = esm.make_poller_deployment(manifest, UID, platform)
        assert not [name for name in env(deployment) if name.startswith("KFAAS_KAFKA")]
        assert not [v for v in pod(deployment)["volumes"] if v["name"].startswith("platform")]


def test_without_platform_settings_nothing_is_added() -> None:
    deployment = esm.make_poller_deployment(redis_mapping(), UID, OperatorConfig())
    assert not [name for name in env(deployment) if name.startswith("KFAAS_KAFKA")]
    assert [v["name"] for v in pod(deployment)["volumes"]] == ["tmp"]


def test_a_kafka_mapping_dead_lettering_to_the_platforms_redis_gets_its_url() -> None:
    to_redis = mapping(destinationConfig={"onFailure": {"redis": {"stream": "dlq"}}})
    from_secret = {"KFAAS_REDIS_URL": "redis://:pw@r:6379", "KFAAS_REDIS_URL_SECRET": "kfaas-redis"}
    variables = env(esm.make_poller_deployment(to_redis, UID, config(from_secret)))
    # The Secret's key, never the URL the operator holds (it may carry a password).
    assert variables["KFAAS_REDIS_URL"] == {"secretKeyRef": {"name": "kfaas-redis", "key": "url"}}
    plain = config({"KFAAS_REDIS_URL": "redis://r:6379/0"})
    variables = env(esm.make_poller_deployment(to_redis, UID, plain))
    assert variables["KFAAS_REDIS_URL"] == "redis://r:6379/0"
    # A Redis source's destination without a URL uses the source's server.
    own = redis_mapping(destinationConfig={"onFailure": {"redis": {"stream": "dlq"}}})
    assert "KFAAS_REDIS_URL" not in env(esm.make_poller_deployment(own, UID, plain))


def test_the_settings_name_their_secrets_and_folders() -> None:
    assert PlatformKafka.from_env(SCRAM).mounts == (
        SecretMount("kafka-ca", "/etc/kfaas/kafka/ca", ("ca.crt",)),
        SecretMount("kfaas-kafka-user", "/etc/kfaas/kafka/auth"),
    )
    assert PlatformKafka.from_env({}) == PlatformKafka()


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"KFAAS_KAFKA_PASSWORD": "s3cret"}, "KFAAS_KAFKA_PASSWORD"),
        ({**SCRAM, "KFAAS_KAFKA_CA_SECRET": ""}, "KFAAS_KAFKA_CA_SECRET"),
        ({**SCRAM, "KFAAS_KAFKA_AUTH_SECRET": ""}, "KFAAS_KAFKA_AUTH_SECRET"),
        ({**MTLS, "KFAAS_KAFKA_KEY_FILE": "/elsewhere/tls.key"}, "one folder"),
        ({**SCRAM, "KFAAS_KAFKA_CA_FILE": "ca.crt"}, "absolute path"),
    ],
    ids=["inline-password", "ca-secret", "auth-secret", "two-folders", "relative"],
)
def test_settings_pods_could_not_be_given_are_refused_naming_them(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        PlatformKafka.from_env(environ)
